"""Ground floor: configuration, errors, ids and hashing, the reference grammar."""

from shipyard.core.errors import (
    AlreadyExistsError,
    AmbiguousReferenceError,
    BackendError,
    BackendUnavailableError,
    ConfigError,
    DataContractError,
    GateFailed,
    IntegrityError,
    NotFoundError,
    ReferenceError_,
    SchemaVersionError,
    ShipyardError,
)
from shipyard.core.ids import ContentId, content_id_of_bytes, is_content_id, new_id
from shipyard.core.references import Reference, parse_reference, validate_name

__all__ = [
    "AlreadyExistsError",
    "AmbiguousReferenceError",
    "BackendError",
    "BackendUnavailableError",
    "ConfigError",
    "ContentId",
    "DataContractError",
    "GateFailed",
    "IntegrityError",
    "NotFoundError",
    "Reference",
    "ReferenceError_",
    "SchemaVersionError",
    "ShipyardError",
    "content_id_of_bytes",
    "is_content_id",
    "new_id",
    "parse_reference",
    "validate_name",
]
