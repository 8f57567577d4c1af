"""A loaded model's input/output signature, read from the model itself."""

from __future__ import annotations

import numbers
from typing import Any

from mlc.errors import UsageError
from mlc.loading.model import FRAMEWORKS
from mlc.signature import Signature, TensorSpec, tabular

# ai.onnx.ml operators whose attributes name the classes, and those that regress.
_CLASS_LABEL_ATTRS = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")
_REGRESSOR_OPS = frozenset(["LinearRegressor", "TreeEnsembleRegressor", "SVMRegressor"])
_LIGHTGBM_CLASSIFICATION = ("binary", "multiclass", "multiclassova")


def _plain(value: Any) -> Any:
    """numpy scalars -> Python int/float/str/bool, so signatures JSON-serialize."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        value = item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return str(value)
    return value


def _classes(model: Any) -> list[Any] | None:
    classes = getattr(model, "classes_", None)
    if classes is None:
        return None
    ndim = getattr(classes, "ndim", 1)
    if ndim != 1:
        return None  # multi-output: one array of classes per output
    values = list(classes)
    if values and hasattr(values[0], "__len__") and not isinstance(values[0], (str, bytes)):
        return None
    return [_plain(v) for v in values]


def _table(n_features: Any, task: str | None, classes: list[Any] | None, n_targets: int = 1) -> Signature:
    """tabular(), allowing an unknown feature count (a free second dim)."""
    known = isinstance(n_features, numbers.Integral) and not isinstance(n_features, bool)
    sig = tabular(int(n_features) if known else 0, task=task, classes=classes, n_targets=n_targets)
    if known:
        return sig
    free = TensorSpec(sig.inputs[0].name, sig.inputs[0].dtype, (None, None))
    return Signature(inputs=(free,), outputs=sig.outputs, task=task, classes=sig.classes)


def _sklearn_task(model: Any) -> str | None:
    try:
        from sklearn.base import is_classifier, is_regressor

        if is_classifier(model):
            return "classification"
        if is_regressor(model):
            return "regression"
    except Exception:  # models outside sklearn may not implement its tags
        pass
    kind = getattr(model, "_estimator_type", None)
    if kind == "classifier":
        return "classification"
    if kind == "regressor":
        return "regression"
    return None


def _n_features(model: Any) -> Any:
    n = getattr(model, "n_features_in_", None)
    if n is None and hasattr(model, "steps"):  # a pipeline whose first step does not say
        n = getattr(model.steps[0][1], "n_features_in_", None)
    return n


def _n_targets(model: Any) -> int:
    """How many values a regressor predicts per row (multi-output trees and linear models: several)."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    n = getattr(final, "n_outputs_", None)
    coef = getattr(final, "coef_", None)
    if n is None and coef is not None and getattr(coef, "ndim", 0) == 2:
        n = coef.shape[0]
    return int(n) if isinstance(n, numbers.Integral) and int(n) > 0 else 1


def _feature_names(model: Any) -> list[str] | None:
    """The column names the model was fitted on, where it recorded them (a DataFrame's columns), so
    `mlc score` can match a table's columns by name. Generated names (LightGBM's Column_0, ...,
    XGBoost's f0, ...) are not names a user's data has, and are not recorded."""
    names = getattr(model, "feature_names_in_", None)
    if names is None and hasattr(model, "steps"):
        names = getattr(model.steps[0][1], "feature_names_in_", None)
    if names is None and hasattr(model, "get_booster"):  # XGBoost's scikit-learn API
        try:
            names = model.get_booster().feature_names
        except Exception:  # an unfitted or foreign booster: no names
            names = None
    if names is None:
        return None
    listed = [str(_plain(n)) for n in names]
    generated = all(n == f"Column_{i}" or n == f"f{i}" for i, n in enumerate(listed))
    return None if generated or len(set(listed)) != len(listed) else listed


def _with_names(sig: Signature, names: list[str] | None) -> Signature:
    if not names or (sig.n_features is not None and len(names) != sig.n_features):
        return sig
    return Signature(sig.inputs, sig.outputs, sig.task, sig.classes, {**sig.extra, "feature_names": names})


def _sklearn_signature(model: Any) -> Signature:
    task = _sklearn_task(model)
    classes = _classes(model) if task == "classification" else None
    sig = _table(_n_features(model), task, classes, _n_targets(model) if task == "regression" else 1)
    return _with_names(sig, _feature_names(model))


def _lightgbm_signature(model: Any) -> Signature:
    if hasattr(model, "n_features_in_") or not hasattr(model, "num_feature"):
        return _sklearn_signature(model)  # LGBMModel: the scikit-learn API
    # The objective as the model records it: `params` keeps the alias it was trained with ('softmax', 'ova').
    recorded = str(model.dump_model(num_iteration=1).get("objective", "")).split()
    objective = recorded[0] if recorded else ""
    if objective in _LIGHTGBM_CLASSIFICATION:
        n_classes = 2 if objective == "binary" else int(model.num_model_per_iteration())
        sig = _table(model.num_feature(), "classification", list(range(n_classes)))
    elif objective in ("lambdarank", "rank_xendcg"):
        sig = _table(model.num_feature(), None, None)
    else:
        sig = _table(model.num_feature(), "regression", None)
    names = [str(n) for n in model.feature_name()]
    generated = all(n == f"Column_{i}" for i, n in enumerate(names))
    return _with_names(Signature(sig.inputs, sig.outputs, sig.task, sig.classes, {"objective": objective}),
                       None if generated else names)


def _onnx_type(type_proto: Any) -> tuple[str, tuple[Any, ...]]:
    import onnx

    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type":
        t = type_proto.tensor_type
        shape: tuple[Any, ...] = ()
        if t.HasField("shape"):
            shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim)
        return _onnx_dtype(t.elem_type, onnx), shape
    if kind == "sequence_type":
        inner, _ = _onnx_type(type_proto.sequence_type.elem_type)
        return f"seq({inner})", (None,)
    if kind == "map_type":
        m = type_proto.map_type
        value, _ = _onnx_type(m.value_type)
        return f"map({_onnx_dtype(m.key_type, onnx)},{value})", ()
    return str(kind), ()


def _onnx_dtype(elem_type: int, onnx: Any) -> str:
    if elem_type == onnx.TensorProto.STRING:
        return "str"
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except Exception:
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _onnx_signature(model: Any) -> Signature:
    graph = model.graph
    initialized = {t.name for t in graph.initializer}
    inputs = tuple(TensorSpec(v.name, *_onnx_type(v.type)) for v in graph.input if v.name not in initialized)
    outputs = tuple(TensorSpec(v.name, *_onnx_type(v.type)) for v in graph.output)
    names = [o.name.lower() for o in outputs]
    classes: list[Any] | None = None
    for node in graph.node:
        for attr in node.attribute:
            if attr.name in _CLASS_LABEL_ATTRS and classes is None:
                values = list(attr.ints) or [s.decode("utf-8", "replace") for s in attr.strings]
                classes = values or None
    task: str | None = None
    if any("label" in n for n in names) and any("prob" in n for n in names):
        task = "classification"
    elif any(node.op_type in _REGRESSOR_OPS for node in graph.node):
        task = "regression"
    return Signature(
        inputs=inputs,
        outputs=outputs,
        task=task,
        classes=tuple(classes) if task == "classification" and classes else None,
    )


def infer_signature(model: Any, framework: str) -> Signature:
    """What the model takes and returns, read from the fitted model.

    scikit-learn-API models (sklearn, the XGBoost/LightGBM wrappers): one
    (batch, n_features_in_) float input; task from the estimator's tags; classes_
    as plain Python values. LightGBM Booster: num_feature() and its objective.
    ONNX: the graph's inputs and outputs; the task when the outputs say it.
    """
    if framework in ("sklearn", "xgboost"):
        return _sklearn_signature(model)
    if framework == "lightgbm":
        return _lightgbm_signature(model)
    if framework == "onnx":
        return _onnx_signature(model)
    raise UsageError(f"unknown framework {framework!r}", f"one of: {', '.join(FRAMEWORKS)}")
