"""Send the new customers of ``data/new_customers.csv`` to the running service.

Posts the model's inputs, 10 customers a request, to ``shipyard serve``'s predict
endpoint, then writes ``data/new_labels.csv`` (request_id,label): the true outcome of each
scored customer, as it would arrive later, for ``shipyard monitor labels``.

    python send_traffic.py [--url http://127.0.0.1:8000] [--rows 500]
"""

from __future__ import annotations

import argparse
import csv
import json
import urllib.request
from pathlib import Path

from features import CATEGORICAL, NUMERIC

TYPES = dict(NUMERIC)


def record(row: dict[str, str]) -> dict[str, object]:
    """The model's inputs of one CSV row, typed as the service's contract expects."""
    out: dict[str, object] = {"customer_id": int(row["customer_id"])}
    for name, kind in NUMERIC:
        out[name] = int(row[name]) if kind == "int64" else float(row[name])
    for name in CATEGORICAL:
        out[name] = row[name]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--data", type=Path, default=Path("data/new_customers.csv"))
    args = parser.parse_args()
    with args.data.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[: args.rows]
    labels = []
    endpoint = f"{args.url.rstrip('/')}/v1/models/churn/predict"
    for start in range(0, len(rows), 10):
        batch = rows[start : start + 10]
        body = json.dumps({"inputs": [record(row) for row in batch]}).encode()
        request = urllib.request.Request(  # noqa: S310 (a URL the user gives)
            endpoint, data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            answer = json.load(response)
        predictions = answer if isinstance(answer, list) else answer.get("predictions", answer)
        for row, prediction in zip(batch, predictions, strict=True):
            labels.append((prediction["request_id"], int(row["churn"] == "yes")))
    out = args.data.with_name("new_labels.csv")
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["request_id", "label"])
        writer.writerows(labels)
    print(f"{len(labels)} customers scored; their true outcomes written to {out}")


if __name__ == "__main__":
    main()
