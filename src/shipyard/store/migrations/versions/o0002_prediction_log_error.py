"""Monitoring: the prediction log records failed model calls (``error``, their kind).

A model call that raises (on records that passed the contract) is logged as a record
without a score and with the failure's kind, so the canary's error rate counts failures
among all the requests of its arm.

Revision ID: o0002
Revises: o0001
Create Date: 2026-11-26 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "o0002"
down_revision: str | Sequence[str] | None = "o0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prediction_log", schema=None) as batch_op:
        batch_op.drop_column("error")
