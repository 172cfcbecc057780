"""What the registry's ``LoadedModel.predict`` adds around a model, one row at a time.

Serving's budget is under 1 ms of overhead per single-row request over the model's own
call. This measures the registry's share of it, in one process, on models trained on
../shared/datasets/mlc_churn.csv:

- ``sklearn``: a scikit-learn pipeline (one-hot + scaling + logistic regression) fitted
  on a DataFrame, so each row becomes a one-row DataFrame (the pandas path);
- ``lightgbm``: a LightGBM classifier fitted on a float matrix (the numpy path).

For each: ``LoadedModel.predict(row_dict)`` (dict in, scores and label out) against the
bare library call on an input already prepared (``predict_raw(frame)``), interleaved over
the same rows; overhead = p50(predict) - p50(raw), and the input building alone
(``frame(row)``), far less noisy on a loaded machine. For scale, the hand-written way a
service builds the input, ``pandas.DataFrame([row])`` (then ``.to_numpy()`` for the
array model) and ``predict_proba``, is timed too.
Durability is not involved (everything is in memory once loaded). Also reported: the
registration and the cold load (download from the artifact store, verify, deserialize).

Run: ``.venv/bin/python benchmarks/registry_predict.py`` (about a minute).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peers import Result, emit_json, print_table, progress  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "datasets" / "mlc_churn.csv"
ROWS = 1000
CATEGORICAL = ["state", "area_code", "international_plan", "voice_mail_plan"]


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _models(frame: Any) -> dict[str, tuple[Any, Any]]:
    import lightgbm
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X = frame.drop(columns=["churn"])
    y = (frame["churn"] == "yes").astype(int)
    numeric = [c for c in X.columns if c not in CATEGORICAL]
    pipeline = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), CATEGORICAL), (StandardScaler(), numeric)
        ),
        LogisticRegression(max_iter=500),
    ).fit(X, y)
    booster = lightgbm.LGBMClassifier(n_estimators=100, verbose=-1).fit(
        X[numeric].to_numpy(dtype="float64"), y
    )
    return {"sklearn": (pipeline, X), "lightgbm": (booster, X[numeric].astype("float64"))}


def main() -> None:
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from shipyard.core.config import load_config
    from shipyard.models import ModelRegistry

    # One native thread, as serving runs model calls: OpenMP teams waking on a shared
    # 2-core machine add milliseconds of noise to both sides of every comparison.
    threadpool_limits(1)
    frame = pd.read_csv(DATA, nrows=ROWS)
    rows_by_model: dict[str, list[dict[str, Any]]] = {}
    table: list[list[object]] = []
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="registry-bench-") as scratch:
        config = load_config(Path(scratch))
        with ModelRegistry.open(config) as registry:
            for name, (model, X) in _models(frame).items():
                progress(f"{name}: registering and loading")
                started = time.perf_counter()
                version = registry.register(name, model=model, input_example=X.head(5))
                register_ms = (time.perf_counter() - started) * 1000
                with ModelRegistry.open(config) as cold:  # empty in-process cache
                    started = time.perf_counter()
                    loaded = cold.load(version.reference)
                    load_ms = (time.perf_counter() - started) * 1000
                rows = X.head(200).to_dict("records")
                rows_by_model[name] = rows
                prepared = [loaded.frame([row]) for row in rows]
                loaded.warm_up()
                ours: list[float] = []
                raw: list[float] = []
                naive: list[float] = []
                building: list[float] = []
                progress(f"{name}: timing 3 x {len(rows)} single-row calls, interleaved")
                for _ in range(3):
                    for row, ready in zip(rows, prepared, strict=True):
                        t0 = time.perf_counter()
                        loaded.predict(row)
                        t1 = time.perf_counter()
                        loaded.predict_raw(ready)
                        t2 = time.perf_counter()
                        naive_frame = pd.DataFrame([row])
                        model.predict_proba(
                            naive_frame if name == "sklearn" else naive_frame.to_numpy()
                        )
                        t3 = time.perf_counter()
                        loaded.frame([row])
                        t4 = time.perf_counter()
                        building.append((t4 - t3) * 1000)
                        ours.append((t1 - t0) * 1000)
                        raw.append((t2 - t1) * 1000)
                        naive.append((t3 - t2) * 1000)
                overhead = statistics.median(ours) - statistics.median(raw)
                table.append(
                    [
                        name,
                        loaded.input_format,
                        statistics.median(raw),
                        statistics.median(ours),
                        _p(ours, 0.99),
                        overhead,
                        statistics.median(building),
                        statistics.median(naive),
                        register_ms,
                        load_ms,
                    ]
                )
                results.append(Result(f"overhead_p50_ms_{name}", overhead, "ms", "<=", 1.0))
                results.append(
                    Result(
                        f"input_build_p50_ms_{name}", statistics.median(building), "ms", "<=", 1.0
                    )
                )
    print_table(
        [
            "model",
            "input",
            "raw p50 ms",
            "predict p50 ms",
            "predict p99 ms",
            "overhead p50 ms",
            "input build p50 ms",
            "DataFrame([row]) p50 ms",
            "register ms",
            "cold load ms",
        ],
        table,
        title=f"Single-row predict, {ROWS} rows of mlc_churn.csv for training",
    )
    emit_json("registry_predict", results)


if __name__ == "__main__":
    main()
