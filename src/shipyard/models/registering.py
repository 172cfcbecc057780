"""Building what a registration stores: the package folder, the signature, the lineage.

``build_package`` takes a fitted model (saved through ``shipyard.formats``) or a run's
logged model (downloaded from tracking), adds the optional hooks, infers or checks the
signature against the training dataset version, writes ``registry.json`` and hashes the
folder. Nothing is written to the stores here except by ``upload_package`` afterwards,
and no row before every blob is stored: a failed registration leaves no version behind.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import NotFoundError
from shipyard.core.ids import new_id
from shipyard.core.references import parse_reference
from shipyard.models.errors import ModelInputError
from shipyard.models.kinds import kind_for_flavor, kind_named
from shipyard.models.packaging import (
    HOOKS,
    MODEL_FOLDER,
    Package,
    hash_package,
    save_hook,
    write_manifest,
)
from shipyard.models.records import Signature, Task
from shipyard.models.serialize import signature_to_dict
from shipyard.models.signatures import (
    feature_names,
    infer_task,
    model_classes,
    signature_from,
    to_arrow,
)
from shipyard.store.metadata import BlobRef, MetadataStore

if TYPE_CHECKING:
    from shipyard.data.client import DatasetClient
    from shipyard.data.records import DatasetVersion
    from shipyard.formats import ModelInfo
    from shipyard.store.stores import Stores
    from shipyard.tracking.records import Run

__all__ = [
    "Built",
    "RunModel",
    "build_package",
    "check_feature_service",
    "check_register_arguments",
    "fetch_run_model",
    "resolve_datasets",
    "store_version",
]


@dataclass(frozen=True)
class RunModel:
    """A model logged by a run, downloaded into a local folder."""

    run: Run
    folder: Path


@dataclass(frozen=True)
class Built:
    """What ``build_package`` made: the hashed package and the facts of the version."""

    package: Package
    info: ModelInfo
    model_type: str
    signature: Signature
    uses_pickle: bool
    hooks: tuple[str, ...]


def fetch_run_model(stores: Stores, run_id: object, artifact_path: str, scratch: Path) -> RunModel:
    """Download the model a run logged under ``artifact_path`` into ``scratch/model``."""
    from shipyard.tracking import artifacts as artifact_tree
    from shipyard.tracking import queries

    if not isinstance(run_id, str) or not run_id.strip():
        raise ModelInputError(
            f"run_id must be a run id (hex text), not {run_id!r}.",
            hint="Pass run.id, or the run column of `shipyard runs list`.",
        )
    if not isinstance(artifact_path, str) or not artifact_path.strip():
        raise ModelInputError(
            f"artifact_path must be the folder the run logged the model under, not "
            f"{artifact_path!r}.",
            hint="log_model(model, 'model') logs it under 'model' (the default).",
        )
    with stores.metadata.connect() as conn:
        run = queries.load_run(conn, run_id)
        prefix = artifact_tree.folder_prefix(artifact_path)
        entries = artifact_tree.list_entries(conn, run.id, prefix)
        every = [] if entries else artifact_tree.list_entries(conn, run.id, "")
    if run.lifecycle == "deleted":
        raise NotFoundError(
            f"Run {run.id} is deleted; its model cannot be registered.",
            hint=f"Restore it first: `shipyard runs restore {run.id[:8]}`.",
        )
    if not entries:
        models = sorted({e.path.split("/")[0] for e in every if e.kind == "model"})
        logged = (
            f"it logged models under {', '.join(repr(m) for m in models)}"
            if models
            else "it logged no model"
        )
        raise NotFoundError(
            f"Run {run.id} has no model at {artifact_path!r}: {logged}.",
            hint="Log one with shipyard.log_model(model, 'model') in the run (a run still "
            "running in another process shows its artifacts once its client flushes), or "
            "pass the right --path.",
        )
    manifest_path = f"{prefix}/shipyard-model.json"
    if not any(e.path == manifest_path for e in entries):
        raise ModelInputError(
            f"Run {run.id}'s artifact {artifact_path!r} is not a saved model (it has no "
            "shipyard-model.json).",
            hint="Log models with shipyard.log_model(model, name), and pass that name.",
        )
    raw = scratch / "download"
    artifact_tree.download(stores, entries, raw)
    folder = scratch / MODEL_FOLDER
    (raw / prefix).rename(folder)
    shutil.rmtree(raw, ignore_errors=True)
    return RunModel(run, folder)


def resolve_datasets(
    datasets: DatasetClient, training_data: object, run: Run | None
) -> tuple[list[DatasetVersion], list[str]]:
    """(training versions, every dataset reference of the lineage).

    ``training_data`` (a reference or a list of them) wins; without it, a run's inputs
    with role ``train`` are the training versions. Every input of the run is lineage.
    """
    refs: list[str]
    if training_data is None:
        refs = []
    elif isinstance(training_data, str):
        refs = [training_data]
    elif isinstance(training_data, Sequence) and all(isinstance(r, str) for r in training_data):
        refs = list(training_data)
    else:
        raise ModelInputError(
            f"training_data must be a dataset reference or a list of them, not "
            f"{type(training_data).__name__}.",
            hint="Pass training_data='churn@v1'.",
        )
    training = [datasets.get_version(ref) for ref in refs]
    lineage = [version.reference for version in training]
    if run is not None:
        for item in run.inputs:
            hexa = item.version_id.removeprefix("sha256:")
            try:
                version = datasets.get_version(f"{item.dataset}@{hexa[:16]}")
            except NotFoundError:
                continue  # a dataset that lives in another store: its id is in the run
            if version.reference not in lineage:
                lineage.append(version.reference)
            if training_data is None and item.role == "train":
                training.append(version)
    return training, lineage


def check_register_arguments(
    name: object,
    model: object,
    run_id: object,
    *,
    description: object,
    allow_pickle: object,
    tags: object,
) -> dict[str, str]:
    """Check ``register``'s simple arguments before any work; return the checked tags."""
    from shipyard.core.references import validate_name
    from shipyard.models.catalog import check_tags

    validate_name(name, what="model name")  # type: ignore[arg-type]  # checked inside
    if (model is None) == (run_id is None):
        raise ModelInputError(
            "Give exactly one of model= (a fitted model) and run_id= (a run that logged one)."
            + (" Both were given." if model is not None else ""),
            hint="register('churn', model=pipeline) or register('churn', run_id=run.id).",
        )
    if not isinstance(description, str) or len(description) > 10_000:
        raise ModelInputError("description must be text of at most 10,000 characters.")
    if not isinstance(allow_pickle, bool):
        raise ModelInputError(f"allow_pickle must be True or False, not {allow_pickle!r}.")
    return check_tags(tags)


def check_feature_service(feature_service: object) -> str | None:
    """A feature service argument as a checked reference string."""
    if feature_service is None:
        return None
    if not isinstance(feature_service, str):
        raise ModelInputError(
            f"feature_service must be a reference string such as 'churn_features@v2', not "
            f"{type(feature_service).__name__}.",
        )
    return str(parse_reference(feature_service))


def build_package(
    folder: Path,
    *,
    model: Any,
    run_model: RunModel | None,
    signature: Signature | None,
    training: Sequence[DatasetVersion],
    datasets: DatasetClient,
    feature_service: str | None,
    preprocess: Callable[..., Any] | None,
    postprocess: Callable[..., Any] | None,
    allow_pickle: bool,
    input_example: Any,
    task: Task | None,
    model_type: str | None,
) -> Built:
    """Save (or take) the model, hooks and manifest into ``folder``; hash it."""
    from shipyard.formats import load_model, read_input_example, read_model_info, save_model

    folder.mkdir(parents=True, exist_ok=True)
    if run_model is not None:
        shutil.move(str(run_model.folder), folder / MODEL_FOLDER)
        info = read_model_info(folder / MODEL_FOLDER)
        model = load_model(folder / MODEL_FOLDER, allow_pickle=allow_pickle)
    else:
        if input_example is None and training:
            input_example = _training_example(datasets, training[0], feature_names(model))
        info = save_model(
            model, folder / MODEL_FOLDER, allow_pickle=allow_pickle, input_example=input_example
        )
        if info.flavor == "onnx":  # a ModelProto says little; the session knows its classes
            model = load_model(folder / MODEL_FOLDER)
    if input_example is None:
        input_example = read_input_example(folder / MODEL_FOLDER)
    hooks: list[str] = []
    for name, hook in zip(HOOKS, (preprocess, postprocess), strict=True):
        if hook is not None:
            save_hook(hook, folder, name, allow_pickle=allow_pickle)
            hooks.append(name)
    from shipyard.formats import get_flavor

    uses_pickle = bool(hooks) or get_flavor(info.flavor).uses_pickle
    kind = kind_named(model_type) if model_type is not None else kind_for_flavor(info.flavor)
    if signature is None:
        signature = _infer_signature(
            model, info, input_example, training, datasets, task, feature_service
        )
    else:
        if not isinstance(signature, Signature):
            raise ModelInputError(
                f"signature must be a shipyard.models.Signature, not {type(signature).__name__}.",
                hint="Build one with shipyard.models.signature_from(...), or pass None.",
            )
        if feature_service is not None and signature.feature_service not in (
            None,
            feature_service,
        ):
            raise ModelInputError(
                f"feature_service {feature_service!r} differs from the signature's "
                f"{signature.feature_service!r}.",
                hint="Pass one of them, or make them agree.",
            )
        if feature_service is not None:
            signature = replace(signature, feature_service=feature_service)
    if not signature.inputs and kind.name != "rag":
        raise ModelInputError(
            "The signature has no inputs.",
            hint="Pass input_example= (a few training rows) or signature=.",
        )
    write_manifest(
        folder,
        {
            "model": MODEL_FOLDER,
            "flavor": info.flavor,
            "model_type": kind.name,
            "model_class": info.model_class,
            "hooks": hooks,
            "uses_pickle": uses_pickle,
            "signature": signature_to_dict(signature),
        },
    )
    return Built(hash_package(folder), info, kind.name, signature, uses_pickle, tuple(hooks))


def _training_example(
    datasets: DatasetClient, version: DatasetVersion, names: Sequence[str] | None
) -> Any:
    """A few training rows, restricted to the model's columns, as a DataFrame."""
    if names is None:
        return None
    present = {column.name for column in version.schema}
    missing = [name for name in names if name not in present]
    if missing:
        raise ModelInputError(
            f"The model reads column(s) {', '.join(repr(m) for m in missing[:5])} that "
            f"training dataset {version.reference} does not have.",
            hint="Pass the dataset version the model was trained on as training_data.",
        )
    sample = datasets.read_sample(version.reference).select(list(names)).slice(0, 5)
    return sample.to_pandas()


def _infer_signature(
    model: Any,
    info: ModelInfo,
    example: Any,
    training: Sequence[DatasetVersion],
    datasets: DatasetClient,
    task: Task | None,
    feature_service: str | None,
) -> Signature:
    classes = model_classes(model)
    if classes is None and info.classes is not None:
        classes = tuple(info.classes)
    chosen = task if task is not None else infer_task(model, classes)
    if chosen == "binary_classification" and classes is None:
        classes = (0, 1)
    names = feature_names(model)
    if example is None:
        raise ModelInputError(
            "Cannot tell which columns the model reads: it records no feature names and "
            "no input example was given or saved with it.",
            hint="Pass input_example= (a few training rows of the model's features), or "
            "signature= (shipyard.models.signature_from), or training_data= for a model "
            "fitted on a DataFrame.",
        )
    table = to_arrow(example, what="input_example")
    if names is not None:
        missing = [name for name in names if name not in table.column_names]
        if missing:
            raise ModelInputError(
                f"The input example lacks column(s) {', '.join(repr(m) for m in missing[:5])} "
                "the model was fitted on.",
                hint="Pass rows with every feature column the model was trained on.",
            )
        table = table.select(list(names))
    version = training[0] if training else None
    profile: Mapping[str, Any] | None = None
    if version is not None and version.kind == "table" and version.profile_blob:
        profile = datasets.profile(version.reference)
    return signature_from(
        table,
        training_version=version,
        task=chosen,
        profile=profile,
        classes=classes,
        feature_service=feature_service,
    )


def store_version(
    metadata: MetadataStore,
    name: str,
    built: Built,
    *,
    files: Mapping[str, str],
    run: Run | None,
    lineage: Sequence[str],
    feature_service: str | None,
    description: str,
    tags: Mapping[str, str],
    actor: str,
) -> int:
    """Write the version row (or find the same package already registered); its number.

    The model's row is locked first, so concurrent registrations get distinct numbers.
    """
    from shipyard.models import catalog

    service = feature_service or built.signature.feature_service
    now = datetime.now(UTC)
    content_id = built.package.content_id
    with metadata.transaction() as conn:
        catalog.lock_model(conn, metadata, name, create=True, now=now)
        existing = catalog.find_by_content(conn, name, content_id)
        if existing is not None:
            return int(existing["number"])
        number = catalog.next_number(conn, name)
        key = new_id()
        catalog.insert_version(
            conn,
            {
                "name": name,
                "number": number,
                "key": key,
                "content_id": content_id,
                "flavor": built.info.flavor,
                "model_type": built.model_type,
                "signature": signature_to_dict(built.signature),
                "run_id": run.id if run is not None else None,
                "dataset_versions": list(lineage),
                "feature_service": service,
                "feature_service_name": parse_reference(service).name if service else None,
                "code_commit": run.git_commit if run is not None else None,
                "description": description,
                "tags": dict(tags),
                "files": dict(files),
                "package": {
                    "model": MODEL_FOLDER,
                    "hooks": list(built.hooks),
                    "uses_pickle": built.uses_pickle,
                    "model_class": built.info.model_class,
                },
                "created_by": actor,
                "created_at": now,
            },
        )
        metadata.add_blob_refs(
            conn,
            [
                BlobRef(blob, "model_version", key, _role(path))
                for path, blob in sorted(files.items())
            ],
        )
        metadata.record_event(
            conn,
            actor,
            "model.register",
            "model",
            name,
            {"version": number, "id": content_id, "run_id": run.id if run else None},
        )
    return number


def _role(path: str) -> str:
    """The blob-reference role of a package file (hashed when the path is long)."""
    role = f"file:{path}"
    if len(role) <= 128:
        return role
    return f"file:{hashlib.sha256(path.encode()).hexdigest()}"
