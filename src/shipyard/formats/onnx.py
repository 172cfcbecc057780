"""ONNX models: a ``model.onnx`` file, loaded into an onnxruntime ``InferenceSession``.

``save_model`` takes an ``onnx.ModelProto``, the serialized bytes of one, or an
``OnnxModel`` loaded earlier; it checks the model with ``onnx.checker`` before writing.
``load_model`` returns an ``OnnxModel``: the session wrapped so ``predict(X)`` and
``predict_proba(X)`` take a numpy array, a pandas DataFrame or a dict of columns, like a
scikit-learn model would.

``convert_sklearn_to_onnx`` exports a fitted scikit-learn model with skl2onnx: a
DataFrame sample gives one ONNX input per column (strings stay strings, numbers become
float32), an array sample gives one ``X`` input; classifiers output plain probability
arrays (no ZipMap) and their classes are stored in the model's metadata.

Example::

    onnx_model = convert_sklearn_to_onnx(pipeline, X_train.head())
    save_model(onnx_model, Path("models/churn-onnx"))
    load_model(Path("models/churn-onnx")).predict_proba(X_test)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.core.errors import DataContractError
from shipyard.formats.base import (
    Flavor,
    FlavorOutput,
    ModelFormatError,
    ModelInfo,
    class_path,
    json_classes,
)

__all__ = ["OnnxFlavor", "OnnxModel", "convert_sklearn_to_onnx"]

MODEL_FILE = "model.onnx"
CLASSES_KEY = "shipyard.classes"

_NUMPY_TYPE_OF_ONNX = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


class OnnxModel:
    """An ONNX model in an onnxruntime session, with scikit-learn style ``predict``.

    >>> model = OnnxModel(onnx_bytes)  # doctest: +SKIP
    >>> model.predict_proba(frame)[:2]  # doctest: +SKIP
    array([[0.906, 0.094], [0.969, 0.031]], dtype=float32)
    """

    def __init__(self, model_bytes: bytes, *, providers: Sequence[str] | None = None) -> None:
        import onnxruntime

        self._bytes = bytes(model_bytes)
        self.session = onnxruntime.InferenceSession(
            self._bytes, providers=list(providers or ["CPUExecutionProvider"])
        )
        self.input_names: tuple[str, ...] = tuple(i.name for i in self.session.get_inputs())
        self.output_names: tuple[str, ...] = tuple(o.name for o in self.session.get_outputs())
        self._input_types = {i.name: i.type for i in self.session.get_inputs()}
        props = self.session.get_modelmeta().custom_metadata_map
        self.classes_: Any = None
        if CLASSES_KEY in props:
            import numpy as np

            self.classes_ = np.asarray(json.loads(props[CLASSES_KEY]))

    @property
    def model_bytes(self) -> bytes:
        """The serialized ONNX model."""
        return self._bytes

    def run(self, X: Any) -> dict[str, Any]:
        """Every output of the model for input ``X``, by output name."""
        outputs = self.session.run(None, self._feeds(X))
        return dict(zip(self.output_names, outputs, strict=True))

    def predict(self, X: Any) -> Any:
        """The model's first output (``label`` or ``variable`` when present), as an array."""
        import numpy as np

        name = _pick(self.output_names, ("label", "variable"), default=0)
        result = np.asarray(self.session.run([name], self._feeds(X))[0])
        return result.ravel() if result.ndim == 2 and result.shape[1] == 1 else result

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, one column per class (``probabilities`` output)."""
        import numpy as np

        if len(self.output_names) < 2 and "probabilities" not in self.output_names:
            raise ModelFormatError(
                f"This ONNX model has no probability output (outputs: {list(self.output_names)}).",
                hint="Use predict(); export the classifier with probabilities to get them.",
            )
        name = _pick(self.output_names, ("probabilities", "output_probability"), default=1)
        result = self.session.run([name], self._feeds(X))[0]
        if isinstance(result, list) and result and isinstance(result[0], dict):  # ZipMap
            keys = list(result[0])
            return np.asarray([[row[k] for k in keys] for row in result])
        return np.asarray(result)

    def _feeds(self, X: Any) -> dict[str, Any]:
        import numpy as np

        if len(self.input_names) == 1:
            name = self.input_names[0]
            values = X.to_numpy() if hasattr(X, "to_numpy") else X
            array = np.asarray(values)
            if array.ndim == 1:
                array = array.reshape(1, -1)
            return {name: _cast(array, self._input_types[name], name)}
        if not isinstance(X, Mapping) and not hasattr(X, "columns"):
            raise DataContractError(
                f"This ONNX model takes one input per column ({', '.join(self.input_names)}); "
                f"got a {type(X).__name__}.",
                hint="Pass a pandas DataFrame (or a dict) with those columns.",
            )
        columns = set(X.keys() if isinstance(X, Mapping) else X.columns)
        missing = [name for name in self.input_names if name not in columns]
        if missing:
            raise DataContractError(
                f"The input lacks column(s) {', '.join(repr(m) for m in missing)} that the "
                "ONNX model needs.",
                hint=f"Provide all of: {', '.join(self.input_names)}.",
            )
        feeds = {}
        for name in self.input_names:
            column = X[name]
            values = column.to_numpy() if hasattr(column, "to_numpy") else column
            array = np.asarray(values).reshape(-1, 1)
            feeds[name] = _cast(array, self._input_types[name], name)
        return feeds


def _pick(names: Sequence[str], preferred: Sequence[str], *, default: int) -> str:
    for name in preferred:
        if name in names:
            return name
    return names[min(default, len(names) - 1)]


def _cast(array: Any, onnx_type: str, name: str) -> Any:
    import numpy as np

    target = _NUMPY_TYPE_OF_ONNX.get(onnx_type)
    if target is None:
        return array
    if target == "object":
        return np.asarray([[str(v) for v in row] for row in array], dtype=object).reshape(
            array.shape
        )
    try:
        return array.astype(target)
    except (TypeError, ValueError) as exc:
        raise DataContractError(
            f"ONNX input {name!r} expects {onnx_type}, but the values cannot be converted: {exc}.",
            hint=f"Pass numbers in column {name!r}.",
        ) from exc


class OnnxFlavor(Flavor):
    """``onnx.ModelProto``, ONNX bytes, or an ``OnnxModel``; loads as ``OnnxModel``."""

    name = "onnx"
    priority = 10

    def matches(self, model: object) -> bool:
        if isinstance(model, bytes | bytearray | memoryview | OnnxModel):
            return True
        cls = type(model)
        return cls.__name__ == "ModelProto" and cls.__module__.partition(".")[0] == "onnx"

    def save(self, model: Any, directory: Path) -> FlavorOutput:
        import onnx

        if isinstance(model, OnnxModel):
            data = model.model_bytes
        elif isinstance(model, bytes | bytearray | memoryview):
            data = bytes(model)
        else:
            data = model.SerializeToString()
        try:
            proto = onnx.load_model_from_string(data)
        except Exception as exc:
            raise ModelFormatError(
                f"The model given to the onnx flavor is not a valid ONNX model: {exc}",
                hint="Pass an onnx.ModelProto or the bytes of a .onnx file.",
            ) from exc
        _refuse_external_data(proto, "The model given to the onnx flavor")
        try:
            onnx.checker.check_model(proto)
        except Exception as exc:
            raise ModelFormatError(
                f"The model given to the onnx flavor is not a valid ONNX model: {exc}",
                hint="Fix the model (onnx.checker.check_model reports the same problem).",
            ) from exc
        (directory / MODEL_FILE).write_bytes(data)
        props = {p.key: p.value for p in proto.metadata_props}
        classes = None
        if CLASSES_KEY in props:
            classes = json_classes(json.loads(props[CLASSES_KEY]))
        return FlavorOutput(
            model_format="onnx",
            requires=("onnx", "onnxruntime"),
            options={
                "opset": {op.domain or "ai.onnx": int(op.version) for op in proto.opset_import},
                "inputs": [i.name for i in proto.graph.input],
                "outputs": [o.name for o in proto.graph.output],
            },
            classes=classes,
        )

    def load(self, directory: Path, info: ModelInfo, *, trusted_types: Sequence[str]) -> Any:
        import onnx

        path = directory / info.file(MODEL_FILE).name
        data = path.read_bytes()
        _refuse_external_data(onnx.load_model_from_string(data), repr(str(path)))
        return OnnxModel(data)


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor of a graph (or function): initializers, node attributes, subgraphs."""
    yield from getattr(graph, "initializer", ())
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


def _refuse_external_data(proto: Any, what: str) -> None:
    """An ONNX file can point at tensor files by path; a model folder holds one file."""
    from onnx.external_data_helper import uses_external_data

    graphs = [proto.graph, *(function for function in proto.functions)]
    if any(uses_external_data(tensor) for graph in graphs for tensor in _tensors(graph)):
        raise ModelFormatError(
            f"{what} keeps tensors in external data files, which Shipyard does not follow "
            "(a path in the file could point anywhere on disk).",
            hint="Embed the tensors: onnx.load(path) then onnx.save(model, path) without "
            "save_as_external_data.",
        )


def convert_sklearn_to_onnx(
    model: Any, sample_input: Any, *, target_opset: int | None = None
) -> Any:
    """Export a fitted scikit-learn model to an ``onnx.ModelProto`` with skl2onnx.

    ``sample_input`` fixes the inputs: a DataFrame gives one input per column, an array
    one ``X`` input of its width.

    >>> proto = convert_sklearn_to_onnx(pipeline, X_train.head())  # doctest: +SKIP
    >>> save_model(proto, Path("models/churn-onnx"))  # doctest: +SKIP
    """
    import numpy as np
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.base import is_classifier

    if hasattr(sample_input, "columns"):
        initial_types: list[tuple[str, Any]] = []
        for column in sample_input.columns:
            # numpy and pandas dtypes both carry a kind: i/u/f are numbers; strings,
            # categories and booleans go in as strings.
            numeric = getattr(sample_input[column].dtype, "kind", "O") in "iuf"
            tensor = FloatTensorType([None, 1]) if numeric else StringTensorType([None, 1])
            initial_types.append((str(column), tensor))
    else:
        array = np.asarray(sample_input)
        width = array.shape[1] if array.ndim == 2 else array.shape[0]
        initial_types = [("X", FloatTensorType([None, width]))]
    options: dict[Any, Any] = {}
    if is_classifier(model):
        final = model.steps[-1][1] if hasattr(model, "steps") else model
        options = {id(final): {"zipmap": False}}
    try:
        proto = convert_sklearn(
            model, initial_types=initial_types, options=options, target_opset=target_opset
        )
    except Exception as exc:
        raise ModelFormatError(
            f"skl2onnx cannot convert a {class_path(type(model))}: {type(exc).__name__}: {exc}",
            hint="Save the scikit-learn model itself (skops) instead, or simplify the pipeline "
            "to steps skl2onnx supports.",
        ) from exc
    classes = json_classes(getattr(model, "classes_", None))
    if classes is not None:
        entry = proto.metadata_props.add()
        entry.key = CLASSES_KEY
        entry.value = json.dumps(list(classes))
    return proto
