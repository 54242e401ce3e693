"""The one small error hierarchy of kfedge.

Every message says what was expected and what was found. The CLI turns a
:class:`KfedgeError` into one line and exit code 2, a component into a failed task with that
message. These classes know nothing of HTTP: the model server's answer to each is in its own
table (``kfedge.serving.errors.HTTP_STATUS``; ``docs/ARCHITECTURE.md#errors``).
"""

from __future__ import annotations


class KfedgeError(Exception):
    """Base class of every error kfedge raises on purpose."""


class InvalidInputError(KfedgeError, ValueError):
    """The input (file, data, request, argument) is not what was expected."""


class ConfigError(InvalidInputError):
    """A configuration (technique, target, goals) is invalid; raised before heavy work."""


class ModelFormatError(InvalidInputError):
    """A model file is missing, corrupt or of a format that does not fit."""


class DataError(InvalidInputError):
    """A dataset has the wrong shape, dtype, labels, or is empty."""


class NotFoundError(KfedgeError, LookupError):
    """Something named does not exist (target, model, bucket, key)."""


class StorageError(KfedgeError):
    """Object storage failed: unreachable endpoint, bad credentials, broken transfer."""


class NotReadyError(KfedgeError):
    """A model or service is not loaded / ready yet."""


class DependencyError(KfedgeError, ImportError):
    """An optional dependency is missing; the message says which extra to install."""


class AcceleratorError(KfedgeError):
    """The target asks for an accelerator (provider, delegate) this node does not have."""
