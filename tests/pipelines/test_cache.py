"""Step caching: every part of the key flips it; a hit needs outputs that still verify."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from shipyard.core.ids import ContentId
from shipyard.pipelines import PipelineDefinitionError, run_pipeline
from shipyard.pipelines.runner import PipelineResult
from shipyard.store.stores import open_stores
from tests.pipelines.conftest import Project

PIPELINES = """
    from shipyard.pipelines import pipeline, step

    import helpers

    LIMIT = 100


    @step
    def source(n: int = 3) -> list[int]:
        return list(range(n))


    @step
    def transform(values: list[int], offset: int = 1) -> list[int]:
        return [helpers.shift(v, offset) for v in values if v < LIMIT]


    @step(cache=False)
    def report(values: list[int]) -> dict:
        return {"total": sum(values)}


    @pipeline
    def numbers(n: int = 3, offset: int = 1) -> None:
        report(transform(source(n), offset=offset))
"""

SOURCE = "@step\n    def source"

HELPERS = """
    def shift(value: int, offset: int) -> int:
        return value + offset
"""


def executed(result: PipelineResult) -> set[str]:
    return {s.step for s in result.run.steps if s.status == "finished"}


def key(result: PipelineResult, step: str) -> str:
    found = result.step(step).cache_key
    assert found is not None
    return found


def run(project: Project, **params: int) -> PipelineResult:
    return run_pipeline(project.pipeline("numbers"), params, config=project.config)


def test_each_part_of_the_key_flips_it(project: Project) -> None:
    project.write("helpers.py", HELPERS)
    project.write("pipelines.py", PIPELINES)
    first = run(project)
    assert executed(first) == {"source", "transform", "report"}
    assert first.step("transform").key_parts is not None

    again = run(project)
    assert executed(again) == {"report"}  # report opted out of the cache
    assert {s.step: s.status for s in again.run.steps} == {
        "source": "cached",
        "transform": "cached",
        "report": "finished",
    }
    assert again.step("transform").source_run_id == first.step("transform").step_run_id
    assert again.step("transform").outputs == first.step("transform").outputs

    # formatting, comments and docstrings are not part of the key
    project.write(
        "pipelines.py",
        PIPELINES.replace(
            "        return [helpers.shift(v, offset) for v in values if v < LIMIT]",
            '        """Shift every value."""\n'
            "        # a comment\n"
            "        return [helpers.shift(v, offset)\n"
            "                for v in values if v < LIMIT]",
        ),
    )
    assert executed(run(project)) == {"report"}

    # a helper in another project module, reached through the step's globals
    project.write("helpers.py", HELPERS.replace("value + offset", "value + offset * 10"))
    changed_helper = run(project)
    assert executed(changed_helper) == {"transform", "report"}
    assert key(changed_helper, "transform") != key(first, "transform")
    assert key(changed_helper, "source") == key(first, "source")
    project.write("helpers.py", HELPERS)

    # the step's own source
    project.write("pipelines.py", PIPELINES.replace("if v < LIMIT]", "if v <= LIMIT]"))
    assert executed(run(project)) == {"transform", "report"}

    # a module-level constant the step reads
    project.write("pipelines.py", PIPELINES.replace("LIMIT = 100", "LIMIT = 1"))
    constant = run(project)
    assert executed(constant) == {"transform", "report"}
    assert constant.step("transform").outputs != first.step("transform").outputs

    # a parameter
    project.write("pipelines.py", PIPELINES)
    param = run(project, offset=2)
    assert executed(param) == {"transform", "report"}
    assert key(param, "source") == key(first, "source")

    # an input: source's output changes, so transform's input id changes
    upstream = run(project, n=4, offset=2)
    assert executed(upstream) == {"source", "transform", "report"}
    assert upstream.step("transform").inputs["values"] != param.step("transform").inputs["values"]

    # back to the first code and params: everything but report comes from the cache
    assert executed(run(project)) == {"report"}


def test_a_declared_library_version_is_part_of_the_key(project: Project, tmp_path: Path) -> None:
    site = tmp_path / "site"

    def install(version: str) -> None:
        for old in site.glob("demo_lib-*.dist-info"):
            for file in old.iterdir():
                file.unlink()
            old.rmdir()
        info = site / f"demo_lib-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: demo-lib\nVersion: {version}\n"
        )

    install("1.0")
    sys.path.insert(0, str(site))
    try:
        project.write("helpers.py", HELPERS)
        project.write(
            "pipelines.py",
            PIPELINES.replace(SOURCE, "@step(libraries=['demo-lib'])\n    def source"),
        )
        first = run(project)
        assert first.step("source").key_parts["libraries"] == {"demo-lib": "1.0"}  # type: ignore[index]
        assert executed(run(project)) == {"report"}
        install("2.0")
        upgraded = run(project)
        assert upgraded.step("source").key_parts["libraries"] == {"demo-lib": "2.0"}  # type: ignore[index]
        assert "source" in executed(upgraded)
        assert key(upgraded, "source") != key(first, "source")
    finally:
        sys.path.remove(str(site))

    project.write(
        "pipelines.py",
        PIPELINES.replace(SOURCE, "@step(libraries=['no-such-dist'])\n    def source"),
    )
    with pytest.raises(Exception, match="no-such-dist") as info:
        run(project)
    assert "not installed" in str(info.value)


def test_a_missing_or_corrupted_output_blob_means_a_miss(project: Project) -> None:
    project.write("helpers.py", HELPERS)
    project.write("pipelines.py", PIPELINES)
    first = run(project)
    output = first.step("transform").outputs["output"]
    with open_stores(project.config) as stores:
        with stores.metadata.connect() as conn:
            from shipyard.pipelines.cache import load_outputs

            record = load_outputs(conn, [output])[output]
        blob = ContentId(next(iter(record.blobs.values())))
        assert stores.artifacts.delete(blob)

    deleted = run(project)
    assert executed(deleted) == {"transform", "report"}
    assert deleted.step("transform").outputs["output"] == output  # rebuilt, same id
    assert executed(run(project)) == {"report"}  # the rebuilt entry is a hit again

    blob_path = next((project.root / ".shipyard" / "artifacts" / "blobs").rglob(blob.split(":")[1]))
    blob_path.chmod(0o644)
    blob_path.write_bytes(b"[9,9,9]")
    assert executed(run(project)) == {"transform", "report"}


def test_no_cache_runs_everything_with_the_same_output_ids(project: Project) -> None:
    project.write("helpers.py", HELPERS)
    project.write("pipelines.py", PIPELINES)
    first = run(project)
    forced = run_pipeline(project.pipeline("numbers"), config=project.config, cache=False)
    assert executed(forced) == {"source", "transform", "report"}
    for name in ("source", "transform", "report"):
        assert forced.step(name).outputs == first.step(name).outputs
        assert key(forced, name) == key(first, name)


def test_the_seed_is_part_of_the_key_and_reaches_the_step(project: Project) -> None:
    project.write(
        "pipelines.py",
        """
        import random

        from shipyard.pipelines import current_step, pipeline, step


        @step
        def draw(seed: int = 0) -> list:
            return [seed, current_step().seed, random.random()]


        @pipeline
        def seeded() -> None:
            draw()
        """,
    )
    seeded = project.pipeline("seeded")
    first = run_pipeline(seeded, config=project.config, seed=1)
    same = run_pipeline(seeded, config=project.config, seed=1)
    other = run_pipeline(seeded, config=project.config, seed=2)
    assert executed(same) == set() and executed(other) == {"draw"}
    assert key(first, "draw") != key(other, "draw")
    from shipyard.pipelines import load_output

    values = load_output(first.step("draw").outputs["output"], config=project.config)
    assert values[0] == values[1] == first.step("draw").key_parts["seed"]  # type: ignore[index]
    with pytest.raises(PipelineDefinitionError, match="seed"):
        run_pipeline(seeded, config=project.config, seed=-1)


def test_garbage_collection_keeps_every_output_blob(project: Project) -> None:
    from shipyard.pipelines import load_output
    from shipyard.store.gc import collect_garbage

    project.write("helpers.py", HELPERS)
    project.write("pipelines.py", PIPELINES)
    first = run(project)
    with open_stores(project.config) as stores:
        report = collect_garbage(
            stores.artifacts, stores.metadata.referenced_blob_ids, grace_seconds=0
        )
    assert report.examined > 0 and report.deleted == 0
    for step in first.run.steps:
        for output in step.outputs.values():
            load_output(output, config=project.config)
    assert executed(run(project)) == {"report"}  # every cached output still verifies
