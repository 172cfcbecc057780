"""The fluent API (``with start_run(): log_metric(...)``) and the ``shipyard`` facade."""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import shipyard
import shipyard as sy
from shipyard.core.ids import content_id_of_bytes
from shipyard.tracking import fluent
from shipyard.tracking.client import TrackingClient
from shipyard.tracking.validation import RunStateError
from tests.tracking.write_support import run_python, unique


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder the fluent API finds (its default stores: SQLite + local files)."""
    monkeypatch.setenv("SHIPYARD_PROJECT_DIR", str(tmp_path))
    monkeypatch.delenv("SHIPYARD_EXPERIMENT", raising=False)
    monkeypatch.delenv("SHIPYARD_STORE_METADATA", raising=False)
    monkeypatch.delenv("SHIPYARD_STORE_ARTIFACTS", raising=False)
    yield tmp_path
    while sy.active_run() is not None:
        sy.end_run()


@pytest.fixture
def reader(project: Path) -> Iterator[TrackingClient]:
    """A separate client on the project's stores, to read what the fluent API wrote."""
    from shipyard.core.config import load_config

    with TrackingClient(load_config(project)) as client:
        yield client


def test_a_run_in_a_with_block_finishes_with_everything_logged(
    project: Path, reader: TrackingClient, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with sy.start_run("baseline", experiment="churn", tags={"stage": "dev"}) as run:
        assert sy.active_run() is run
        sy.log_param("lr", 0.1)
        sy.log_params({"depth": 6})
        for step in range(5):
            sy.log_metric("loss", 1 / (step + 1), step=step)
        sy.log_metrics({"auc": 0.9, "f1": 0.7}, step=4)
        sy.set_tag("team", "growth")
        sy.set_tags({"owner": "ana"})
        sy.log_artifact(tmp_path / "notes.txt", "docs")
        sy.log_text("summary", "summary.md")
        sy.log_input("churn", content_id_of_bytes(b"v1"), "train")
    assert sy.active_run() is None
    stored = reader.get_run(run.id)
    assert stored.status == "finished" and stored.name == "baseline"
    assert reader.get_experiment("churn").id == stored.experiment_id
    assert stored.params == {"depth": "6", "lr": "0.1"}
    assert stored.metrics == {"auc": 0.9, "f1": 0.7, "loss": 0.2}
    assert stored.tags == {"owner": "ana", "stage": "dev", "team": "growth"}
    paths = [e.path for e in reader.list_artifacts(run.id) if e.kind == "file"]
    assert paths == ["docs/notes.txt", "summary.md"]
    assert [i.dataset for i in stored.inputs] == ["churn"]
    assert run.run.status == "finished"


def test_default_experiment_comes_from_the_environment(
    project: Path, reader: TrackingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sy.start_run() as run:
        pass
    assert reader.get_experiment("Default").id == run.experiment_id
    monkeypatch.setenv("SHIPYARD_EXPERIMENT", "from-env")
    with sy.start_run() as run:
        pass
    assert reader.get_experiment("from-env").id == run.experiment_id


def test_nested_runs_get_their_parent(project: Path, reader: TrackingClient) -> None:
    with sy.start_run("cv", experiment="churn") as parent:
        with pytest.raises(RunStateError, match="nested=True"):
            sy.start_run("oops")
        for fold in range(2):
            with sy.start_run(f"fold-{fold}", nested=True) as child:
                assert sy.active_run() is child
                sy.log_metric("auc", 0.8 + fold / 10)
            assert sy.active_run() is parent
        sy.log_metric("auc", 0.85)
    page = reader.search_runs(["churn"], "attributes.parent_id = '" + parent.id + "'")
    assert sorted(run.name for run in page.runs) == ["fold-0", "fold-1"]
    assert {run.experiment_id for run in page.runs} == {parent.experiment_id}
    assert all(run.status == "finished" for run in page.runs)


def test_an_exception_fails_the_run_records_it_and_propagates(
    project: Path, reader: TrackingClient
) -> None:
    with pytest.raises(ZeroDivisionError), sy.start_run("crash") as run:
        sy.log_metric("loss", 0.5)
        _ = 1 / 0
    stored = reader.get_run(run.id)
    assert stored.status == "failed" and stored.error == "ZeroDivisionError: division by zero"
    assert stored.metrics == {"loss": 0.5}
    assert sy.active_run() is None


def test_keyboard_interrupt_kills_the_run(project: Path, reader: TrackingClient) -> None:
    with pytest.raises(KeyboardInterrupt), sy.start_run("ctrl-c") as run:
        raise KeyboardInterrupt
    assert reader.get_run(run.id).status == "killed"


def test_system_exit_zero_finishes_nonzero_fails(project: Path, reader: TrackingClient) -> None:
    with pytest.raises(SystemExit), sy.start_run("exit-0") as clean:
        raise SystemExit(0)
    with pytest.raises(SystemExit), sy.start_run("exit-2") as broken:
        raise SystemExit(2)
    assert reader.get_run(clean.id).status == "finished"
    assert (reader.get_run(broken.id).status, reader.get_run(broken.id).error) == (
        "failed",
        "SystemExit: 2",
    )


def test_end_run_without_with(project: Path, reader: TrackingClient) -> None:
    run = sy.start_run("manual")
    sy.log_metric("loss", 0.1)
    sy.end_run("killed")
    assert sy.active_run() is None
    sy.end_run()  # nothing active: a no-op
    assert reader.get_run(run.id).status == "killed"


def test_logging_without_an_active_run_is_a_clear_error(project: Path) -> None:
    with pytest.raises(RunStateError, match="No active run.*start_run"):
        sy.log_metric("loss", 0.5)


def test_start_run_with_run_id_resumes_it(project: Path, reader: TrackingClient) -> None:
    with sy.start_run("first") as run:
        sy.log_metric("loss", 0.5, step=0)
    with sy.start_run(run_id=run.id, tags={"resumed": "yes"}) as again:
        assert again.id == run.id
        sy.log_metric("loss", 0.25, step=1)
    stored = reader.get_run(run.id)
    assert stored.status == "finished" and stored.metrics == {"loss": 0.25}
    assert stored.tags == {"resumed": "yes"}


def test_each_thread_has_its_own_stack_and_contexts_can_be_shared(
    project: Path, reader: TrackingClient
) -> None:
    seen: dict[str, object] = {}
    with sy.start_run("main") as run:
        worker = threading.Thread(target=lambda: seen.update(plain=sy.active_run()))
        worker.start()
        worker.join()
        context = contextvars.copy_context()
        shared = threading.Thread(target=lambda: context.run(sy.log_metric, "from_thread", 1.0))
        shared.start()
        shared.join()
    assert seen["plain"] is None
    assert reader.get_run(run.id).metrics == {"from_thread": 1.0}


def test_log_model_in_a_run(project: Path, reader: TrackingClient) -> None:
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])
    with sy.start_run("model") as run:
        info = sy.log_model(model)
    assert info.flavor == "sklearn"
    assert "model/shipyard-model.json" in {e.path for e in reader.list_artifacts(run.id)}


def test_the_stores_follow_the_project_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for project in (first, second):
        project.mkdir()
        monkeypatch.setenv("SHIPYARD_PROJECT_DIR", str(project))
        with sy.start_run(unique()):
            sy.log_metric("loss", 0.5)
    assert (first / ".shipyard" / "metadata.db").is_file()
    assert (second / ".shipyard" / "metadata.db").is_file()


# --- The facade ---------------------------------------------------------------------------


def test_facade_names_are_the_fluent_api() -> None:
    assert sy.start_run is fluent.start_run and sy.log_metric is fluent.log_metric
    assert sy.TrackingClient is TrackingClient
    assert shipyard.__all__ == sorted(shipyard.__all__)
    assert set(shipyard.__all__) <= set(dir(shipyard))
    with pytest.raises(AttributeError, match="no attribute 'log_metrc'"):
        _ = sy.log_metrc


def test_import_shipyard_stays_light() -> None:
    result = run_python(
        """
        import json, sys
        import shipyard
        heavy = ("sqlalchemy", "pandas", "numpy", "pyarrow", "shipyard.tracking.client")
        print(json.dumps([name for name in heavy if name in sys.modules]))
        """
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_tracking_package_exports_are_sorted_and_lazy() -> None:
    import shipyard.tracking as tracking

    assert tracking.__all__ == sorted(tracking.__all__)
    assert tracking.start_run is fluent.start_run
    result = run_python("import shipyard.tracking, sys; print('sqlalchemy' in sys.modules)")
    assert result.stdout.strip() == "False", result.stderr
