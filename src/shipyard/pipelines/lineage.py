"""Lineage: from any step output (a model, a table) back to the data and code that made it.

Every output records the step run that first produced it; that step's record holds the
content id of every input it read (upstream outputs and dataset versions), its params,
seed and cache key parts (the digest of its code and of each project function it
reaches), and its parent pipeline run carries the git commit. ``lineage`` walks that
graph back to the leaves: dataset versions and steps without inputs.

>>> node = lineage(result.step("train").outputs["output"])  # doctest: +SKIP
>>> [(n.step, n.output_id[:15]) for n in node.walk()]  # doctest: +SKIP
[('train', 'sha256:8f3a...'), ('split', ...), ('load', ...)]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from shipyard.core.config import Config, load_config
from shipyard.core.errors import NotFoundError
from shipyard.store.schema.pipelines import pipeline_outputs, pipeline_runs, pipeline_steps
from shipyard.store.schema.tracking import runs
from shipyard.store.stores import open_stores

__all__ = ["DatasetSource", "LineageNode", "lineage"]

_MAX_DEPTH = 1000


@dataclass(frozen=True, slots=True)
class DatasetSource:
    """A dataset version a step read."""

    argument: str
    reference: str
    content_id: str


@dataclass(frozen=True, slots=True)
class LineageNode:
    """One output and the step execution that produced it, with its inputs' lineage."""

    output_id: str
    kind: str
    step: str
    function: str
    pipeline: str
    pipeline_run_id: str
    step_run_id: str
    git_commit: str | None
    code_digest: str | None
    params: Mapping[str, Any]
    seed: int | None
    inputs: Mapping[str, LineageNode] = field(default_factory=dict)
    """Argument path -> the lineage of the upstream output it read."""
    datasets: tuple[DatasetSource, ...] = ()

    def walk(self) -> Iterator[LineageNode]:
        """This node, then every node upstream of it, depth first."""
        yield self
        for upstream in self.inputs.values():
            yield from upstream.walk()


def lineage(output_id: str, *, config: Config | None = None) -> LineageNode:
    """The lineage of a step output (``NotFoundError`` if no step produced that id)."""
    with open_stores(config or load_config()) as stores, stores.metadata.connect() as conn:
        return _node(conn, output_id, 0)


def _node(conn: Connection, output_id: str, depth: int) -> LineageNode:
    if depth > _MAX_DEPTH:
        raise NotFoundError(f"The lineage of {output_id} is deeper than {_MAX_DEPTH} steps.")
    output = conn.execute(
        select(pipeline_outputs.c.kind, pipeline_outputs.c.run_id).where(
            pipeline_outputs.c.id == output_id
        )
    ).first()
    if output is None or output.run_id is None:
        raise NotFoundError(
            f"No pipeline step produced output {output_id!r}.",
            hint="Output ids are listed by `shipyard pipelines show RUN_ID --json`.",
        )
    row = conn.execute(
        select(
            pipeline_steps,
            pipeline_runs.c.pipeline,
            pipeline_runs.c.params.label("pipeline_params"),
            runs.c.git_commit,
        )
        .join(pipeline_runs, pipeline_runs.c.run_id == pipeline_steps.c.run_id)
        .join(runs, runs.c.id == pipeline_steps.c.run_id, isouter=True)
        .where(pipeline_steps.c.step_run_id == output.run_id)
    ).first()
    if row is None:
        raise NotFoundError(f"The step run {output.run_id} that produced {output_id} is gone.")
    parts = dict(row.key_parts or {})
    dataset_paths = dict(parts.get("datasets") or {})
    inputs = dict(row.inputs)
    datasets = tuple(
        DatasetSource(path, str(reference), inputs[path])
        for path, reference in sorted(dataset_paths.items())
        if path in inputs
    )
    upstream = {
        path: _node(conn, input_id, depth + 1)
        for path, input_id in sorted(inputs.items())
        if path not in dataset_paths
    }
    return LineageNode(
        output_id=output_id,
        kind=output.kind,
        step=row.step,
        function=row.function,
        pipeline=row.pipeline,
        pipeline_run_id=row.run_id,
        step_run_id=output.run_id,
        git_commit=row.git_commit,
        code_digest=parts.get("code"),
        params=_step_params(conn, output.run_id),
        seed=parts.get("seed"),
        inputs=upstream,
        datasets=datasets,
    )


def _step_params(conn: Connection, step_run_id: str) -> dict[str, str]:
    from shipyard.store.schema.tracking import run_params

    rows = conn.execute(
        select(run_params.c.key, run_params.c.value).where(run_params.c.run_id == step_run_id)
    )
    return {row.key: row.value for row in rows}
