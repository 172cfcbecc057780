"""Feature definitions: entities, feature views, on-demand features, feature services.

Definitions are plain frozen records written in Python. They are validated when built, so a
mistake (an unknown type, a feature that collides with a join key, a negative TTL) fails on
the line that wrote it, not at the first query. ``FeatureStore.apply`` stores them, versioned:
each definition's ``spec()`` is a canonical JSON document and a changed spec gets a new version.

>>> from datetime import timedelta
>>> customer = Entity("customer", join_keys=["customer_id"])
>>> stats = FeatureView(
...     "customer_stats",
...     entities=[customer],
...     source="customer_events@v3",
...     timestamp="event_ts",
...     ttl=timedelta(days=30),
...     features=[Feature("f0", "float64"), Feature("f1", "int64")],
... )
>>> stats[["f0"]].feature_names
('f0',)
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

from shipyard.core.errors import ConfigError, ReferenceError_
from shipyard.core.references import parse_reference

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "Definition",
    "Entity",
    "Feature",
    "FeatureService",
    "FeatureView",
    "FeatureViewProjection",
    "FileSource",
    "OnDemandFeature",
    "ServiceItem",
    "arrow_type",
    "fingerprint",
    "on_demand",
    "validate_identifier",
]

# Feature, key and column names end up as SQL identifiers, Redis hash fields and Arrow
# column names, and ``view:feature`` / ``name@vN`` use ':' and '@' as separators: keep
# them to plain identifiers.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# Object names (views, services, entities) follow the reference grammar's names, minus
# '.' and '-' which would need quoting in SQL and read badly as column prefixes.
_OBJECT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")
_REQUEST = "request"
_ZONED_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns),\s*tz=([^\]]{1,64})\]")


class DefinitionError(ConfigError):
    """A feature definition is malformed (bad name, type, TTL, reference...)."""

    code = "SY120"


def validate_identifier(name: object, *, what: str) -> str:
    """Return ``name`` if it is a plain identifier (letters, digits, '_'), else raise."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise DefinitionError(
            f"Invalid {what} {name!r}: use 1-128 letters, digits or '_', not starting with a digit."
        )
    return name


def _validate_object_name(name: object, *, what: str) -> str:
    if not isinstance(name, str) or not _OBJECT_NAME.fullmatch(name):
        raise DefinitionError(
            f"Invalid {what} name {name!r}: use 1-128 letters, digits or '_', "
            "starting with a letter."
        )
    if name == _REQUEST:
        raise DefinitionError(
            f"'{_REQUEST}' is reserved for request-time inputs of on-demand features; "
            f"choose another {what} name."
        )
    return name


def arrow_type(dtype: str) -> pa.DataType:
    """The Arrow type named by ``dtype`` (``float64``, ``int64``, ``string``, ``bool``...)."""
    import pyarrow as pa

    zoned = _ZONED_TIMESTAMP.fullmatch(dtype.strip()) if isinstance(dtype, str) else None
    if zoned is not None:
        try:
            return pa.timestamp(zoned.group(1), tz=zoned.group(2).strip())
        except (ValueError, pa.ArrowInvalid) as exc:
            raise DefinitionError(f"Unknown time zone in feature type {dtype!r}.") from exc
    try:
        return pa.type_for_alias(dtype)
    except (ValueError, KeyError, TypeError) as exc:
        raise DefinitionError(
            f"Unknown feature type {dtype!r}.",
            hint="Use an Arrow type name: bool, int32, int64, float32, float64, string, "
            "binary, date32, timestamp[us], timestamp[us, tz=UTC].",
        ) from exc


def fingerprint(spec: Mapping[str, Any]) -> str:
    """SHA-256 of a spec's canonical JSON: equal specs, equal fingerprints."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _unique(names: Sequence[str], *, what: str, owner: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DefinitionError(f"{owner} declares {what} {name!r} twice.")
        seen.add(name)


@dataclass(frozen=True, slots=True)
class Entity:
    """A thing features describe, identified by one or more join key columns.

    >>> Entity("order_line", join_keys=["order_id", "line_no"]).join_keys
    ('order_id', 'line_no')
    """

    name: str
    join_keys: tuple[str, ...]
    description: str = ""

    def __init__(self, name: str, join_keys: Iterable[str], description: str = "") -> None:
        if isinstance(join_keys, str):
            join_keys = [join_keys]
        keys = tuple(join_keys)
        _validate_object_name(name, what="entity")
        if not keys:
            raise DefinitionError(f"Entity {name!r} has no join keys; give at least one column.")
        for key in keys:
            validate_identifier(key, what=f"join key of entity {name!r}")
        _unique(keys, what="join key", owner=f"Entity {name!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "join_keys", keys)
        object.__setattr__(self, "description", str(description))

    def spec(self) -> dict[str, Any]:
        """Canonical, JSON-serialisable form (what is versioned)."""
        return {"name": self.name, "join_keys": list(self.join_keys)}


@dataclass(frozen=True, slots=True)
class Feature:
    """A named, typed feature column (``dtype`` is an Arrow type name)."""

    name: str
    dtype: str = "float64"
    description: str = ""

    def __post_init__(self) -> None:
        validate_identifier(self.name, what="feature name")
        if not isinstance(self.dtype, str):
            raise DefinitionError(
                f"Feature {self.name!r} has dtype {self.dtype!r}; give an Arrow type name "
                "as a string, e.g. 'float64'."
            )
        # Normalise aliases ("double" -> "double", "float64" -> "double") so that writing
        # the same type two ways does not create a new version.
        object.__setattr__(self, "dtype", str(arrow_type(self.dtype)))

    def spec(self) -> dict[str, Any]:
        """Canonical, JSON-serialisable form."""
        return {"name": self.name, "dtype": self.dtype}


@dataclass(frozen=True, slots=True)
class FileSource:
    """Raw Parquet or CSV files as a feature view's source (path, folder or glob)."""

    path: str
    format: str = "parquet"

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path.strip():
            raise DefinitionError(f"FileSource path {self.path!r} is empty; give a file path.")
        if self.format not in ("parquet", "csv"):
            raise DefinitionError(
                f"FileSource {self.path!r} has format {self.format!r}; use 'parquet' or 'csv'."
            )

    def spec(self) -> dict[str, Any]:
        """Canonical, JSON-serialisable form."""
        return {"file": self.path, "format": self.format}


SourceSpec: TypeAlias = "str | FileSource"


@dataclass(frozen=True, slots=True)
class FeatureView:
    """Features of one or more entities, read from a source with an event timestamp.

    ``source`` is a dataset reference (``"events@v3"``, or ``"events"`` for its latest
    version) or a :class:`FileSource`. ``created_timestamp`` breaks ties between rows with
    the same event time (the latest created wins). ``ttl`` bounds how old a value may be
    when it is read (``None``: no expiry).
    """

    name: str
    entities: tuple[Entity, ...]
    source: str | FileSource
    timestamp: str
    features: tuple[Feature, ...]
    created_timestamp: str | None = None
    ttl: timedelta | None = None
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __init__(
        self,
        name: str,
        *,
        entities: Iterable[Entity],
        source: str | FileSource,
        timestamp: str,
        features: Iterable[Feature],
        created_timestamp: str | None = None,
        ttl: timedelta | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> None:
        _validate_object_name(name, what="feature view")
        ents = tuple(entities)
        feats = tuple(features)
        if not ents:
            raise DefinitionError(f"Feature view {name!r} has no entities; give at least one.")
        for entity in ents:
            if not isinstance(entity, Entity):
                raise DefinitionError(
                    f"Feature view {name!r}: entities must be Entity objects, got {entity!r}."
                )
        if not feats:
            raise DefinitionError(f"Feature view {name!r} declares no features.")
        for feature in feats:
            if not isinstance(feature, Feature):
                raise DefinitionError(
                    f"Feature view {name!r}: features must be Feature objects, got {feature!r}."
                )
        if isinstance(source, str):
            try:
                parse_reference(source)
            except ReferenceError_ as exc:
                raise DefinitionError(
                    f"Feature view {name!r} has source {source!r}, which is not a dataset "
                    f"reference: {exc.message}",
                    hint="Give 'dataset', 'dataset@vN' or sy.features.FileSource('path').",
                ) from exc
        elif not isinstance(source, FileSource):
            raise DefinitionError(
                f"Feature view {name!r} has source {source!r}; give a dataset reference "
                "string or a FileSource."
            )
        validate_identifier(timestamp, what=f"timestamp column of feature view {name!r}")
        if created_timestamp is not None:
            validate_identifier(
                created_timestamp, what=f"created timestamp column of feature view {name!r}"
            )
            if created_timestamp == timestamp:
                raise DefinitionError(
                    f"Feature view {name!r} uses {timestamp!r} as both event and created "
                    "timestamp; drop created_timestamp or name another column."
                )
        if ttl is not None and (not isinstance(ttl, timedelta) or ttl <= timedelta(0)):
            raise DefinitionError(
                f"Feature view {name!r} has ttl {ttl!r}; give a positive datetime.timedelta "
                "or None for no expiry."
            )
        keys = [key for entity in ents for key in entity.join_keys]
        _unique(keys, what="join key", owner=f"Feature view {name!r} (across its entities)")
        feature_names = [feature.name for feature in feats]
        _unique(feature_names, what="feature", owner=f"Feature view {name!r}")
        reserved = {*keys, timestamp, *([created_timestamp] if created_timestamp else [])}
        for feature_name in feature_names:
            if feature_name in reserved:
                raise DefinitionError(
                    f"Feature view {name!r}: feature {feature_name!r} has the name of a join "
                    "key or timestamp column; rename the feature."
                )
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "entities", ents)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "timestamp", timestamp)
        object.__setattr__(self, "features", feats)
        object.__setattr__(self, "created_timestamp", created_timestamp)
        object.__setattr__(self, "ttl", ttl)
        object.__setattr__(self, "description", str(description))
        object.__setattr__(self, "tags", dict(tags or {}))

    @property
    def join_keys(self) -> tuple[str, ...]:
        """Every join key column, entity by entity, in declaration order."""
        return tuple(key for entity in self.entities for key in entity.join_keys)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The declared feature names, in declaration order."""
        return tuple(feature.name for feature in self.features)

    def feature(self, name: str) -> Feature:
        """The declared feature ``name``; raises naming the view if it is unknown."""
        for feature in self.features:
            if feature.name == name:
                return feature
        raise DefinitionError(
            f"Feature view {self.name!r} has no feature {name!r}; "
            f"it declares {', '.join(self.feature_names)}."
        )

    def __getitem__(self, names: str | Sequence[str]) -> FeatureViewProjection:
        """A subset of this view's features, for a feature service: ``view[["f0", "f1"]]``."""
        selected = (names,) if isinstance(names, str) else tuple(names)
        if not selected:
            raise DefinitionError(f"Empty feature selection on feature view {self.name!r}.")
        for name in selected:
            self.feature(name)
        _unique(selected, what="feature", owner=f"Selection on feature view {self.name!r}")
        return FeatureViewProjection(self, selected)

    def spec(self) -> dict[str, Any]:
        """Canonical, JSON-serialisable form (what is versioned)."""
        source = {"dataset": self.source} if isinstance(self.source, str) else self.source.spec()
        return {
            "name": self.name,
            "entities": [entity.spec() for entity in self.entities],
            "source": source,
            "timestamp": self.timestamp,
            "created_timestamp": self.created_timestamp,
            "ttl_seconds": None if self.ttl is None else self.ttl.total_seconds(),
            "features": [feature.spec() for feature in self.features],
        }


@dataclass(frozen=True, slots=True)
class FeatureViewProjection:
    """Some features of one view, as listed in a feature service."""

    view: FeatureView
    feature_names: tuple[str, ...]

    @property
    def name(self) -> str:
        """The projected view's name."""
        return self.view.name


@dataclass(frozen=True, slots=True)
class OnDemandFeature:
    """Features computed by a Python function from fetched features and request values.

    The same function object runs in training (on the training set's rows) and in serving
    (on the looked-up rows), always on a ``pyarrow.Table`` whose columns are named after the
    inputs' feature names (``"customer_stats:f0"`` -> column ``f0``; ``"request:amount"`` ->
    column ``amount``). It returns a ``pyarrow.Table``, a ``RecordBatch`` or a mapping of
    output name to column (array or list); every declared output must be present.
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[Feature, ...]
    function: Callable[[Any], Any]
    source_code: str
    description: str = ""

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The output feature names, in declaration order."""
        return tuple(feature.name for feature in self.outputs)

    @property
    def view_inputs(self) -> tuple[tuple[str, str], ...]:
        """``(view, feature)`` pairs read from feature views."""
        return tuple(
            (view, feat)
            for view, feat in (i.split(":", 1) for i in self.inputs)
            if view != _REQUEST
        )

    @property
    def request_inputs(self) -> tuple[str, ...]:
        """Names of values the caller passes at request time (``request:NAME``)."""
        return tuple(
            feat for view, feat in (i.split(":", 1) for i in self.inputs) if view == _REQUEST
        )

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The column names the function receives, in input order."""
        return tuple(i.split(":", 1)[1] for i in self.inputs)

    def __call__(self, frame: Any) -> Any:
        return self.function(frame)

    def spec(self) -> dict[str, Any]:
        """Canonical form; the function is versioned by its source code."""
        return {
            "name": self.name,
            "inputs": list(self.inputs),
            "outputs": [feature.spec() for feature in self.outputs],
            "code_sha256": hashlib.sha256(self.source_code.encode()).hexdigest(),
        }


def _function_source(function: Callable[..., Any]) -> str:
    try:
        return textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        # Built in a REPL or by exec: version by the bytecode instead, which still changes
        # when the function does.
        code = getattr(function, "__code__", None)
        if code is None:
            return repr(function)
        return repr((code.co_code, code.co_consts, code.co_names))


def on_demand(
    *,
    inputs: Sequence[str],
    outputs: Sequence[Feature],
    name: str | None = None,
    description: str = "",
) -> Callable[[Callable[[Any], Any]], OnDemandFeature]:
    """Declare an on-demand feature computed by the decorated function.

    ``inputs`` are ``"view:feature"`` (a feature view's feature) or ``"request:name"`` (a
    value the caller passes with the request).

    >>> @on_demand(inputs=["stats:f0", "request:amount"], outputs=[Feature("ratio", "float64")])
    ... def ratio(frame):
    ...     import pyarrow.compute as pc
    ...     return {"ratio": pc.divide(frame["amount"], frame["f0"])}
    >>> ratio.name, ratio.request_inputs
    ('ratio', ('amount',))
    """
    if isinstance(inputs, str):
        inputs = [inputs]
    parsed_inputs = tuple(inputs)
    output_features = tuple(outputs)

    def decorate(function: Callable[[Any], Any]) -> OnDemandFeature:
        if not callable(function):
            raise DefinitionError(f"on_demand decorates a function, got {function!r}.")
        feature_name = str(name or getattr(function, "__name__", ""))
        _validate_object_name(feature_name, what="on-demand feature")
        if not parsed_inputs:
            raise DefinitionError(f"On-demand feature {feature_name!r} declares no inputs.")
        for item in parsed_inputs:
            if not isinstance(item, str) or item.count(":") != 1:
                raise DefinitionError(
                    f"On-demand feature {feature_name!r} has input {item!r}; write "
                    "'view:feature' or 'request:name'."
                )
            view, feat = item.split(":")
            if view != _REQUEST:
                _validate_object_name(view, what="feature view")
            validate_identifier(feat, what=f"input of on-demand feature {feature_name!r}")
        columns = [item.split(":")[1] for item in parsed_inputs]
        _unique(columns, what="input column", owner=f"On-demand feature {feature_name!r}")
        if not output_features:
            raise DefinitionError(f"On-demand feature {feature_name!r} declares no outputs.")
        for feature in output_features:
            if not isinstance(feature, Feature):
                raise DefinitionError(
                    f"On-demand feature {feature_name!r}: outputs must be Feature objects, "
                    f"got {feature!r}."
                )
            if feature.name in columns:
                raise DefinitionError(
                    f"On-demand feature {feature_name!r}: output {feature.name!r} has the "
                    "name of one of its inputs; rename the output."
                )
        _unique(
            [f.name for f in output_features],
            what="output",
            owner=f"On-demand feature {feature_name!r}",
        )
        return OnDemandFeature(
            name=feature_name,
            inputs=parsed_inputs,
            outputs=output_features,
            function=function,
            source_code=_function_source(function),
            description=description,
        )

    return decorate


ServiceItem: TypeAlias = "FeatureView | FeatureViewProjection | OnDemandFeature"


@dataclass(frozen=True, slots=True)
class FeatureService:
    """A named bundle of features a model uses; versioned when applied (``name@vN``).

    Output feature names must be unique across the bundle (they become column names).
    """

    name: str
    features: tuple[FeatureView | FeatureViewProjection | OnDemandFeature, ...]
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __init__(
        self,
        name: str,
        features: Iterable[FeatureView | FeatureViewProjection | OnDemandFeature],
        description: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> None:
        _validate_object_name(name, what="feature service")
        items = tuple(features)
        if not items:
            raise DefinitionError(f"Feature service {name!r} lists no features.")
        outputs: list[str] = []
        seen_views: set[str] = set()
        for item in items:
            if isinstance(item, FeatureView | FeatureViewProjection):
                view_name = item.name
                if view_name in seen_views:
                    raise DefinitionError(
                        f"Feature service {name!r} lists feature view {view_name!r} twice; "
                        "list it once with every feature it needs."
                    )
                seen_views.add(view_name)
                outputs.extend(item.feature_names)
            elif isinstance(item, OnDemandFeature):
                outputs.extend(item.feature_names)
            else:
                raise DefinitionError(
                    f"Feature service {name!r}: {item!r} is not a FeatureView, a view "
                    "selection (view[['f0']]) or an on-demand feature."
                )
        _unique(outputs, what="output feature", owner=f"Feature service {name!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "features", items)
        object.__setattr__(self, "description", str(description))
        object.__setattr__(self, "tags", dict(tags or {}))

    def spec(self) -> dict[str, Any]:
        """Canonical form: which features of which views and on-demand features."""
        items: list[dict[str, Any]] = []
        for item in self.features:
            if isinstance(item, OnDemandFeature):
                items.append({"on_demand": item.name})
            else:
                items.append({"view": item.name, "features": list(item.feature_names)})
        return {"name": self.name, "items": items}


Definition: TypeAlias = "Entity | FeatureView | OnDemandFeature | FeatureService"
