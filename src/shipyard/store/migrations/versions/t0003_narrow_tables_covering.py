"""Tracking: search reads params, tags, latest metrics and runs from covering keys.

Search probes a run's value of a key (``(run_id, key)``) and reads the runs whose key
has a value in a range (``(key, value)``). On SQLite the three narrow tables become
``WITHOUT ROWID``: the primary key is the table, so a probe finds the value at once
instead of going from the key's index to the row, and the ``(key, value)`` index ends
with the primary key, so it holds the run id. PostgreSQL's narrow tables are unchanged.
On both, the two indexes search walks runs in (by experiment and start time, by start
time) also hold the run's id and lifecycle, so walking them reads no rows of ``runs``.

SQLite cannot change a table to ``WITHOUT ROWID`` in place: each table is rebuilt (its
rows and indexes copied), about 25 s of CPU per million rows.

Revision ID: t0003
Revises: t0002
Create Date: 2026-11-26 08:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "t0003"
down_revision: str | Sequence[str] | None = "t0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NARROW_TABLES = ("run_latest_metrics", "run_params", "run_tags")
_RUN_INDEXES = (("experiment_id", "start_time"), ("start_time",))
_COVERED = ("id", "lifecycle")


def upgrade() -> None:
    _rebuild_narrow_tables(with_rowid=False)
    _walk_indexes(covering=True)


def downgrade() -> None:
    _walk_indexes(covering=False)
    _rebuild_narrow_tables(with_rowid=True)


def _rebuild_narrow_tables(*, with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in _NARROW_TABLES:
        # No operation inside: the batch copies the table (and its indexes) into one
        # created with or without a rowid.
        with op.batch_alter_table(
            table, schema=None, recreate="always", table_kwargs={"sqlite_with_rowid": with_rowid}
        ):
            pass


def _walk_indexes(*, covering: bool) -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        for columns in _RUN_INDEXES:
            old, new = (columns, (*columns, *_COVERED))
            if not covering:
                old, new = new, old
            batch_op.drop_index(batch_op.f(f"ix_runs_{'_'.join(old)}"))
            batch_op.create_index(batch_op.f(f"ix_runs_{'_'.join(new)}"), list(new), unique=False)
