"""Concurrent writers on SQLite and PostgreSQL: registrations never share a number, alias
moves never interleave (each move starts where the previous one ended), serials count
every change."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from shipyard.core.config import Config
from shipyard.models.registry import ModelRegistry
from tests.models.conftest import postgres_project

WRITERS = 3
MOVES_PER_PROCESS = 4


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, project: Config, tmp_path: Path) -> Config:
    if request.param == "sqlite":
        return project
    return postgres_project(tmp_path, request.getfixturevalue("postgres_uri"))


def _models(numeric_xy: tuple[Any, Any], count: int) -> list[Any]:
    from sklearn.linear_model import LogisticRegression

    X, y = numeric_xy
    return [
        LogisticRegression(C=0.01 * (i + 1), max_iter=200).fit(X.to_numpy(), y)
        for i in range(count)
    ]


def test_concurrent_registrations_get_distinct_numbers(
    backend: Config, numeric_xy: tuple[Any, Any]
) -> None:
    X, _ = numeric_xy
    models = _models(numeric_xy, WRITERS)

    def register(model: Any) -> tuple[int, str]:
        with ModelRegistry.open(backend) as registry:
            version = registry.register("churn", model=model, input_example=X.head(2))
            return version.number, version.id

    with ThreadPoolExecutor(WRITERS) as pool:
        results = list(pool.map(register, models))
    assert sorted(number for number, _ in results) == list(range(1, WRITERS + 1))
    assert len({content for _, content in results}) == WRITERS
    # The same package (a run's logged files) from several writers at once: one version.
    from shipyard.tracking.client import TrackingClient

    with TrackingClient(backend) as tracking:
        run = tracking.create_run("churn")
        tracking.log_model(run.id, models[0], "model", input_example=X.head(2))
        tracking.set_terminated(run.id)

    def register_run(_: int) -> int:
        with ModelRegistry.open(backend) as registry:
            return registry.register("churn", run_id=run.id).number

    with ThreadPoolExecutor(WRITERS) as pool:
        same = set(pool.map(register_run, range(WRITERS)))
    assert same == {WRITERS + 1}
    with ModelRegistry.open(backend) as registry:
        assert [v.number for v in registry.list_versions("churn")] == list(
            range(WRITERS + 1, 0, -1)
        )


def _move_aliases(config: Config, worker: int) -> None:
    with ModelRegistry.open(config) as registry:
        for step in range(MOVES_PER_PROCESS):
            number = 1 + (worker + step) % 2
            registry.set_alias(f"churn@v{number}", "champion", actor=f"worker-{worker}")


def test_concurrent_alias_moves_keep_the_audit_chain(
    backend: Config, numeric_xy: tuple[Any, Any]
) -> None:
    X, _ = numeric_xy
    with ModelRegistry.open(backend) as registry:
        for model in _models(numeric_xy, 2):
            registry.register("churn", model=model, input_example=X.head(2))
        start = registry.serial("churn")
    # Processes (fork: no re-import), each with its own connections, racing on one alias.
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_move_aliases, args=(backend, worker)) for worker in range(WRITERS)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0
    with ModelRegistry.open(backend) as registry:
        moves = list(reversed(registry.alias_history("churn", "champion")))
        assert len(moves) == WRITERS * MOVES_PER_PROCESS
        assert moves[0].from_version is None
        for previous, move in zip(moves, moves[1:], strict=False):
            assert move.from_version == previous.to_version  # no lost or interleaved move
        assert registry.serial("churn") == start + WRITERS * MOVES_PER_PROCESS
        assert registry.get("churn@champion").number == moves[-1].to_version
        assert {m.actor for m in moves} == {f"worker-{w}" for w in range(WRITERS)}
