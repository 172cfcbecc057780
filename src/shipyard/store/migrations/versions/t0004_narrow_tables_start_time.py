"""Tracking: params, tags and latest metrics carry their run's start time, indexed.

A search ordered by start time (the default: newest first) with a term such as
``params.model = 'gbm'`` can then read that term's runs already in order from
``(key, value, start_time)`` and stop after a page, instead of walking every run in
order and testing each against the term. The copy is kept by the database itself, so
every writer (the tracking writer, bulk loads, other tools) keeps it right without
knowing of it: a trigger fills it when a row is inserted, another follows a run's
start time if it ever changes. The ``(key, value)`` indexes become
``(key, value, start_time)`` (the same prefix, so range filters such as
``metrics.auc > 0.8`` still read one index range).

SQLite fills the copy after the insert (its triggers cannot change the row being
inserted), so the column is nullable; PostgreSQL fills it before. Existing rows are
copied by the upgrade: about 15 s of CPU per million rows on SQLite.

Revision ID: t0004
Revises: t0003
Create Date: 2026-11-26 10:55:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "t0004"
down_revision: str | Sequence[str] | None = "t0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NARROW_TABLES = ("run_latest_metrics", "run_params", "run_tags")
_COPIES = "\n".join(
    f"UPDATE {table} SET start_time = NEW.start_time WHERE run_id = NEW.id;"  # noqa: S608 - our table names
    for table in _NARROW_TABLES
)
"""A run's new start time, into the rows of its narrow tables (a trigger's body)."""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in _NARROW_TABLES:
        op.add_column(table, sa.Column("start_time", sa.DateTime(timezone=True), nullable=True))
        op.execute(
            f"UPDATE {table} SET start_time = "  # noqa: S608 - our table names
            f"(SELECT runs.start_time FROM runs WHERE runs.id = {table}.run_id)"
        )
        op.drop_index(op.f(f"ix_{table}_key_value"), table_name=table)
        op.create_index(
            op.f(f"ix_{table}_key_value_start_time"), table, ["key", "value", "start_time"]
        )
    if postgres:
        _postgres_triggers()
    else:
        _sqlite_triggers()


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table in _NARROW_TABLES:
            op.execute(f"DROP TRIGGER {table}_start_time ON {table}")
        op.execute("DROP TRIGGER runs_start_time_copies ON runs")
        op.execute("DROP FUNCTION shipyard_copy_run_start_time()")
        op.execute("DROP FUNCTION shipyard_runs_start_time_copies()")
    else:
        for table in _NARROW_TABLES:
            op.execute(f"DROP TRIGGER {table}_start_time")
        op.execute("DROP TRIGGER runs_start_time_copies")
    for table in _NARROW_TABLES:
        op.drop_index(op.f(f"ix_{table}_key_value_start_time"), table_name=table)
        # SQLite copies the table to drop a column: keep it WITHOUT ROWID (t0003).
        with op.batch_alter_table(
            table, schema=None, table_kwargs={"sqlite_with_rowid": False}
        ) as batch_op:
            batch_op.drop_column("start_time")
        op.create_index(op.f(f"ix_{table}_key_value"), table, ["key", "value"])


def _sqlite_triggers() -> None:
    for table in _NARROW_TABLES:
        # AFTER, and only when the copy differs: SQLite cannot assign NEW in a trigger.
        op.execute(
            f"""
            CREATE TRIGGER {table}_start_time AFTER INSERT ON {table} FOR EACH ROW
            WHEN NEW.start_time IS NOT (SELECT start_time FROM runs WHERE id = NEW.run_id)
            BEGIN
                UPDATE {table}
                SET start_time = (SELECT start_time FROM runs WHERE id = NEW.run_id)
                WHERE run_id = NEW.run_id AND "key" = NEW."key";
            END
            """  # noqa: S608 - our table names
        )
    op.execute(
        f"""
        CREATE TRIGGER runs_start_time_copies AFTER UPDATE OF start_time ON runs FOR EACH ROW
        WHEN NEW.start_time IS NOT OLD.start_time
        BEGIN
            {_COPIES}
        END
        """
    )


def _postgres_triggers() -> None:
    op.execute(
        """
        CREATE FUNCTION shipyard_copy_run_start_time() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            SELECT runs.start_time INTO NEW.start_time FROM runs WHERE runs.id = NEW.run_id;
            RETURN NEW;
        END
        $$
        """
    )
    for table in _NARROW_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_start_time BEFORE INSERT OR UPDATE OF run_id, start_time "
            f"ON {table} FOR EACH ROW EXECUTE FUNCTION shipyard_copy_run_start_time()"
        )
    op.execute(
        f"""
        CREATE FUNCTION shipyard_runs_start_time_copies() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            {_COPIES}
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER runs_start_time_copies AFTER UPDATE OF start_time ON runs FOR EACH ROW "
        "WHEN (NEW.start_time IS DISTINCT FROM OLD.start_time) "
        "EXECUTE FUNCTION shipyard_runs_start_time_copies()"
    )
