"""Contract: every scikit-learn estimator, fitted on a small table, loads safely and predicts the same.

`sklearn.utils.all_estimators()` lists every public estimator of the installed release. Each
one is fitted on a tiny table (meta-estimators around a small base estimator, plus pipelines),
pickled, loaded by mlc's safe loader without --trust, and every output method of the loaded
copy must equal the original's exactly. A new scikit-learn that pickles a new global fails
here, naming the estimator and the global, before a user's model is refused. Estimators that
cannot take a numeric table at all are listed in NOT_TABULAR with why, and a test checks that
list stays true, so no estimator silently drops out of the contract.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import is_regressor
from sklearn.utils import all_estimators

from mlc.loading import load_model
from mlc.loading._pickle_load import load_pickled

# The estimator types the contract covers: what a served model, or a step of one, can be.
TYPES = ["classifier", "regressor", "transformer", "cluster"]
# Estimators whose input is not a numeric table (dicts, label vectors, a kernel matrix).
NOT_TABULAR = {
    "DictVectorizer": "takes a list of dicts",
    "FeatureHasher": "takes dicts or strings",
    "HashingVectorizer": "takes text",
    "TfidfTransformer": "takes a count matrix of text",
    "LabelBinarizer": "takes a label vector",
    "LabelEncoder": "takes a label vector",
    "MultiLabelBinarizer": "takes label sets",
    "PatchExtractor": "takes images",
    "KernelCenterer": "takes a square kernel matrix",
    "IsotonicRegression": "takes a single feature",
}
# Output methods compared between the original and the loaded copy.
METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "transform", "score_samples")
# Methods that draw random numbers on every call: two calls differ on one copy already.
RANDOM_PER_CALL = {("BernoulliRBM", "score_samples")}


def _table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """40 positive rows (chi2, NMF and naive Bayes need them), a balanced 2-class and a numeric target."""
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(40, 4))) + 0.1
    y_class = (x[:, 0] > np.median(x[:, 0])).astype(np.int64)
    y_value = 2 * x[:, 0] + x[:, 1]
    return x, y_class, y_value


def _base(cls: type) -> dict[str, Any]:
    """Constructor arguments: a base estimator for meta-estimators, and small settings for slow ones."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    name = cls.__name__
    if name in ("ColumnTransformer",):
        return {"transformers": [("scale", StandardScaler(), [0, 1]), ("keep", "passthrough", [2, 3])]}
    if name == "FeatureUnion":
        return {"transformer_list": [("scale", StandardScaler()), ("pca", _pca())]}
    if name in ("StackingClassifier", "VotingClassifier"):
        return {"estimators": [("lr", LogisticRegression()), ("tree", _tree_classifier())]}
    if name in ("StackingRegressor", "VotingRegressor"):
        return {"estimators": [("ridge", Ridge()), ("tree", _tree_regressor())]}
    if name == "SparseCoder":
        return {"dictionary": np.eye(4)[:2]}
    if name in ("SelfTrainingClassifier", "FixedThresholdClassifier", "TunedThresholdClassifierCV",
                "ClassifierChain", "MultiOutputClassifier", "OneVsOneClassifier", "OneVsRestClassifier",
                "OutputCodeClassifier"):
        return {"estimator": LogisticRegression()} | ({"cv": 2} if name == "TunedThresholdClassifierCV" else {})
    if name in ("RegressorChain", "MultiOutputRegressor"):
        return {"estimator": Ridge()}
    if name in ("RFE", "RFECV", "SelectFromModel", "SequentialFeatureSelector"):
        settings = {"RFE": {"n_features_to_select": 2}, "RFECV": {"cv": 2},
                    "SequentialFeatureSelector": {"n_features_to_select": 2, "cv": 2}}
        return {"estimator": LogisticRegression(), **settings.get(name, {})}
    if name in ("CCA", "PLSCanonical", "PLSSVD", "PLSRegression"):
        return {"n_components": 1}
    if name in ("GaussianRandomProjection", "SparseRandomProjection"):
        return {"n_components": 2}
    return _SMALL.get(name, {})


# Settings that keep the slowest estimators to a fraction of a second on 40 rows.
_SMALL: dict[str, dict[str, Any]] = {
    "TSNE": {"max_iter": 250, "perplexity": 5},
    "HistGradientBoostingClassifier": {"max_iter": 5},
    "HistGradientBoostingRegressor": {"max_iter": 5},
    "GradientBoostingClassifier": {"n_estimators": 5},
    "GradientBoostingRegressor": {"n_estimators": 5},
    "LogisticRegressionCV": {"cv": 2, "Cs": 3},
    "DictionaryLearning": {"max_iter": 20},
}


def _pca() -> Any:
    from sklearn.decomposition import PCA

    return PCA(n_components=2)


def _tree_classifier() -> Any:
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(max_depth=2, random_state=0)


def _tree_regressor() -> Any:
    from sklearn.tree import DecisionTreeRegressor

    return DecisionTreeRegressor(max_depth=2, random_state=0)


def _pipelines() -> dict[str, Callable[[], Any]]:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import SplineTransformer, StandardScaler

    return {
        "Pipeline[scaler+logreg]": lambda: make_pipeline(StandardScaler(), LogisticRegression()),
        "Pipeline[scaler+pca+ridge]": lambda: make_pipeline(StandardScaler(), _pca(), Ridge()),
        "Pipeline[spline+kd-knn]": lambda: make_pipeline(
            SplineTransformer(), KNeighborsClassifier(algorithm="kd_tree", n_neighbors=3)),
    }


def _cases() -> dict[str, Callable[[], Any]]:
    cases: dict[str, Callable[[], Any]] = {}
    for name, cls in all_estimators(type_filter=TYPES):
        if name not in NOT_TABULAR:
            cases[name] = lambda cls=cls: cls(**_base(cls))
    return cases | _pipelines()


CASES = _cases()


def _target(estimator: Any, name: str) -> np.ndarray | None:
    x, y_class, y_value = _table()
    if name.startswith("MultiTask") or name in ("RegressorChain", "MultiOutputRegressor", "CCA", "PLSCanonical",
                                                "PLSSVD"):
        return np.column_stack([y_value, x[:, 2]])
    if name in ("ClassifierChain", "MultiOutputClassifier"):
        return np.column_stack([y_class, (x[:, 1] > np.median(x[:, 1])).astype(np.int64)])
    if is_regressor(estimator):
        return y_value
    return y_class  # classifiers; transformers and clusterers that ignore y take it too


def _dense(value: Any) -> Any:
    return value.toarray() if hasattr(value, "toarray") else value


def _outputs(estimator: Any, x: np.ndarray) -> dict[str, Any]:
    """Every output method the estimator answers on x, and its fitted numeric array attributes
    (transductive estimators, TSNE and DBSCAN, have only those)."""
    out: dict[str, Any] = {}
    for method in METHODS:
        call = getattr(estimator, method, None)
        if call is None or (type(estimator).__name__, method) in RANDOM_PER_CALL:
            continue
        try:
            out[method] = _dense(call(x))
        except (AttributeError, NotImplementedError, ValueError, TypeError):
            continue  # a method this fitted estimator does not offer (transductive, wrong task)
    for key, value in vars(estimator).items():
        value = _dense(value)
        if (key.endswith("_") and not key.startswith("_") and isinstance(value, np.ndarray)
                and value.dtype.kind in "biufc"):
            out[key] = value
    return out


def test_every_tabular_estimator_is_in_the_contract():
    names = {name for name, _ in all_estimators(type_filter=TYPES)}
    assert names - set(NOT_TABULAR) <= set(CASES)
    assert set(NOT_TABULAR) <= names, f"no longer in scikit-learn: {sorted(set(NOT_TABULAR) - names)}"
    assert "KNeighborsClassifier" in CASES and len(CASES) > 150


@pytest.mark.parametrize("name", sorted(CASES))
def test_estimator_pickle_loads_without_trust_and_predicts_the_same(name: str, tmp_path: Path) -> None:
    x, _, _ = _table()
    estimator = CASES[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        target = _target(estimator, name)
        if type(estimator).__module__.startswith("sklearn.cluster") or name in ("TSNE",):
            estimator.fit(x)
        else:
            estimator.fit(x, target)
        expected = _outputs(estimator, x)
    assert expected, f"{name} offers no output to compare"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL))

    loaded = load_pickled(path, "pickle", trust=False)  # refuses with UnsafeModelError naming the global
    assert type(loaded) is type(estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = _outputs(loaded, x)
    assert set(got) == set(expected)
    for key, value in expected.items():
        # Exact but for BLAS's last bits, which depend on where an array sits in memory:
        # LabelPropagation's probabilities move by 1e-14 relative after a plain pickle round trip too.
        np.testing.assert_allclose(got[key], value, rtol=1e-9, atol=1e-12, err_msg=f"{name}.{key}")
    if callable(getattr(estimator, "predict", None)):
        assert load_model(path).framework == "sklearn"  # the whole loading path, signature included


def test_the_functions_admitted_for_sklearn_are_named_one_by_one():
    """KD-tree pickles need `_kd_tree.newObj`; its module's other functions stay refused."""
    from mlc.loading import offenders_of

    admitted = ["sklearn.neighbors._kd_tree.newObj", "sklearn.cluster._kmeans._kmeans_single_lloyd", "numpy.mean"]
    assert offenders_of(admitted) == ([], [])
    neighbours = ["sklearn.neighbors._kd_tree.kernel_norm", "sklearn.cluster._kmeans.k_means",
                  "sklearn.feature_selection._univariate_selection.f_oneway", "numpy.load", "numpy.save"]
    assert offenders_of(neighbours)[0] == neighbours
