"""Tracking: the narrow tables' start times are written with their rows, and required.

t0004 copied a run's start time into its params, tags and latest metrics with a trigger
per inserted row: on SQLite an AFTER INSERT trigger that looked the run up and rewrote
the row (and its ``(key, value, start_time)`` index entry), on PostgreSQL a function
call per row. That was most of the cost of writing params and metrics (about half of a
batch of short runs). The tracking writer now writes the start time with each row (it
knows it: it creates the runs, or reads their state in the same transaction), so the
insert triggers go, and the column becomes NOT NULL: a writer that leaves it out is
refused at once instead of making searches miss its rows. The trigger that follows a
run's start time when it changes (``runs_start_time_copies``) stays.

Existing rows keep their copies (the triggers filled every one; any left empty is filled
first). SQLite rebuilds the three tables to change the column (about 25 s of CPU per
million rows); PostgreSQL checks the column in place.

Revision ID: t0005
Revises: t0004
Create Date: 2026-11-26 12:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "t0005"
down_revision: str | Sequence[str] | None = "t0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NARROW_TABLES = ("run_latest_metrics", "run_params", "run_tags")
_COPIES = "\n".join(
    f"UPDATE {table} SET start_time = NEW.start_time WHERE run_id = NEW.id;"  # noqa: S608 - our table names
    for table in _NARROW_TABLES
)
"""A run's new start time, into the rows of its narrow tables (t0004's trigger body)."""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in _NARROW_TABLES:
        if postgres:
            op.execute(f"DROP TRIGGER {table}_start_time ON {table}")
        else:
            op.execute(f"DROP TRIGGER {table}_start_time")
        op.execute(
            f"UPDATE {table} SET start_time = "  # noqa: S608 - our table names
            f"(SELECT runs.start_time FROM runs WHERE runs.id = {table}.run_id) "
            "WHERE start_time IS NULL"
        )
    if postgres:
        op.execute("DROP FUNCTION shipyard_copy_run_start_time()")
        for table in _NARROW_TABLES:
            op.alter_column(
                table, "start_time", existing_type=sa.DateTime(timezone=True), nullable=False
            )
        return
    _rebuild_sqlite_tables(nullable=False)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table in _NARROW_TABLES:
            op.alter_column(
                table, "start_time", existing_type=sa.DateTime(timezone=True), nullable=True
            )
        _postgres_insert_triggers()
        return
    _rebuild_sqlite_tables(nullable=True)
    _sqlite_insert_triggers()


def _rebuild_sqlite_tables(*, nullable: bool) -> None:
    # SQLite changes a column by copying its table. The trigger on ``runs`` names the
    # narrow tables, and SQLite refuses to rename a table while a trigger names a table
    # that is missing (the copy's old one, mid-rebuild): it is set aside meanwhile.
    op.execute("DROP TRIGGER runs_start_time_copies")
    for table in _NARROW_TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_with_rowid": False}
        ) as batch_op:
            batch_op.alter_column(
                "start_time", existing_type=sa.DateTime(timezone=True), nullable=nullable
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


def _sqlite_insert_triggers() -> None:
    """t0004's insert triggers, as it created them."""
    for table in _NARROW_TABLES:
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


def _postgres_insert_triggers() -> None:
    """t0004's insert (and update) triggers, as it created them."""
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
