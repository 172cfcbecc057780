"""Fixtures for the pipelines tests: a project folder with its own pipelines.py, a Ray cluster.

A test writes the project's modules (``pipelines.py``, helpers) into a fresh folder and
imports them through the same discovery ``shipyard run`` uses; modules imported from it
are forgotten afterwards, so the next test can write different code under the same names.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from shipyard.core.config import Config, load_config
from shipyard.pipelines.definition import Pipeline
from shipyard.pipelines.registry import get_pipeline, import_project_pipelines
from tests.conftest import DATASETS, service_missing

CHURN_CSV = DATASETS / "mlc_churn.csv"


class Project:
    """A project folder: its configuration, and the Python modules a test writes into it."""

    def __init__(self, root: Path, metadata_uri: str | None = None) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        lines = ['[project]\nname = "test"\n']
        if metadata_uri is not None:
            lines.append(f'[store]\nmetadata = "{metadata_uri}"\n')
        (self.root / "shipyard.toml").write_text("\n".join(lines))

    @property
    def config(self) -> Config:
        return load_config(self.root, environ={})

    def write(self, name: str, source: str) -> Path:
        """Write ``name`` (e.g. ``pipelines.py``) and forget modules imported from the project."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        # A fresh mtime even within the same clock tick: the fingerprint memo checks it.
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        self.forget_modules()
        return path

    def load(self) -> ModuleType:
        module = import_project_pipelines(self.root)
        assert module is not None
        return module

    def pipeline(self, name: str) -> Pipeline:
        return get_pipeline(name, self.root)

    def forget_modules(self) -> None:
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if file and Path(file).resolve().is_relative_to(self.root):
                del sys.modules[name]


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """A project on the embedded default stores (SQLite, local folder)."""
    chosen = Project(tmp_path / "project")
    yield chosen
    chosen.forget_modules()
    if str(chosen.root) in sys.path:
        sys.path.remove(str(chosen.root))


@pytest.fixture(params=["sqlite", "postgres"])
def backend_project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    """The same project on SQLite and on PostgreSQL (the conformance parameter)."""
    uri = request.getfixturevalue("postgres_uri") if request.param == "postgres" else None
    chosen = Project(tmp_path / "project", uri)
    yield chosen
    chosen.forget_modules()
    if str(chosen.root) in sys.path:
        sys.path.remove(str(chosen.root))


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local Ray cluster (2 CPUs, loopback only) for the whole test session."""
    try:
        import ray
    except ImportError as exc:
        service_missing("ray", f"ray is not installed ({exc}); pip install ray")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # else Ray writes a token under the home folder
    temp = tmp_path_factory.mktemp("ray")
    try:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=str(temp),
            log_to_driver=False,
        )
    except Exception as exc:
        service_missing("ray", f"ray.init failed: {type(exc).__name__}: {exc}")
    try:
        yield ray
    finally:
        ray.shutdown()
