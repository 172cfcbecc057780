"""The metadata database's tables, as SQLAlchemy Core: one module per subsystem.

These definitions are what the code reads and writes; the Alembic migrations in
``store/migrations/versions/`` create them, and ``tests/store/test_metadata_conformance.py``
proves the two agree on every backend. Each subsystem owns one module here and one
independent migration branch there (its own base and ``branch_labels``), so subsystems
evolve their tables without ordering their migrations against each other's. To change a
subsystem's tables:

1. edit its module here (a new subsystem: a new module, imported below);
2. write the migration on its branch (``down_revision`` = the branch's previous tip, or
   ``None`` with ``branch_labels=("<subsystem>",)`` for a new branch);
3. set the module's ``REVISION`` to the new tip.

Timestamps are ``UtcDateTime``: timezone-aware UTC ``datetime`` values on every backend.
"""

from __future__ import annotations

from shipyard.store.schema import alerts as alerts_schema
from shipyard.store.schema import datasets, foundation, pipelines, tracking
from shipyard.store.schema import features as features_schema
from shipyard.store.schema import loop as loop_schema
from shipyard.store.schema import models as models_schema
from shipyard.store.schema import monitoring as monitoring_schema
from shipyard.store.schema._base import NAMING_CONVENTION, UtcDateTime, metadata, utc_now
from shipyard.store.schema.foundation import audit_events, blob_refs, store_info

__all__ = [
    "NAMING_CONVENTION",
    "SCHEMA_REVISION",
    "UtcDateTime",
    "audit_events",
    "blob_refs",
    "metadata",
    "store_info",
    "utc_now",
]

_BRANCH_TIPS = (
    foundation.REVISION,
    tracking.REVISION,
    pipelines.REVISION,
    datasets.REVISION,
    models_schema.REVISION,
    features_schema.REVISION,
    monitoring_schema.REVISION,
    alerts_schema.REVISION,
    loop_schema.REVISION,
)

SCHEMA_REVISION = ",".join(sorted(_BRANCH_TIPS))
"""The Alembic heads these tables match (the sorted tips of every branch, comma-joined).

Opening a store whose database is at exactly these heads skips loading Alembic (it costs
~0.2 s of start-up); a test keeps this constant equal to Alembic's heads.
"""
