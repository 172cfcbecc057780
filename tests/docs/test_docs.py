"""The documentation builds with broken links failing, and every example in it runs.

Each page's ```python and shell (```bash, ```sh, ```console) blocks run in page order in
one fresh project folder, as a reader pasting them one after another would: Python
blocks in one namespace (with ``SHIPYARD_PROJECT_DIR`` set to the folder), shell blocks
each in a new ``bash -e -o pipefail`` in the folder, with the virtualenv's ``shipyard`` on
``PATH`` (a ```console block runs its ``$ `` lines). A block that cannot run here (an
install, a server that runs until stopped, a remote backend) is preceded by
``<!-- not-run: REASON -->``: shown, not run, and the reason is visible in the page's
source. A block preceded by ``<!-- file: NAME -->`` (a contract, a ``shipyard.toml``) is
what the text asks the reader to save as NAME: it is written there, in page order. An
unmarked block that fails fails the test, naming the page and line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FENCE = re.compile(
    r"(?:<!-- (?P<directive>not-run|file): (?P<value>[^>]*?) -->[ \t]*\n)?"
    r"^```(?P<lang>[a-z]*)[ \t]*\n(?P<code>.*?)^```",
    re.DOTALL | re.MULTILINE,
)
SHELLS = frozenset({"bash", "sh", "shell", "console"})
PAGES = sorted(DOCS.glob("*.md"))
BIN = Path(sys.executable).parent
SHELL_TIMEOUT = 300


@dataclass(frozen=True)
class Block:
    """A fenced code block of a page: its language, code, the line of its fence, why it
    is not run, and the file it is saved as (``<!-- file: NAME -->``), if any."""

    lang: str
    code: str
    line: int
    not_run: str | None = None
    file: str | None = None

    @property
    def runs(self) -> bool:
        return (
            self.not_run is None
            and self.file is None
            and (self.lang == "python" or self.lang in SHELLS)
        )

    def script(self) -> str:
        """The shell script of a shell block (a console block: its ``$ `` commands)."""
        if self.lang != "console":
            return self.code
        lines: list[str] = []
        continued = False
        for line in self.code.splitlines():
            if line.startswith("$ ") or continued:
                command = line[2:] if line.startswith("$ ") and not continued else line
                lines.append(command)
                continued = command.rstrip().endswith("\\")
        return "\n".join(lines) + "\n"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, in order."""
    text = page.read_text(encoding="utf-8")
    return [
        Block(
            match["lang"],
            match["code"],
            text.count("\n", 0, match.start("code")),
            match["value"].strip() if match["directive"] == "not-run" else None,
            match["value"].strip() if match["directive"] == "file" else None,
        )
        for match in FENCE.finditer(text)
    ]


def python_blocks(page: Path) -> list[str]:
    """The runnable ```python blocks of ``page``, in order."""
    return [b.code for b in blocks(page) if b.runs and b.lang == "python"]


def run_page(page: Path, project: Path) -> None:
    """Run the runnable blocks of ``page`` in order in ``project`` (the cwd)."""
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    env = {k: v for k, v in os.environ.items() if k != "SHIPYARD_PROJECT_DIR"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    for block in blocks(page):
        where = f"{page.name} line {block.line} ({block.lang})"
        if block.file is not None:  # the reader saves it: so does the test
            (project / block.file).write_text(block.code, encoding="utf-8")
        if not block.runs:
            continue
        if block.lang == "python":
            try:
                exec(compile(block.code, where, "exec"), namespace)  # noqa: S102
            except Exception as exc:
                raise AssertionError(f"{where} failed: {exc!r}") from exc
            continue
        done = subprocess.run(  # noqa: S603 (the page's own commands, in a scratch folder)
            ["bash", "-e", "-o", "pipefail", "-c", block.script()],  # noqa: S607
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=SHELL_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"{where} exited {done.returncode}; mark it <!-- not-run: REASON --> if it "
                f"cannot run here.\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n"
                f"{done.stderr[-3000:]}"
            )


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
    every = [block for page in PAGES for block in blocks(page)]
    python = [b for b in every if b.lang == "python"]
    shell = [b for b in every if b.lang in SHELLS]
    assert sum(b.runs for b in python) >= 20 and sum(not b.runs for b in python) <= 3
    assert sum(b.runs for b in shell) >= 8, [b for b in shell if b.runs]
    assert sum(not b.runs for b in shell) <= 8, [b for b in shell if not b.runs]
    assert all(b.not_run for b in every if b.not_run is not None), "a not-run needs a reason"
    for page in PAGES:  # no fence the extraction misses (an indented one would be)
        fences = page.read_text(encoding="utf-8").count("```")
        assert fences == 2 * len(blocks(page)), f"{page.name}: a fence is not at a line start"


@pytest.mark.parametrize(
    "page", [p for p in PAGES if any(b.runs for b in blocks(p))], ids=lambda p: p.stem
)
def test_page_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.setenv("SHIPYARD_PROJECT_DIR", str(project))
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    run_page(page, project)
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
        "```bash\nz\n```\n<!-- not-run: starts a server -->\n```sh\nserve\n```\n"
        "```console\n$ shipyard runs list \\\n    --max 2\nrun  name\n$ echo ok\nok\n```\n"
        "```toml\nkey = 1\n```\n<!-- file: shipyard.toml -->\n```toml\n[store]\n```\n",
        encoding="utf-8",
    )
    assert python_blocks(page) == ["x = 1\n"]
    found = blocks(page)
    assert [(b.lang, b.line, b.not_run, b.file) for b in found] == [
        ("python", 1, None, None),
        ("python", 6, "needs a GPU", None),
        ("bash", 9, None, None),
        ("sh", 13, "starts a server", None),
        ("console", 16, None, None),
        ("toml", 23, None, None),
        ("toml", 27, None, "shipyard.toml"),
    ]
    assert [b.runs for b in found] == [True, False, True, False, True, False, False]
    assert found[4].script() == "shipyard runs list \\\n    --max 2\necho ok\n"


def test_an_unmarked_failing_shell_block_fails_and_a_marked_one_is_skipped(
    tmp_path: Path,
) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- not-run: would fail -->\n```bash\nfalse\n```\n"
        "<!-- file: v.sh -->\n```bash\nshipyard --version\n```\n"
        "```bash\nbash v.sh > version.txt\n```\n"
        "```python\nfrom pathlib import Path\nassert Path('version.txt').read_text()\n```\n"
        "```bash\necho made-it\nfalse | cat\necho not-reached\n```\n",
        encoding="utf-8",
    )
    project = tmp_path / "project"
    project.mkdir()
    cwd = Path.cwd()
    os.chdir(project)  # python blocks read the folder shell blocks wrote to
    try:
        with pytest.raises(AssertionError, match=r"page.md line 16 \(bash\) exited 1") as failed:
            run_page(page, project)
    finally:
        os.chdir(cwd)
    assert "made-it" in str(failed.value) and "not-reached" not in str(failed.value)
    assert (project / "version.txt").read_text().strip()
