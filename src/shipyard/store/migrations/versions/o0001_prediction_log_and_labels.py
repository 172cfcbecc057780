"""Monitoring: the prediction log and the labels joined to it by request id.

Revision ID: o0001
Revises:
Create Date: 2026-11-26 07:51:36.978740
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "o0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("monitoring",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prediction_labels",
        sa.Column("request_id", sa.String(length=160), nullable=False),
        sa.Column("label", sa.JSON(), nullable=False),
        sa.Column("labeled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_prediction_labels")),
    )
    with op.batch_alter_table("prediction_labels", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_prediction_labels_labeled_at"), ["labeled_at"], unique=False
        )

    op.create_table(
        "prediction_log",
        sa.Column("request_id", sa.String(length=160), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.String(length=71), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=True),
        sa.Column("entity_keys", sa.JSON(), nullable=True),
        sa.Column("features", sa.JSON(), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=True),
        sa.Column("label", sa.JSON(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "arm", name=op.f("pk_prediction_log")),
    )
    with op.batch_alter_table("prediction_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_prediction_log_logged_at"), ["logged_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_prediction_log_model_logged_at"), ["model", "logged_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("prediction_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prediction_log_model_logged_at"))
        batch_op.drop_index(batch_op.f("ix_prediction_log_logged_at"))

    op.drop_table("prediction_log")
    with op.batch_alter_table("prediction_labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prediction_labels_labeled_at"))

    op.drop_table("prediction_labels")
