"""Errors a user can cause. Every message names the input and what is wrong with it."""

from __future__ import annotations


class StepkitError(Exception):
    """Base class for errors caused by user input (files, configs, names)."""


class GraphError(StepkitError):
    """A scene graph file or object is malformed."""


class VideoError(StepkitError):
    """A video is missing, empty, truncated or not a video."""


class ConfigError(StepkitError):
    """A config file or option is invalid."""


class DataError(StepkitError):
    """A dataset, annotation or Q/R/A file is malformed."""


class ModelError(StepkitError):
    """A model name, path or backend is unknown or unusable."""
