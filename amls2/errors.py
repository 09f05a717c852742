"""Errors a user can cause. Each carries a one-line message naming the file or option at fault;
the CLI prints it without a traceback and exits non-zero."""


class Amls2Error(Exception):
    """Base class of every error a user can cause."""


class ImageError(Amls2Error):
    """An image file is missing, empty, corrupt or not an image."""


class DatasetError(Amls2Error):
    """A dataset is missing, incomplete, or its LR/HR pairs do not match."""


class ConfigError(Amls2Error):
    """A configuration value or command-line option is invalid."""


class ModelError(Amls2Error):
    """A model name, weights file or sidecar is unknown, invalid or does not fit the request."""


class MissingWeightsError(ModelError):
    """A registry name was asked for but its shipped weights are not in Selected_models/."""


class DownloadError(Amls2Error):
    """A download failed, was truncated, or its checksum does not match."""
