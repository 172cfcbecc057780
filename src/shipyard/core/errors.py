"""Shipyard's error hierarchy: one root, a small tree, messages a user can act on.

::

    ShipyardError                      root of everything Shipyard raises on purpose
    ├── ConfigError                    shipyard.toml, environment variables, CLI options
    ├── ReferenceError_                a malformed ``name@alias`` / ``name@v3`` / ``name@ab12``
    ├── NotFoundError                  a named object (run, blob, model, alias) does not exist
    │   └── AmbiguousReferenceError    an id prefix matches more than one object
    ├── AlreadyExistsError             a create that would overwrite an immutable record
    ├── DataContractError              data that breaks its declared contract
    ├── GateFailed                     a model version failed a promotion gate
    ├── ModelError                     a model's own code (or hook) failed on accepted input
    ├── IntegrityError                 stored bytes no longer match their content id
    └── BackendError                   a backend is unreachable, refuses, or misbehaves
        ├── BackendUnavailableError    cannot connect / permission denied / not writable
        └── SchemaVersionError         a store's schema is newer than this code understands

Every error carries a ``code`` (stable, for scripts and docs) and a ``hint`` that says
what to do. Third-party exceptions are wrapped at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "AmbiguousReferenceError",
    "BackendError",
    "BackendUnavailableError",
    "ConfigError",
    "DataContractError",
    "GateFailed",
    "IntegrityError",
    "ModelError",
    "NotFoundError",
    "ReferenceError_",
    "SchemaVersionError",
    "ShipyardError",
]


class ShipyardError(Exception):
    """Root of every error Shipyard raises on purpose.

    ``message`` says what happened and to which object; ``hint`` says what to do.
    """

    code: str = "SY000"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} {self.hint}"
        return self.message


class ConfigError(ShipyardError):
    """Configuration (file, environment, option) is malformed or names something unknown."""

    code = "SY100"


class ReferenceError_(ShipyardError):  # noqa: N801 - avoid shadowing the builtin ReferenceError
    """A reference string does not follow ``name``, ``name@alias``, ``name@v3`` or ``name@id``."""

    code = "SY110"


class NotFoundError(ShipyardError):
    """The named object does not exist."""

    code = "SY200"


class AmbiguousReferenceError(NotFoundError):
    """An id prefix matches more than one object."""

    code = "SY201"


class AlreadyExistsError(ShipyardError):
    """An immutable record with this identity already exists."""

    code = "SY210"


class DataContractError(ShipyardError):
    """Data breaks its declared contract."""

    code = "SY300"


class GateFailed(ShipyardError):  # noqa: N818 - the name reads like the event it reports
    """A model version failed one of its promotion gates."""

    code = "SY400"


class ModelError(ShipyardError):
    """A model's own code, or its preprocess/postprocess hook, failed on input its contract
    accepted (``RuntimeError``, ``AttributeError``, ``MemoryError``...): the fault is the
    model's or the server's, not the caller's. The original exception is ``__cause__``.

    Input a model refuses (``ValueError``, ``TypeError``, ``KeyError`` raised on the rows)
    is a ``DataContractError`` instead: the caller can fix it.
    """

    code = "SY900"


class IntegrityError(ShipyardError):
    """Stored bytes no longer hash to the content id they were stored under."""

    code = "SY500"


class BackendError(ShipyardError):
    """A storage or compute backend failed."""

    code = "SY600"


class BackendUnavailableError(BackendError):
    """A backend cannot be reached or used (connection refused, permission denied...)."""

    code = "SY601"


class SchemaVersionError(BackendError):
    """A store's schema is newer than this version of Shipyard understands."""

    code = "SY602"
