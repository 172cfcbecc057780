"""Write the example's data files from the churn table shipped with Shipyard.

The public table (5,000 telecom customers, target ``churn``) has no customer id, no event
time and no dirty rows, so this script adds them, openly:

* ``customer_id`` 1..5000 and an ``event_ts`` spread over the past 180 days;
* two corrupted rows (a negative charge, an unknown churn value) the contract quarantines;
* ``data/customers.csv``: the first 4,000 customers (the history you train on);
* ``data/new_customers.csv``: the last 1,000, with drift planted in real columns (more
  day minutes and more customer-service calls), the batch that later reaches the service.

Run it from the project folder: ``python prepare_data.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path

import pandas as pd

HISTORY = 4000


def main(out: Path = Path("data")) -> None:
    source = files("shipyard") / "demo_data" / "mlc_churn.csv"
    with source.open("rb") as handle:
        frame = pd.read_csv(handle)
    frame.insert(0, "customer_id", range(1, len(frame) + 1))
    now = datetime.now(UTC).replace(microsecond=0)
    frame.insert(
        1,
        "event_ts",
        [(now - timedelta(days=180) + timedelta(hours=i * 0.8)).isoformat() for i in frame.index],
    )
    history = frame.iloc[:HISTORY].copy()
    history.loc[10, "total_day_charge"] = -1.0  # a negative charge: quarantined
    history.loc[20, "churn"] = "maybe"  # an unknown label: quarantined
    batch = frame.iloc[HISTORY:].copy()
    for column in ("total_day_minutes", "total_day_charge"):
        batch[column] = (batch[column] * 1.35).round(2)
    batch["number_customer_service_calls"] += 2
    out.mkdir(parents=True, exist_ok=True)
    history.to_csv(out / "customers.csv", index=False)
    batch.to_csv(out / "new_customers.csv", index=False)
    print(f"wrote {out / 'customers.csv'} ({len(history)} rows)")
    print(f"wrote {out / 'new_customers.csv'} ({len(batch)} rows, drift planted)")


if __name__ == "__main__":
    main()
