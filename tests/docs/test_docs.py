"""The documentation builds with broken links failing, and every Python example in it runs.

Each page's ```python blocks run in order, in one namespace, in a fresh project folder
(``SHIPYARD_PROJECT_DIR``), as a reader pasting them one after another would. A block
preceded by ``<!-- not-run: REASON -->`` is shown, not run (the convention is visible in
the page's source).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(<!-- not-run: [^>]+-->\s*\n)?```python\n(.*?)```", re.DOTALL)
PAGES = sorted(DOCS.glob("*.md"))


def python_blocks(page: Path) -> list[str]:
    """The runnable ```python blocks of ``page``, in order."""
    return [code for skip, code in BLOCK.findall(page.read_text(encoding="utf-8")) if not skip]


def test_docs_build_strictly(tmp_path: Path) -> None:
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("mkdocs is not installed: pip install -e '.[dev]'")
    site = tmp_path / "site"
    done = subprocess.run(  # noqa: S603 (our own interpreter)
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for page in PAGES:
        built = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert built.is_file(), f"{page.name} was not built"


def test_strict_build_fails_on_a_broken_link(tmp_path: Path) -> None:
    """The check the docs rely on: a link to a missing page fails the build."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the guide](missing.md).\n", encoding="utf-8")
    (tmp_path / "mkdocs.yml").write_text(
        "site_name: t\nstrict: true\nnav:\n  - index.md\n", encoding="utf-8"
    )
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "mkdocs", "build", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "missing.md" in done.stdout + done.stderr


def test_every_page_has_examples_or_says_why() -> None:
    assert len(PAGES) >= 10, [p.name for p in PAGES]
    runnable = sum(len(python_blocks(page)) for page in PAGES)
    skipped = sum(page.read_text(encoding="utf-8").count("<!-- not-run:") for page in PAGES)
    assert runnable >= 20 and skipped <= 3, (runnable, skipped)


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.stem)
def test_python_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.setenv("SHIPYARD_PROJECT_DIR", str(project))
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for number, code in enumerate(python_blocks(page), 1):
        try:
            exec(compile(code, f"{page.name} block {number}", "exec"), namespace)  # noqa: S102
        except Exception as exc:
            raise AssertionError(f"{page.name}, python block {number} failed: {exc!r}") from exc
    capsys.readouterr()


def test_configuration_reference_names_every_key() -> None:
    from shipyard.core.config import SCHEMA, STRUCTURED_SECTIONS

    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [
        f"{section}.{key}"
        for section, keys in SCHEMA.items()
        for key in keys
        if f"`{section}.{key}`" not in page
        or f"SHIPYARD_{section.upper()}_{key.upper()}" not in page
    ]
    missing += [name for name in STRUCTURED_SECTIONS if f"[{name}." not in page]
    assert not missing, f"docs/configuration.md does not document: {missing}"


def test_block_extraction_honours_the_not_run_convention(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nx = 1\n```\n\n<!-- not-run: needs a GPU -->\n```python\ny = 2\n```\n"
        "```bash\nz\n```\n",
        encoding="utf-8",
    )
    assert python_blocks(page) == ["x = 1\n"]
