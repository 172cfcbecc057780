"""The churn example's pipeline and its closed-loop policy.

``shipyard run train_churn`` builds a point-in-time training set from the newest
``customers`` version and fits the model, which the ``train`` step returns (so
``shipyard models register churn --pipeline-run RUN_ID --step train`` registers it, with
the step's run and ``customers`` as its lineage). ``shipyard
scheduler`` runs ``churn_policy``: when the monitor raises a drift or performance alert,
it re-runs ``train_churn``, evaluates the challenger with the gates of ``[gates.churn]``
plus "no worse than the champion", and promotes it or rejects it.
"""

from datetime import timedelta
from pathlib import Path

from shipyard.evaluation import champion as no_worse_than_champion
from shipyard.evaluation import gates_from_config
from shipyard.pipelines import dataset, log_metrics, pipeline, step
from shipyard.pipelines.closed_loop import Policy

PROJECT = Path(__file__).resolve().parent
LABEL = "churn"
FEATURE_SERVICE = "churn_features"
NUMERIC = [
    "account_length",
    "number_vmail_messages",
    "total_day_minutes",
    "total_day_calls",
    "total_day_charge",
    "total_eve_minutes",
    "total_eve_charge",
    "total_night_minutes",
    "total_night_charge",
    "total_intl_minutes",
    "total_intl_calls",
    "total_intl_charge",
    "number_customer_service_calls",
]
CATEGORICAL = ["international_plan", "voice_mail_plan"]


def _config():
    from shipyard.core.config import load_config

    return load_config(PROJECT)


@step
def training_set(customers):
    """Point-in-time features for each customer as of the day its label became known.

    Saves ``churn_train`` (3 of 4 customers) and ``churn_holdout`` (the rest) as dataset
    versions and returns the training rows.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    import shipyard.features as sf

    # The label is known 14 days after the customer's event: features as of then.
    label_ts = pc.add(customers.column("event_ts"), pa.scalar(timedelta(days=14)))
    rows = pa.table(
        {
            "customer_id": customers.column("customer_id"),
            "label_ts": label_ts,
            LABEL: pc.cast(pc.equal(customers.column(LABEL), "yes"), pa.int64()),
        }
    )
    holdout = pc.equal(pc.bit_wise_and(rows.column("customer_id"), 3), 0)
    with sf.FeatureStore.open(_config()) as store:
        store.training_set(
            rows.filter(holdout), FEATURE_SERVICE, timestamp="label_ts", save_as="churn_holdout"
        )
        train = store.training_set(
            rows.filter(pc.invert(holdout)),
            FEATURE_SERVICE,
            timestamp="label_ts",
            save_as="churn_train",
        )
    return train.table


def make_model():
    """Change the model here: the next run (and the next closed-loop episode) uses it."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encode = ColumnTransformer(
        [
            (
                "categories",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                CATEGORICAL,
            ),
            ("numbers", SimpleImputer(strategy="median"), NUMERIC),
        ]
    )
    return make_pipeline(
        encode, HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=0)
    )


@step(libraries=["scikit-learn"])
def train(table):
    """Fit the model and return it: the step's output is the model to register."""
    frame = table.to_pandas()
    features = frame[NUMERIC + CATEGORICAL]
    model = make_model().fit(features, frame[LABEL].astype("int64"))
    log_metrics({"train_rows": len(frame), "train_accuracy": model.score(features, frame[LABEL])})
    return model


@pipeline
def train_churn() -> dict:
    """Build the training set from the newest ``customers`` version and fit the model."""
    return {"model": train(training_set(dataset("customers")))}


churn_policy = Policy(
    model="churn",
    pipeline="train_churn",
    on=["drift", "performance"],
    evaluation_data="churn_holdout",
    label=LABEL,
    gates=[
        *gates_from_config(_config(), "churn"),
        no_worse_than_champion(metric="roc_auc", max_drop=0.02),
    ],
    promote="auto",
)
