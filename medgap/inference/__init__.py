"""Sliding-window inference and prediction of whole folders."""
