from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.core.config import load_config, render_config_toml
from shipyard.core.errors import ConfigError


def write(project: Path, text: str) -> Path:
    project.mkdir(parents=True, exist_ok=True)
    path = project / "shipyard.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_configuration_means_everything_embedded(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    assert config.store.metadata == f"sqlite:///{tmp_path / '.shipyard' / 'metadata.db'}"
    assert config.store.artifacts == str(tmp_path / ".shipyard" / "artifacts")
    assert config.config_file is None
    assert config.name == tmp_path.name
    assert set(config.origins.values()) == {"default"}


def test_file_then_environment_precedence(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[project]\nname = "churn"\n[store]\nmetadata = "sqlite:///meta/x.db"\n'
        'artifacts = "blobs"\n[s3]\nendpoint_url = "http://127.0.0.1:9000"\n',
    )
    config = load_config(tmp_path, environ={})
    assert config.name == "churn"
    assert config.store.metadata == f"sqlite:///{tmp_path / 'meta' / 'x.db'}"
    assert config.store.artifacts == str(tmp_path / "blobs")
    assert config.s3.endpoint_url == "http://127.0.0.1:9000"
    assert config.origins["store.metadata"] == str(path)

    env = {
        "SHIPYARD_STORE_METADATA": "postgresql://me@127.0.0.1:5432/db",
        "SHIPYARD_STORE_ARTIFACTS": "s3://bucket/prefix",
    }
    config = load_config(tmp_path, environ=env)
    assert config.store.metadata == "postgresql://me@127.0.0.1:5432/db"
    assert config.store.artifacts == "s3://bucket/prefix"
    assert config.origins["store.artifacts"] == "env SHIPYARD_STORE_ARTIFACTS"
    assert config.name == "churn"


def test_project_found_upward_and_by_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, '[project]\nname = "up"\n')
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    monkeypatch.delenv("SHIPYARD_PROJECT_DIR", raising=False)
    assert load_config().project_dir == tmp_path
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("SHIPYARD_PROJECT_DIR", str(other))
    assert load_config().project_dir == other
    monkeypatch.setenv("SHIPYARD_PROJECT_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="SHIPYARD_PROJECT_DIR=.*is not a folder"):
        load_config()


def test_rendered_template_is_valid(tmp_path: Path) -> None:
    write(tmp_path, render_config_toml('we"ird\\name'))
    assert load_config(tmp_path, environ={}).name == 'we"ird\\name'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[store\nmetadata = 1", r"not valid TOML: .*line 1"),
        ('[stor]\nmetadata = "x"', r"unknown section \[stor\]. Did you mean 'store'\?"),
        ('[store]\nmetdata = "sqlite:///x.db"', r"unknown key 'store.metdata'. Did you mean"),
        ("[store]\nmetadata = 5", r"'store.metadata' must be a string, got int"),
        ('store = "x"', r"'store' must be a table"),
        ('[store]\nmetadata = "mysql://root@x/db"', r"unknown database scheme 'mysql://'"),
        ('[store]\nmetadata = "just-a-path.db"', r"is not a database URI"),
        ('[store]\nmetadata = "sqlite://"', r"names no database file"),
        ('[store]\nartifacts = "gs://bucket/x"', r"unknown artifact store scheme 'gs://'"),
        ('[store]\nartifacts = ""', r"store.artifacts .* is empty"),
    ],
)
def test_bad_configuration_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(tmp_path, environ={})
    assert info.value.hint or str(path) in str(info.value) or "store." in str(info.value)


def test_bad_environment_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="env SHIPYARD_STORE_METADATA.*'redis://'"):
        load_config(tmp_path, environ={"SHIPYARD_STORE_METADATA": "redis://127.0.0.1"})


def test_hostile_files(tmp_path: Path) -> None:
    path = tmp_path / "shipyard.toml"
    path.write_bytes(b"\xff\xfe[store]")
    with pytest.raises(ConfigError, match="is not UTF-8"):
        load_config(tmp_path, environ={})
    path.write_bytes(b"#" * (2 << 20))
    with pytest.raises(ConfigError, match="at most 1 MiB"):
        load_config(tmp_path, environ={})


def test_subsystem_sections_typed_values_and_raw_gate_tables(tmp_path: Path) -> None:
    (tmp_path / "shipyard.toml").write_text(
        "[serving]\nport = 8001\napi_key = 's3cret'\n"
        "[features]\nonline = 'redis://127.0.0.1:6379/0'\n"
        "[gates.churn]\nrecall = { op = '>=', value = 0.6 }\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path, environ={"SHIPYARD_SERVING_PORT": "9000"})
    assert config.get("serving.port") == "9000"
    assert config.origins["serving.port"] == "env SHIPYARD_SERVING_PORT"
    assert config.get("serving.api_key") == "s3cret"
    assert config.get("features.offline", "duckdb") == "duckdb"
    assert config.get("features.online") == "redis://127.0.0.1:6379/0"
    assert config.sections["gates"] == {"churn": {"recall": {"op": ">=", "value": 0.6}}}
    with pytest.raises(ConfigError, match="Unknown configuration section"):
        config.get("nope.key")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gates = 3\n", "'gates' must be a table"),
        ("[serving]\nport = [1, 2]\n", "'serving.port' must be a string"),
        ("[store]\nmetadata = true\n", "'store.metadata' must be a string"),
        ("[serving]\nprot = 1\n", "Did you mean"),
    ],
)
def test_subsystem_sections_bad_values(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "shipyard.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path, environ={})
