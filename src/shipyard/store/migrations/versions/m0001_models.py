"""Model registry: models, versions, aliases, alias moves, evaluations.

Revision ID: m0001
Revises:
Create Date: 2026-11-26 07:51:24.928020
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "m0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("models",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_models")),
    )
    op.create_table(
        "model_alias_moves",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("from_number", sa.Integer(), nullable=True),
        sa.Column("to_number", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=256), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("gate_results", sa.JSON(), nullable=False),
        sa.Column("override", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["name"], ["models.name"], name=op.f("fk_model_alias_moves_name_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_alias_moves")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("model_alias_moves", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_alias_moves_name_alias"), ["name", "alias"], unique=False
        )

    op.create_table(
        "model_versions",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("content_id", sa.String(length=71), nullable=False),
        sa.Column("flavor", sa.String(length=32), nullable=False),
        sa.Column("model_type", sa.String(length=32), nullable=False),
        sa.Column("signature", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("dataset_versions", sa.JSON(), nullable=False),
        sa.Column("feature_service", sa.String(length=200), nullable=True),
        sa.Column("feature_service_name", sa.String(length=128), nullable=True),
        sa.Column("code_commit", sa.String(length=64), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("package", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["name"], ["models.name"], name=op.f("fk_model_versions_name_models")
        ),
        sa.PrimaryKeyConstraint("name", "number", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("key", name=op.f("uq_model_versions_key")),
        sa.UniqueConstraint("name", "content_id", name=op.f("uq_model_versions_name_content_id")),
    )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_versions_content_id"), ["content_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_model_versions_feature_service_name"),
            ["feature_service_name"],
            unique=False,
        )

    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("canary_number", sa.Integer(), nullable=True),
        sa.Column("canary_share", sa.Float(), nullable=True),
        sa.Column("canary_sticky_by", sa.String(length=16), nullable=True),
        sa.Column("shadow_number", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["name", "number"],
            ["model_versions.name", "model_versions.number"],
            name=op.f("fk_model_aliases_name_model_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["name"], ["models.name"], name=op.f("fk_model_aliases_name_models")
        ),
        sa.PrimaryKeyConstraint("name", "alias", name=op.f("pk_model_aliases")),
    )
    op.create_table(
        "model_evaluations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(length=200), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("gate_results", sa.JSON(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("plots", sa.JSON(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["name", "number"],
            ["model_versions.name", "model_versions.number"],
            name=op.f("fk_model_evaluations_name_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_evaluations")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("model_evaluations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_evaluations_name_number"), ["name", "number"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("model_evaluations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_evaluations_name_number"))

    op.drop_table("model_evaluations")
    op.drop_table("model_aliases")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_versions_feature_service_name"))
        batch_op.drop_index(batch_op.f("ix_model_versions_content_id"))

    op.drop_table("model_versions")
    with op.batch_alter_table("model_alias_moves", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_alias_moves_name_alias"))

    op.drop_table("model_alias_moves")
    op.drop_table("models")
