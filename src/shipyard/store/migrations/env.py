"""Alembic's environment for the metadata store, driven from code.

Shipyard applies migrations itself when a store is opened (``shipyard.store.metadata``):
it hands over a connection that already holds the migration lock, inside the write
transaction that will commit the upgrade, as ``config.attributes["connection"]``.

Developers writing a migration can run the ``alembic`` command here too, with the
``alembic.ini`` beside this file; the database is ``$SHIPYARD_STORE_METADATA`` or the
ini's ``sqlalchemy.url``.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from shipyard.store.metadata import normalise_uri, open_metadata_store
from shipyard.store.schema import metadata


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters a table by copying it; batch mode writes migrations that way.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _developer_uri() -> str:
    uri = os.environ.get("SHIPYARD_STORE_METADATA") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not uri:
        raise RuntimeError(
            "No database to migrate: set SHIPYARD_STORE_METADATA or sqlalchemy.url in alembic.ini."
        )
    return uri


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _migrate(connection)
        return
    with (
        open_metadata_store(_developer_uri(), migrate=False) as store,
        store.transaction() as connection,
    ):
        _migrate(connection)


def run_offline() -> None:
    url = normalise_uri(_developer_uri())
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=url.get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.config.config_file_name is not None:
    # The developer's ``alembic`` command; Shipyard's own runs leave logging to the app.
    fileConfig(context.config.config_file_name)
if context.is_offline_mode():
    run_offline()
else:
    run_online()
