"""The allowlist admits every global real models use, and nothing that can act.

If a new scikit-learn / numpy / XGBoost / LightGBM release pickles a new name, the
first test fails here rather than a user's model being refused.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest

from mlc.loading import _allowlist, offenders_of, scan_pickle


def _pickles(model: object) -> dict[str, bytes]:
    out = {f"pickle-{p}": pickle.dumps(model, protocol=p) for p in range(pickle.HIGHEST_PROTOCOL + 1)}
    for compress in (0,):
        buffer = io.BytesIO()
        joblib.dump(model, buffer, compress=compress)
        out["joblib"] = buffer.getvalue()
    return out


def test_real_models_import_only_allowed_globals(all_models: dict) -> None:
    seen: set[str] = set()
    for name, model in all_models.items():
        for kind, data in _pickles(model).items():
            found = scan_pickle(data)
            refused, missing = offenders_of(found)
            assert refused == [] and missing == [], f"{name} as {kind}: {refused or missing}"
            seen.update(found)
    # The scan really does see the model classes (so the empty offender list means something).
    assert "sklearn.ensemble._forest.RandomForestClassifier" in seen
    assert "xgboost.sklearn.XGBClassifier" in seen and "lightgbm.basic.Booster" in seen
    assert "joblib.numpy_pickle.NumpyArrayWrapper" in seen


def test_common_extras_are_allowed(tmp_path: Path, data: dict) -> None:
    from scipy import sparse
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder
    from sklearn.tree import DecisionTreeClassifier

    X = data["X"]
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2]}, cv=2, scoring="f1")
    search.fit(X, data["y_bin"])  # cv_results_ holds masked arrays, scorer_ a metric function
    pipeline = make_pipeline(
        FunctionTransformer(np.log1p), OneHotEncoder(handle_unknown="ignore"), DecisionTreeClassifier(max_depth=2)
    ).fit(X.round(1), data["y_bin"])
    extras = {
        "search": search,
        "log1p-pipeline": pipeline,
        "sparse": sparse.csr_matrix(np.eye(3)),
        "rng": np.random.default_rng(0),
        "scalar": np.float32(1.5),
        "masked": np.ma.masked_array([1, 2]),
    }
    seen: set[str] = set()
    for name, obj in extras.items():
        for kind, blob in _pickles(obj).items():
            seen.update(scan_pickle(blob))
            refused, missing = offenders_of(scan_pickle(blob))
            assert refused == [] and missing == [], f"{name} as {kind}: {refused or missing}"
    assert "sklearn.metrics._classification.f1_score" in seen


@pytest.mark.parametrize(
    "qualified",
    [
        "os.system",
        "posix.system",
        "nt.system",
        "subprocess.Popen",
        "builtins.eval",
        "builtins.exec",
        "builtins.getattr",
        "builtins.__import__",
        "builtins.compile",
        "builtins.open",
        "builtins.type",
        "importlib.import_module",
        "ctypes.CDLL",
        "socket.socket",
        "shutil.rmtree",
        "pickle.loads",
        "marshal.loads",
        "types.FunctionType",
        "sys.modules",
        "operator.attrgetter",
        "runpy.run_path",
        "collections.Counter",
        # numpy's names that act: files, ctypes, compilers, import-by-name
        "numpy.load",
        "numpy.save",
        "numpy.savetxt",
        "numpy.fromfile",
        "numpy.memmap",
        "numpy.loadtxt",
        "numpy.lib.npyio.load",
        "numpy.ctypeslib.load_library",
        "numpy.f2py.compile",
        "numpy.testing.assert_",
        "numpy.frompyfunc",
        "numpy.vectorize",
        "numpy._core._ufunc_reconstruct",
        # scikit-learn's corners that act
        "sklearn.datasets.fetch_openml",
        "sklearn.datasets.dump_svmlight_file",
        "sklearn.utils._testing.assert_run_python_script_without_output",
        "sklearn.utils.discovery.all_estimators",
        "sklearn.utils._set_output.check_library_installed",
        "sklearn.tree.export_graphviz",  # re-exported from the denied sklearn.tree._export
        "sklearn.base.copy",  # a module imported by sklearn.base
        "sklearn.__getattr__",
        "sklearn.base.BaseEstimator.__init_subclass__",
        "sklearn.externals._packaging.version.parse",
        # functions outside sklearn.metrics: many fit what they are handed
        "sklearn.model_selection._validation.cross_validate",
        "sklearn.model_selection.cross_val_score",
        "sklearn.pipeline._fit_transform_one",
        "sklearn.base.clone",
        "sklearn.utils.parallel.delayed",
        # joblib: only the array wrapper, never its loaders or the side-file wrapper
        "joblib.load",
        "joblib.numpy_pickle.load",
        "joblib.numpy_pickle_compat.NDArrayWrapper",
        "xgboost.core._load_lib",
        "xgboost.tracker.RabitTracker",
        "lightgbm.basic._load_lib",
        "scipy.sparse.load_npz",
        "scipy.LowLevelCallable",
    ],
)
def test_dangerous_globals_are_refused(qualified: str) -> None:
    refused, missing = offenders_of([qualified])
    # Refused, or (for names this environment's libraries lack) not loadable at all.
    assert refused == [qualified] or [name for name, _ in missing] == [qualified]


def test_scipy_distributions_need_trust() -> None:
    # Frozen scipy.stats distributions (RandomizedSearchCV.param_distributions) pickle
    # bound methods as builtins.getattr(obj, name), which no allowlist can admit.
    from scipy import stats

    refused, _ = offenders_of(scan_pickle(pickle.dumps(stats.randint(1, 3))))
    assert "builtins.getattr" in refused


@pytest.mark.parametrize(
    "qualified",
    [
        "sklearn.linear_model._logistic.LogisticRegression",
        "numpy.float64",
        "numpy.log1p",
        "numpy.dtype",
        "numpy.dtypes.Float64DType",
        "scipy.special.expit",
        "builtins.set",
        "copyreg._reconstructor",
        "sklearn._loss._loss.__pyx_unpickle_CyHalfMultinomialLoss",
        "functools.partial",
        "sklearn.metrics._classification.f1_score",
        "sklearn.metrics.f1_score",
        "scipy.sparse._csr.csr_matrix",
    ],
)
def test_model_globals_are_allowed(qualified: str) -> None:
    module, _, name = qualified.rpartition(".")
    assert _allowlist.resolve(module, name) is not None


def test_unresolvable_markers_are_refused() -> None:
    refused, _ = offenders_of(["<unresolvable STACK_GLOBAL>", "<copyreg extension code 7>"])
    assert len(refused) == 2
