from __future__ import annotations

from pathlib import Path

import pytest

from tests.serving.helpers import ChurnProject, build_project


@pytest.fixture(scope="session")
def churn_project(tmp_path_factory: pytest.TempPathFactory, datasets_dir: Path) -> ChurnProject:
    """A project with churn@v1 (champion) and churn@v2, shared by the serving tests."""
    return build_project(tmp_path_factory.mktemp("serving") / "project", datasets_dir)


@pytest.fixture(scope="session")
def shipyard_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout as a wheel, built once (what `shipyard build` puts in the image)."""
    from shipyard.serving.build import _find_wheel

    return _find_wheel(None, tmp_path_factory.mktemp("wheel"))
