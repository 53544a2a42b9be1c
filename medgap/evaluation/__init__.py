"""Evaluation of runs (cases × structures → tables), reports and plots."""
