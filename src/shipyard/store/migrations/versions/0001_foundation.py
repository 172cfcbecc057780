"""Foundation: the store's own facts, blob references and the audit log.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from shipyard._version import __version__

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("foundation",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    store_info = op.create_table(
        "store_info",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_store_info")),
    )
    op.create_table(
        "blob_refs",
        sa.Column("blob_id", sa.String(length=71), nullable=False),
        sa.Column("owner_kind", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "blob_id", "owner_kind", "owner_id", "role", name=op.f("pk_blob_refs")
        ),
    )
    op.create_index(
        op.f("ix_blob_refs_owner_kind_owner_id"), "blob_refs", ["owner_kind", "owner_id"]
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_kind", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=128), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_audit_events_object_kind_object_id"),
        "audit_events",
        ["object_kind", "object_id"],
    )
    # The store's identity is born with its schema, under the same migration lock, so
    # concurrent first openers agree on one store_id.
    op.bulk_insert(
        store_info,
        [
            {"key": "store_id", "value": uuid.uuid4().hex},
            {"key": "created_at", "value": datetime.now(UTC).isoformat()},
            {"key": "created_by_version", "value": __version__},
        ],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_events_object_kind_object_id"), table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index(op.f("ix_blob_refs_owner_kind_owner_id"), table_name="blob_refs")
    op.drop_table("blob_refs")
    op.drop_table("store_info")
