"""Features: versioned definitions, materialization runs, pushed rows.

Revision ID: f0001
Revises:
Create Date: 2026-11-26 07:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("features",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feature_definitions",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name", "version", name=op.f("pk_feature_definitions")),
    )
    op.create_table(
        "feature_materializations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("view", sa.String(length=128), nullable=False),
        sa.Column("view_version", sa.Integer(), nullable=False),
        sa.Column("online_store", sa.String(length=256), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_materializations")),
    )
    with op.batch_alter_table("feature_materializations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_feature_materializations_view_online_store_window_end"),
            ["view", "online_store", "window_end"],
            unique=False,
        )
    op.create_table(
        "feature_pushes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("view", sa.String(length=128), nullable=False),
        sa.Column("blob_id", sa.String(length=71), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("min_event_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_event_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_pushes")),
    )
    with op.batch_alter_table("feature_pushes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_feature_pushes_view_created_at"),
            ["view", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("feature_pushes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feature_pushes_view_created_at"))
    op.drop_table("feature_pushes")
    with op.batch_alter_table("feature_materializations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feature_materializations_view_online_store_window_end"))
    op.drop_table("feature_materializations")
    op.drop_table("feature_definitions")
