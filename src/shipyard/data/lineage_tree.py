"""Lineage: where a version came from, as a tree.

Each version records its source (files with their hashes, a query and its database, an
in-memory table, or a transform with its SQL or code hash) and, when it was derived, the
upstream versions it read, by content id. ``lineage`` walks those edges through this
store; an upstream version that is not here (copied from elsewhere) appears with its id.

>>> node = client.lineage("churn_features@v2")
>>> [child.reference for child in node.upstream]
['churn@v5', 'customers@v1']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import NotFoundError
from shipyard.data.records import DatasetVersion

if TYPE_CHECKING:
    from shipyard.data.client import DatasetClient

__all__ = ["LineageNode", "build_lineage"]


@dataclass(frozen=True)
class LineageNode:
    """A version in a lineage tree and the versions it was computed from."""

    reference: str
    content_id: str
    source: dict[str, Any]
    input_name: str | None
    version: DatasetVersion | None
    upstream: tuple[LineageNode, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "content_id": self.content_id,
            "input": self.input_name,
            "in_store": self.version is not None,
            "source": self.source,
            "upstream": [child.to_dict() for child in self.upstream],
        }


def build_lineage(
    client: DatasetClient,
    version: DatasetVersion,
    *,
    depth: int = 10,
    input_name: str | None = None,
) -> LineageNode:
    """The lineage tree of ``version``, ``depth`` levels up."""
    children: list[LineageNode] = []
    if depth > 0:
        for edge in version.upstream:
            prefix = edge.content_id.removeprefix("sha256:")
            try:
                upstream = client.get_version(f"{edge.dataset}@{prefix}")
            except NotFoundError:
                children.append(
                    LineageNode(
                        f"{edge.dataset}@{prefix[:12]}",
                        edge.content_id,
                        {"kind": "missing", "display": "not in this store"},
                        edge.input_name,
                        None,
                        (),
                    )
                )
                continue
            children.append(
                build_lineage(client, upstream, depth=depth - 1, input_name=edge.input_name)
            )
    return LineageNode(
        version.reference,
        version.content_id,
        dict(version.source),
        input_name,
        version,
        tuple(children),
    )
