"""Exceptions whose message is one line naming the file or case and the problem.

The CLI prints ``str(error)`` and exits with status 2; it never shows a traceback for these.
"""


class MedgapError(Exception):
    """Base class: a user-facing problem with inputs, configs or run folders."""


class DatasetError(MedgapError):
    """A dataset folder, dataset.json, case file or split is malformed."""


class ConfigError(MedgapError):
    """A config file or CLI override is malformed (unknown key, wrong type, bad value)."""


class RunFolderError(MedgapError):
    """A run folder is missing, incomplete, locked or would be overwritten."""


class CheckpointError(MedgapError):
    """A checkpoint cannot be loaded safely or does not match the model."""


class TrainingError(MedgapError):
    """Training cannot continue (e.g. the loss became NaN/Inf)."""
