"""Tracking: index runs by start time, for searches across every experiment.

Searching without an experiment (``shipyard runs list``) orders runs newest first; with
this index SQLite walks runs in that order and stops after a page of matches instead of
sorting every run.

Revision ID: t0002
Revises: t0001
Create Date: 2026-11-26 06:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "t0002"
down_revision: str | Sequence[str] | None = "t0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_start_time"), ["start_time"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_start_time"))
