"""Writing user-facing files whole."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from shipyard.core.files import write_text_atomically


def test_reports_are_written_whole_with_the_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")
    umask = os.umask(0o022)
    try:
        write_text_atomically(target, "<html>new</html>")
    finally:
        os.umask(umask)
    assert target.read_text(encoding="utf-8") == "<html>new</html>"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary left
    with pytest.raises(OSError):
        write_text_atomically(tmp_path / "missing" / "r.html", "x")
