"""Datasets: datasets, their immutable versions, aliases and lineage edges.

Revision ID: d0001
Revises:
Create Date: 2026-11-26 05:42:23.043936
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("datasets",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("name", name=op.f("uq_datasets_name")),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("dataset_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("content_id", sa.String(length=71), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("schema", sa.JSON(), nullable=False),
        sa.Column("num_rows", sa.BigInteger(), nullable=False),
        sa.Column("num_bytes", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("profile_blob", sa.String(length=71), nullable=True),
        sa.Column("sample_blob", sa.String(length=71), nullable=True),
        sa.Column("quarantine_blob", sa.String(length=71), nullable=True),
        sa.Column("quarantined_rows", sa.BigInteger(), nullable=False),
        sa.Column("report_blob", sa.String(length=71), nullable=True),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("contract", sa.JSON(), nullable=True),
        sa.Column("source", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_dataset_versions_dataset_id_datasets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_versions")),
        sa.UniqueConstraint(
            "dataset_id", "number", name=op.f("uq_dataset_versions_dataset_id_number")
        ),
    )
    with op.batch_alter_table("dataset_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dataset_versions_content_id"), ["content_id"], unique=False
        )

    op.create_table(
        "dataset_aliases",
        sa.Column("dataset_id", sa.String(length=32), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_dataset_aliases_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_dataset_aliases_version_id_dataset_versions"),
        ),
        sa.PrimaryKeyConstraint("dataset_id", "alias", name=op.f("pk_dataset_aliases")),
    )
    op.create_table(
        "dataset_lineage",
        sa.Column("version_id", sa.String(length=32), nullable=False),
        sa.Column("input_name", sa.String(length=128), nullable=False),
        sa.Column("upstream_dataset", sa.String(length=128), nullable=False),
        sa.Column("upstream_content_id", sa.String(length=71), nullable=False),
        sa.Column("upstream_number", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_dataset_lineage_version_id_dataset_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", "input_name", name=op.f("pk_dataset_lineage")),
    )
    with op.batch_alter_table("dataset_lineage", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dataset_lineage_upstream_content_id"),
            ["upstream_content_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("dataset_lineage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_lineage_upstream_content_id"))

    op.drop_table("dataset_lineage")
    op.drop_table("dataset_aliases")
    with op.batch_alter_table("dataset_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_versions_content_id"))

    op.drop_table("dataset_versions")
    op.drop_table("datasets")
