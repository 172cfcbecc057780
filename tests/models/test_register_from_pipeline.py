"""Registering the model a pipeline step returned: ``shipyard models register --pipeline-run``
and ``register_step_model``, on a real two-pipeline project over the churn data."""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass

import pytest

from shipyard.cli.main import main
from shipyard.core.config import Config, load_config
from shipyard.core.errors import AmbiguousReferenceError, NotFoundError
from shipyard.models.registry import ModelRegistry
from shipyard.pipelines import PipelineResult, load_output, run_pipeline
from shipyard.pipelines.step_models import register_step_model
from tests.models.conftest import ChurnProject

PIPELINES = """
    from shipyard.pipelines import dataset, log_metrics, pipeline, step

    COLUMNS = ["total_day_minutes", "number_customer_service_calls", "total_intl_calls"]


    @step
    def prepare(table):
        return table.to_pandas()[COLUMNS + ["churn"]]


    @step
    def fit(frame, c: float = 1.0):
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=c, max_iter=300).fit(frame[COLUMNS], frame["churn"])
        log_metrics({"accuracy": model.score(frame[COLUMNS], frame["churn"])})
        return model


    @step
    def fit_tree(frame):
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier(max_depth=3, random_state=0).fit(
            frame[COLUMNS], frame["churn"]
        )


    @pipeline
    def one_model() -> dict:
        return {"model": fit(prepare(dataset("churn")))}


    @pipeline
    def two_models() -> dict:
        frame = prepare(dataset("churn"))
        return {"logistic": fit(frame), "tree": fit_tree(frame)}
"""


@dataclass(frozen=True)
class Trained:
    config: Config
    one: PipelineResult
    two: PipelineResult


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, churn_template: ChurnProject) -> Trained:
    root = tmp_path_factory.mktemp("step-models") / "project"
    shutil.copytree(churn_template.root, root)
    (root / "pipelines.py").write_text(textwrap.dedent(PIPELINES), encoding="utf-8")
    config = load_config(root)
    one = run_pipeline("one_model", config=config)
    two = run_pipeline("two_models", config=config)  # prepare and fit: cache hits
    return Trained(config, one, two)


def cli(config: Config, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["-C", str(config.project_dir), "models", "register", *args])
    out, err = capsys.readouterr()
    return code, out + err


def test_the_cli_registers_a_steps_model_with_its_run_and_datasets(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = cli(trained.config, capsys, "from_step", "--pipeline-run", trained.one.run_id[:8])
    assert code == 0, out
    assert "Registered from_step@v1" in out and "3 inputs" in out

    fit = trained.one.step("fit")
    with ModelRegistry.open(trained.config) as registry:
        version = registry.get("from_step@v1")
        assert version.run_id == fit.step_run_id  # the step's tracking run, with its metrics
        assert version.dataset_versions == ("churn@v1",)  # read upstream, by `prepare`
        assert version.tags["shipyard.pipeline.run"] == trained.one.run_id
        assert version.tags["shipyard.pipeline.step"] == "fit"
        assert version.tags["shipyard.pipeline.output"] == fit.outputs["output"]
        # The signature's rules come from the upstream dataset's contract.
        assert version.signature.input("number_customer_service_calls").rules == {
            "min": 0,
            "max": 20,
        }
        assert [f.name for f in version.signature.inputs] == [
            "total_day_minutes",
            "number_customer_service_calls",
            "total_intl_calls",
        ]
        rows = [
            {"total_day_minutes": 300.0, "number_customer_service_calls": 6, "total_intl_calls": 1}
        ]
        served = registry.load(version.reference).predict(rows).labels
    stepped = load_output(fit.outputs["output"], config=trained.config)
    assert list(served) == list(stepped.predict(_frame(rows)))


def test_a_cached_step_is_traced_to_the_run_that_trained_it(trained: Trained) -> None:
    cached = trained.two.step("fit")
    assert cached.status == "cached" and cached.step_run_id is None
    with ModelRegistry.open(trained.config) as registry:
        version = register_step_model(
            registry, "cached", trained.two.run_id, step="fit", training_data="churn@v1"
        )
    assert version.run_id == trained.one.step("fit").step_run_id == cached.source_run_id
    assert version.dataset_versions == ("churn@v1",)  # given and upstream: listed once


def test_several_models_need_a_step_and_the_error_names_them(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        ModelRegistry.open(trained.config) as registry,
        pytest.raises(AmbiguousReferenceError, match=r"2 model outputs \(fit.output, fit_tree"),
    ):
        register_step_model(registry, "ambiguous", trained.two.run_id)
    code, out = cli(
        trained.config, capsys, "tree", "--pipeline-run", trained.two.run_id,
        "--step", "fit_tree", "--output", "output",
    )  # fmt: skip
    assert code == 0, out
    assert "Registered tree@v1" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--step", "nope"], "has no step 'nope'; its steps: prepare, fit"),
        (["--step", "fit", "--output", "model"], "Step 'fit' of pipeline run .* no output 'model'"),
        (
            ["--step", "prepare"],
            r"Step 'prepare' .* no model output \(outputs: prepare.output \(table\)",
        ),
    ],
)
def test_a_bad_step_reference_is_named(
    trained: Trained, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    import re

    code, out = cli(trained.config, capsys, "bad", "--pipeline-run", trained.one.run_id, *args)
    assert code != 0 and re.search(message, out), out
    assert "Traceback" not in out


def test_a_bad_run_reference_is_named(trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    step_run = trained.one.step("fit").step_run_id
    assert step_run is not None
    code, out = cli(trained.config, capsys, "bad", "--pipeline-run", step_run[:10])
    assert code != 0 and "is the run of step 'fit', not a pipeline run" in out, out
    assert f"--pipeline-run {trained.one.run_id[:12]} --step fit" in out
    code, out = cli(trained.config, capsys, "bad", "--pipeline-run", "abcdef12")
    assert code != 0 and "No pipeline run 'abcdef12'" in out, out
    code, out = cli(trained.config, capsys, "bad", "--pipeline-run", "zz")
    assert code != 0 and "'zz' is not a pipeline run id" in out, out


def test_one_source_at_a_time(trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = cli(trained.config, capsys, "bad")
    assert code == 2 and "Give exactly one of --run" in out, out
    run_id = trained.one.run_id
    code, out = cli(trained.config, capsys, "bad", "--run", "abc123", "--pipeline-run", run_id)
    assert code != 0 and "not both" in out, out
    code, out = cli(trained.config, capsys, "bad", "--run", "abc123", "--step", "fit")
    assert code != 0 and "go with --pipeline-run" in out, out
    code, out = cli(trained.config, capsys, "bad", "--pipeline-run", run_id, "--path", "m")
    assert code != 0 and "goes with --run" in out, out
    with ModelRegistry.open(trained.config) as registry:
        assert "bad" not in registry.list_models()


def test_source_run_needs_a_model_and_an_existing_run(trained: Trained) -> None:
    from shipyard.models import ModelInputError

    model = load_output(trained.one.step("fit").outputs["output"], config=trained.config)
    with ModelRegistry.open(trained.config) as registry:
        with pytest.raises(ModelInputError, match="no model was given"):
            registry.register("bad", source_run=trained.one.run_id)
        with pytest.raises(NotFoundError, match="ffffff"):
            registry.register("bad", model, source_run="ffffff", training_data="churn@v1")


def _frame(rows: list[dict[str, float]]) -> object:
    import pandas as pd

    return pd.DataFrame(rows)
