"""The metadata store's Alembic migrations, and the pieces Shipyard applies them with.

Alembic is configured in code (``alembic_config``); no ``alembic.ini`` is read at run
time. Nothing here imports Alembic until it is needed: a store already at
``schema.SCHEMA_REVISION`` opens without loading it at all.

Each subsystem's migrations form an independent branch with its own base, so the
database records one revision per branch and "head" means the sorted, comma-joined heads.

``MetadataStore.migrate`` holds the migration lock and calls, in order:
``read_revisions`` -> ``refuse_unknown`` -> ``upgrade``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from shipyard._version import __version__
from shipyard.core.errors import BackendError, SchemaVersionError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "head_revision",
    "known_revisions",
    "read_revisions",
    "refuse_unknown",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config() -> Config:
    """The Alembic configuration of the metadata store's migrations, built in code."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return config


@functools.cache
def _revisions() -> tuple[str | None, frozenset[str]]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    known = frozenset(revision.revision for revision in script.walk_revisions())
    heads = script.get_heads()
    return (",".join(sorted(heads)) if heads else None), known


def head_revision() -> str:
    """The newest revision of every branch this Shipyard knows, sorted, comma-joined."""
    head, _ = _revisions()
    if head is None:
        raise BackendError(
            f"Shipyard's metadata migrations are missing from {MIGRATIONS_DIR}.",
            hint="Reinstall: pip install --force-reinstall shipyard.",
        )
    return head


def known_revisions() -> frozenset[str]:
    """Every migration revision this Shipyard knows."""
    _, known = _revisions()
    return known


def read_revisions(conn: Connection) -> list[str]:
    """The revisions recorded in the database (one, normally); empty for a new database."""
    if not inspect(conn).has_table("alembic_version"):
        return []
    rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version")
    return sorted(str(row[0]) for row in rows)


def refuse_unknown(revisions: list[str], display_uri: str) -> None:
    """Raise ``SchemaVersionError`` if a newer Shipyard wrote the database."""
    known = known_revisions()
    for revision in revisions:
        if revision not in known:
            raise SchemaVersionError(
                f"Metadata store {display_uri} has schema revision {revision}, which this "
                f"Shipyard (version {__version__}) does not know; it was written by a newer "
                "Shipyard.",
                hint="Upgrade: pip install -U shipyard.",
            )


def upgrade(conn: Connection) -> None:
    """Upgrade every branch to its head inside ``conn``'s open transaction; the caller commits.

    The caller holds the migration lock: ``env.py`` runs on this very connection.
    """
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = conn
    command.upgrade(config, "heads")
