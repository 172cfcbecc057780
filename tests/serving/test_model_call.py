"""The serving path's model call: cheaper than the plain library call, same scores.

A histogram GBM fitted on a DataFrame of numbers is fed the float matrix scikit-learn's
own validation would build (see ``shipyard.models.loaded._matrix_equivalent``); these
tests hold it to the scores of the plain ``predict_proba`` on a DataFrame, bit for bit.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.core.config import load_config
from shipyard.models import ModelRegistry
from tests.serving.helpers import ChurnProject

NUMERIC = [
    "account_length",
    "number_vmail_messages",
    "total_day_minutes",
    "total_day_calls",
    "total_eve_minutes",
    "total_night_minutes",
    "total_intl_minutes",
    "number_customer_service_calls",
]


@pytest.fixture(scope="module")
def gbm_version(tmp_path_factory: pytest.TempPathFactory, datasets_dir: Path) -> Any:
    """(the LoadedModel of a registered numeric GBM, the fitted model, its frame)."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame = pd.read_csv(datasets_dir / "mlc_churn.csv").head(400)[[*NUMERIC, "churn"]]
    # Missing values in an integer and a float column: the GBM routes NaN itself.
    frame.loc[::7, "total_day_minutes"] = np.nan
    frame["number_vmail_messages"] = frame["number_vmail_messages"].astype("Int64")
    frame.loc[::11, "number_vmail_messages"] = pd.NA
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    model.fit(frame[NUMERIC], frame["churn"])
    config = load_config(tmp_path_factory.mktemp("matrix") / "project")
    with ModelRegistry.open(config) as registry:
        registry.register("numeric", model=model, input_example=frame[NUMERIC].head(3))
        loaded = registry.load("numeric@v1")
    return loaded, model, frame


def _records(frame: Any) -> list[dict[str, Any]]:
    return [
        {k: (None if v is None or v != v else v) for k, v in row.items()}
        for row in frame[NUMERIC].to_dict("records")
    ]


def test_numeric_gbm_scores_as_the_plain_call_bit_for_bit(gbm_version: Any) -> None:
    loaded, model, frame = gbm_version
    assert loaded.input_format == "numpy"  # the matrix path is taken
    plain = model.predict_proba(frame[NUMERIC])[:, 1]
    records = _records(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names"
        batch = loaded.predict(records).scores
        one_by_one = np.array([loaded.predict(record).scores[0] for record in records[:60]])
        from_frame = loaded.predict(frame).scores
        import pyarrow as pa

        from_table = loaded.predict(pa.Table.from_pandas(frame[NUMERIC])).scores
    assert np.array_equal(batch, plain)
    assert np.array_equal(one_by_one, plain[:60])
    assert np.array_equal(from_frame, plain)
    assert np.array_equal(from_table, plain)
    assert np.isnan(frame["total_day_minutes"].iloc[0])  # the NaN rows were scored too


def test_the_users_model_keeps_its_column_names(gbm_version: Any) -> None:
    loaded, _, _ = gbm_version
    # Only the scoring copy forgets them; what registry.load hands the user is intact.
    assert list(loaded.model.feature_names_in_) == NUMERIC


def test_a_pipeline_with_string_columns_stays_on_dataframes(churn_project: ChurnProject) -> None:
    import pandas as pd

    with ModelRegistry.open(churn_project.config) as registry:
        loaded = registry.load("churn@v1")
    assert loaded.input_format == "pandas"
    records = [churn_project.record(i) for i in range(20)]
    plain = loaded.model.predict_proba(pd.DataFrame(records))[:, 1]
    assert np.array_equal(loaded.predict(records).scores, plain)
