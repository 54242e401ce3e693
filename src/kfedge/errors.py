"""The one small error hierarchy of kfedge.

Every message says what was expected and what was found. The CLI turns a
:class:`KfedgeError` into one line and exit code 2, a component into a failed task with that
message. These classes know nothing of HTTP: the model server's answer to each is in its own
table (``kfedge.serving.errors.HTTP_STATUS``; ``docs/ARCHITECTURE.md#errors``).
"""

from __future__ import annotations


class KfedgeError(Exception):
    """Base class of every error kfedge raises on purpose.

    ``transient`` says whether trying again can succeed: False for what is wrong with the input
    (model, data, target, goals, URI, credentials), which fails at once; True only for
    :class:`TransientError`.
    """

    transient: bool = False


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


class TransientError(KfedgeError):
    """A fault that can go away by itself: a timeout, a reset connection, a 5xx, a conflict.

    kfedge retries it with backoff (:mod:`kfedge.retry`); it is raised only once the bounded
    retries are spent, its message then ending with ``(transient: gave up after N attempts)``.
    """

    transient = True


class TransientStorageError(StorageError, TransientError):
    """Object storage failed in a way a retry can fix (timeout, reset, 5xx, SlowDown)."""


class NotReadyError(KfedgeError):
    """A model or service is not loaded / ready yet."""


class DependencyError(KfedgeError, ImportError):
    """An optional dependency is missing; the message says which extra to install."""


class AcceleratorError(KfedgeError):
    """The target asks for an accelerator (provider, delegate) this node does not have."""
