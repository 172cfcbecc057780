"""Declaring steps and pipelines: the DAG comes from the data passed between steps."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.pipelines import (
    OutputHandle,
    PipelineDefinitionError,
    derive_seed,
    on_dataset,
    pipeline,
    step,
)

UNSERIALISABLE = object()


@step
def load(path: str) -> list[int]:
    return [len(path)]


@step
def double(values: list[int], factor: int = 2) -> list[int]:
    return [v * factor for v in values]


@step(outputs=("left", "right"))
def split(values: list[int]) -> tuple[list[int], list[int]]:
    return values[:1], values[1:]


@step
def combine(parts: list[Any], label: str = "x") -> dict[str, Any]:
    return {"label": label, "parts": parts}


@step
def seeded(values: list[int], seed: int = 0) -> int:
    return seed


def test_the_dag_is_the_data_flow() -> None:
    @pipeline(name="flow_test")
    def flow(path: str = "data.csv", factor: int = 3) -> Any:
        raw = load(path)
        left, right = split(double(raw, factor=factor))
        unrelated = load("other.csv")
        return combine([left, right, unrelated], label="all")

    plan = flow.plan()
    assert [n.name for n in plan.nodes] == ["load", "double", "split", "load_2", "combine"]
    edges = {n.name: n.upstream for n in plan.nodes}
    assert edges == {
        "load": (),
        "double": ("load",),
        "split": ("double",),
        "load_2": (),
        "combine": ("split", "load_2"),
    }
    combine_node = plan.node("combine")
    assert set(combine_node.inputs()) == {"parts[0]", "parts[1]", "parts[2]"}
    assert combine_node.params() == {
        "parts": [{"$input": "split.left"}, {"$input": "split.right"}, {"$input": "load_2.output"}],
        "label": "all",
    }
    assert plan.node("double").params() == {"values": {"$input": "load.output"}, "factor": 3}
    assert plan.downstream()["split"] == ["combine"]
    assert set(plan.outputs) == {"combine"}


def test_parameters_shape_the_dag_when_planned() -> None:
    @pipeline(name="shape_test")
    def shaped(rounds: int = 1) -> None:
        values = load("a")
        for _ in range(rounds):
            values = double(values)

    assert len(shaped.plan().nodes) == 2
    assert [n.name for n in shaped.plan({"rounds": 3}).nodes] == [
        "load",
        "double",
        "double_2",
        "double_3",
    ]


def test_a_step_is_a_plain_function_outside_a_pipeline() -> None:
    assert double([1, 2]) == [2, 4]
    assert split([1, 2, 3]) == ([1], [2, 3])


def test_an_unpassed_seed_parameter_gets_the_steps_seed() -> None:
    @pipeline(name="seed_test")
    def seeds() -> None:
        seeded(load("a"))
        seeded(load("b"), seed=7)

    plan = seeds.plan()
    assert plan.node("seeded").inject_seed is True
    assert plan.node("seeded_2").inject_seed is False
    assert "seed" not in plan.node("seeded").params()
    assert plan.node("seeded_2").params()["seed"] == 7
    assert derive_seed(0, "seeded") == derive_seed(0, "seeded")
    assert derive_seed(0, "seeded") != derive_seed(1, "seeded")
    assert derive_seed(0, "seeded") != derive_seed(0, "seeded_2")
    assert 0 <= derive_seed(123, "x") < 2**31


@pytest.mark.parametrize(
    ("use", "needle"),
    [
        (lambda h: h["column"], "['column']"),
        (lambda h: bool(h), "truth test"),
        (lambda h: list(h), "iteration"),
        (lambda h: h.shape, ".shape"),
    ],
)
def test_using_a_handle_as_a_value_explains_itself(use: Any, needle: str) -> None:
    @pipeline(name="misuse_test", register=False)
    def misuse() -> None:
        use(load("a"))

    with pytest.raises(PipelineDefinitionError, match="only exists when the pipeline runs") as info:
        misuse.plan()
    assert needle in str(info.value)
    assert "'load'" in str(info.value)


def test_non_json_arguments_are_refused_naming_the_step_and_argument() -> None:
    @pipeline(name="bad_argument_test", register=False)
    def bad() -> None:
        double(load("a"), factor=object())  # type: ignore[arg-type]

    with pytest.raises(PipelineDefinitionError, match=r"step 'double'.*factor") as info:
        bad.plan()
    assert "Pass data between steps as step outputs" in str(info.value)


def test_wrong_arguments_to_a_step_are_reported_with_its_signature() -> None:
    @pipeline(name="bad_call_test", register=False)
    def bad() -> None:
        double(load("a"), factr=2)  # type: ignore[call-arg]

    with pytest.raises(PipelineDefinitionError, match=r"step 'double'.*factr"):
        bad.plan()


def test_a_pipeline_without_steps_and_a_direct_call_are_errors() -> None:
    @pipeline(name="empty_test", register=False)
    def empty() -> None:
        return None

    with pytest.raises(PipelineDefinitionError, match="calls no step"):
        empty.plan()
    with pytest.raises(PipelineDefinitionError, match=r"\.run\(\.\.\.\)"):
        empty()


def test_a_pipeline_inlines_another_pipeline_called_in_its_body() -> None:
    @pipeline(name="inner_test", register=False)
    def inner(path: str = "x") -> Any:
        return double(load(path))

    @pipeline(name="outer_test", register=False)
    def outer() -> None:
        combine([inner("a"), inner("b")])

    assert [n.name for n in outer.plan().nodes] == [
        "load",
        "double",
        "load_2",
        "double_2",
        "combine",
    ]


def test_handles_from_another_pipeline_are_refused() -> None:
    leaked: list[OutputHandle] = []

    @pipeline(name="leak_a", register=False)
    def first() -> None:
        leaked.append(load("a"))

    @pipeline(name="leak_b", register=False)
    def second() -> None:
        double(leaked[0])
        double(leaked[0])

    first.plan()
    with pytest.raises(PipelineDefinitionError, match="not part of this pipeline"):
        second.plan()


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"backoff": -2}, "backoff"),
        ({"libraries": "scikit-learn"}, "libraries"),
        ({"outputs": ("only",)}, "outputs"),
        ({"outputs": ("a", "a")}, "outputs"),
        ({"name": "bad name!"}, "step name"),
        ({"seed": -3}, "seed"),
    ],
)
def test_bad_step_options_are_refused_naming_the_option(
    options: dict[str, Any], needle: str
) -> None:
    def function() -> None:
        return None

    with pytest.raises(PipelineDefinitionError, match=needle):
        step(**options)(function)


def test_bad_pipeline_declarations_are_refused() -> None:
    def body(version: str = "x") -> None:
        load(version)

    with pytest.raises(PipelineDefinitionError, match="minute field"):
        pipeline(name="cron_test", schedule="61 * * * *")(body)
    with pytest.raises(PipelineDefinitionError, match="not a trigger"):
        pipeline(name="trigger_test", triggers=["churn"])(body)  # type: ignore[list-item]
    with pytest.raises(PipelineDefinitionError, match="parameter the pipeline does not have"):
        pipeline(name="trigger_test", triggers=[on_dataset("churn", param="nope")])(body)
    with pytest.raises(PipelineDefinitionError, match="JSON data"):
        pipeline(name="default_test")(lambda when=UNSERIALISABLE: None)
    with pytest.raises(PipelineDefinitionError, match="dataset name"):
        on_dataset("no such name!")
