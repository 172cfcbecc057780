"""Real data for the format tests: the telecom churn and credit scoring CSVs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def churn(datasets_dir: Path) -> tuple[Any, Any]:
    """mlc_churn.csv as (features, target 'no'/'yes'); string columns stay strings."""
    import pandas as pd

    frame = pd.read_csv(datasets_dir / "mlc_churn.csv")
    target = frame.pop("churn")
    return frame, target


@pytest.fixture(scope="session")
def churn_categorical(churn: tuple[Any, Any]) -> tuple[Any, Any]:
    """The churn features with string columns as pandas categories (what boosters take)."""
    features, target = churn
    frame = features.copy()
    for column in frame.select_dtypes(exclude="number").columns:
        frame[column] = frame[column].astype("category")
    return frame, target


@pytest.fixture(scope="session")
def credit(datasets_dir: Path) -> tuple[Any, Any]:
    """credit_data.csv numeric columns (with their real missing values) and the loan amount."""
    import pandas as pd

    frame = pd.read_csv(datasets_dir / "credit_data.csv")
    target = frame.pop("Amount").astype(float)
    return frame.select_dtypes("number"), target


@pytest.fixture(scope="session")
def churn_pipeline(churn: tuple[Any, Any]) -> Any:
    """ColumnTransformer(OneHotEncoder + StandardScaler) + LogisticRegression, fitted."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features, target = churn
    categorical = features.select_dtypes(exclude="number").columns.tolist()
    numeric = features.select_dtypes("number").columns.tolist()
    prep = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
            ("num", StandardScaler(), numeric),
        ]
    )
    pipeline = Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=500))])
    return pipeline.fit(features, target)
