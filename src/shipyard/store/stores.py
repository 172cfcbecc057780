"""Open a project's stores (metadata database + artifact store) from its configuration."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from shipyard.core.config import Config
from shipyard.store.artifacts import ArtifactStore
from shipyard.store.artifacts_factory import open_artifact_store
from shipyard.store.metadata import MetadataStore, open_metadata_store

__all__ = ["Stores", "open_stores"]


@dataclass
class Stores:
    """The two stores of a project. Close it (or use ``with``) when done."""

    metadata: MetadataStore
    artifacts: ArtifactStore

    def close(self) -> None:
        try:
            self.artifacts.close()
        finally:
            self.metadata.close()

    def __enter__(self) -> Stores:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_artifacts(config: Config) -> ArtifactStore:
    """The configured artifact store."""
    return open_artifact_store(
        config.store.artifacts,
        base_dir=config.project_dir,
        s3_endpoint_url=config.s3.endpoint_url,
    )


def open_stores(config: Config, *, migrate: bool = True) -> Stores:
    """Open (and on first use create and migrate) the configured stores."""
    metadata = open_metadata_store(config.store.metadata, migrate=migrate)
    try:
        artifacts = open_artifacts(config)
    except BaseException:
        metadata.close()
        raise
    return Stores(metadata=metadata, artifacts=artifacts)
