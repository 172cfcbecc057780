"""Feature definitions of the churn example: apply them with
``shipyard features apply features.py``; a change is versioned, and refused when it
breaks a registered model."""

import shipyard.features as sf

NUMERIC = [
    ("account_length", "int64"),
    ("number_vmail_messages", "int64"),
    ("total_day_minutes", "float64"),
    ("total_day_calls", "int64"),
    ("total_day_charge", "float64"),
    ("total_eve_minutes", "float64"),
    ("total_eve_charge", "float64"),
    ("total_night_minutes", "float64"),
    ("total_night_charge", "float64"),
    ("total_intl_minutes", "float64"),
    ("total_intl_calls", "int64"),
    ("total_intl_charge", "float64"),
    ("number_customer_service_calls", "int64"),
]
CATEGORICAL = ["international_plan", "voice_mail_plan"]

customer = sf.Entity("customer", join_keys=["customer_id"])

customer_stats = sf.FeatureView(
    "customer_stats",
    entities=[customer],
    source="customers",  # the dataset `shipyard datasets ingest customers ...` made
    timestamp="event_ts",
    features=[sf.Feature(name, kind) for name, kind in NUMERIC]
    + [sf.Feature(name, "string") for name in CATEGORICAL],
)

churn_features = sf.FeatureService("churn_features", features=[customer_stats])
