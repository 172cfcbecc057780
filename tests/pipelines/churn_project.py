"""A small real pipeline on the churn dataset, written into test projects as pipelines.py."""

from __future__ import annotations

CHURN_PIPELINE = """
    import pandas as pd

    from shipyard.pipelines import log_metrics, pipeline, step


    @step
    def load(path: str) -> pd.DataFrame:
        return pd.read_csv(path)


    @step(outputs=("train", "test"), libraries=["scikit-learn"])
    def split(table: pd.DataFrame, test_fraction: float = 0.25, seed: int = 0):
        from sklearn.model_selection import train_test_split

        train, test = train_test_split(
            table, test_size=test_fraction, random_state=seed, stratify=table["churn"]
        )
        return train.reset_index(drop=True), test.reset_index(drop=True)


    def features(table: pd.DataFrame):
        return table.select_dtypes("number"), table["churn"] == "yes"


    @step(libraries=["scikit-learn"])
    def train(table: pd.DataFrame, n_estimators: int = 25, seed: int = 0):
        from sklearn.ensemble import RandomForestClassifier

        x, y = features(table)
        model = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1)
        return model.fit(x, y)


    @step
    def profile(table: pd.DataFrame) -> dict:
        x, _ = features(table)
        return {name: round(float(value), 6) for name, value in x.mean().items()}


    @step(libraries=["scikit-learn"])
    def evaluate(model, table: pd.DataFrame) -> dict:
        from sklearn.metrics import precision_score, recall_score

        x, y = features(table)
        predicted = model.predict(x)
        metrics = {
            "recall": float(recall_score(y, predicted)),
            "precision": float(precision_score(y, predicted)),
        }
        log_metrics(metrics)
        return metrics


    @pipeline
    def churn(path: str, n_estimators: int = 25) -> dict:
        train_table, test_table = split(load(path))
        model = train(train_table, n_estimators=n_estimators)
        return {
            "model": model,
            "metrics": evaluate(model, test_table),
            "profile": profile(train_table),
        }
"""
