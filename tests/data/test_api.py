"""The module-level API (``import shipyard.data as sy_data``): one call, one job."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import shipyard.data as sy_data
from shipyard.core.config import Config


def test_the_module_functions_do_the_whole_journey(
    config: Config, credit_csv: Path, tmp_path: Path
) -> None:
    contract = sy_data.Contract(
        columns={"Income": sy_data.Column("float64", nullable=False, min=0)},
        max_quarantine_fraction=0.10,
    )
    first = sy_data.ingest("credit", credit_csv, contract, config=config, tags={"v": "1"})
    assert (first.version.reference, first.report.rows_quarantined) == ("credit@v1", 381)
    assert sy_data.read_table("credit@v1", config=config).num_rows == 4073
    report = sy_data.check(pd.read_csv(credit_csv).head(10), contract, config=config)
    assert report.passed and report.rows_read == 10
    sy_data.ingest("credit", pd.read_csv(credit_csv).head(100), config=config)
    assert [v.number for v in sy_data.list_versions("credit", config=config)] == [2, 1]
    assert sy_data.diff("credit@v1", "credit@v2", config=config).rows_a == 4073
    assert sy_data.lineage("credit@v2", config=config).source["kind"] == "pandas"
    out = sy_data.export("credit@v1", tmp_path / "c.parquet", config=config)
    assert out.is_file()
    assert sy_data.set_alias("credit@v1", "prod", config=config).aliases == ("prod",)
    assert sy_data.get_version("credit@prod", config=config).number == 1
    assert len(sy_data.to_pandas("credit@v2", config=config)) == 100
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    sy_data.version_files("docs", folder, config=config)
    assert sy_data.status("docs", config=config).clean
    assert [d.name for d in sy_data.list_datasets(config=config)] == ["credit", "docs"]
    # Importing the modules behind these calls must not replace the functions.
    for name in ("diff", "export", "lineage", "status", "ingest", "check"):
        assert callable(getattr(sy_data, name)), name
