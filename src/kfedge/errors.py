"""The one small error hierarchy of kfedge.

Every message says what was expected and what was found. The CLI turns a
:class:`KfedgeError` into one line and exit code 2, components into a failed task with
that message, and the model server into HTTP 400 / 404 / 503 (see ``http_status``).
"""

from __future__ import annotations


class KfedgeError(Exception):
    """Base class of every error kfedge raises on purpose."""

    #: HTTP status the model server maps this error to.
    http_status: int = 400


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

    http_status = 404


class StorageError(KfedgeError):
    """Object storage failed: unreachable endpoint, bad credentials, broken transfer."""

    http_status = 503


class NotReadyError(KfedgeError):
    """A model or service is not loaded / ready yet."""

    http_status = 503


class DependencyError(KfedgeError, ImportError):
    """An optional dependency is missing; the message says which extra to install."""

    http_status = 503
