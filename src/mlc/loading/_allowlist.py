"""Which globals a model pickle may import.

A pickle can only call what it can name, so the list of names it imports is the
whole of what it can do. A name passes in two steps:

1. by its text (`refusal`): it must be listed here exactly, or live under one of
   the module trees of the frameworks we load, outside the denied corners of
   those trees;
2. by what it resolves to (`resolve`): the object must be a class or a
   function (not a module, not an instance), and its own defining module and name
   must pass step 1 too. This catches a name that reaches a dangerous object
   through a module that merely imports it, e.g. `sklearn.x.load` where
   `sklearn.x` did `from joblib import load`.

Step 2 imports the module named by the pickle, so it runs only after step 1
passed: importing an allowed module runs library code, never pickle content.

Everything here is deliberately a list you can read top to bottom. When a model
of a supported framework is refused, `tests/loading/test_allowlist.py` is where
to prove the fix.
"""

from __future__ import annotations

import importlib
import re
import types
from typing import Any

# ---------------------------------------------------------------------------
# Exact names, "module.name". These are hand-checked: each one builds data or
# rebuilds an object from data, and none reads or writes files, imports by name
# or runs code it is handed.

EXACT_ALLOWED: frozenset[str] = frozenset(
    [
        # builtins the pickle protocol itself falls back on (sets, bytes and
        # subclasses of builtins under protocols 0-2).
        "builtins.bool",
        "builtins.bytearray",
        "builtins.bytes",
        "builtins.complex",
        "builtins.dict",
        "builtins.float",
        "builtins.frozenset",
        "builtins.int",
        "builtins.list",
        "builtins.object",
        "builtins.range",
        "builtins.set",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        # copyreg's reconstructors for protocols 0-2 (they call cls.__new__ on a
        # class that itself must be allowed).
        "copyreg._reconstructor",
        "copyreg.__newobj__",
        "copyreg.__newobj_ex__",
        # numpy arrays pickled with protocols 0-2 carry their bytes as latin-1 text.
        "_codecs.encode",
        "collections.OrderedDict",
        "collections.defaultdict",
        # partial(f, ...) only defers a call to f, and f is itself a scanned global.
        "functools.partial",
        # numpy: arrays, dtypes, scalars, masked arrays, matrices.
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.matrix",
        "numpy.ma.MaskedArray",
        "numpy.ma.core.MaskedArray",
        "numpy.ma.core._mareconstruct",
        "numpy.ma.core.MaskedConstant",
        *(
            f"{core}.{name}"
            for core in ("numpy.core", "numpy._core")
            for name in (
                "multiarray._reconstruct",
                "multiarray.scalar",
                "numeric._frombuffer",
            )
        ),
        # numpy random states (estimators keep their random_state).
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random.__RandomState_ctor",  # numpy 1.x pickles
        "numpy.random.mtrand.RandomState",
        "numpy.random._generator.Generator",
        "numpy.random._mt19937.MT19937",
        "numpy.random._pcg64.PCG64",
        "numpy.random._pcg64.PCG64DXSM",
        "numpy.random._philox.Philox",
        "numpy.random._sfc64.SFC64",
        "numpy.random.bit_generator.SeedSequence",
        "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
        # joblib writes each array as this placeholder followed by its raw bytes.
        # (Its older NDArrayWrapper is NOT here: it np.load()s a path named by the
        # pickle with allow_pickle=True.)
        "joblib.numpy_pickle.NumpyArrayWrapper",
        # The boosters behind the xgboost / lightgbm scikit-learn wrappers.
        "xgboost.core.Booster",
        "lightgbm.basic.Booster",
        # Functions scikit-learn itself pickles inside fitted estimators (found by
        # tests/loading/test_sklearn_estimators.py over every estimator). Each only computes;
        # each is listed here by name because sklearn's tree admits classes only.
        # KDTree / BallTree (every KNN with algorithm="kd_tree"/"ball_tree", Isomap...):
        # `newObj(cls)` is `cls.__new__(cls)`, as copyreg.__newobj__, on a scanned class.
        "sklearn.neighbors._kd_tree.newObj",
        "sklearn.neighbors._ball_tree.newObj",
        # BisectingKMeans keeps the k-means routine it fits with.
        "sklearn.cluster._kmeans._kmeans_single_lloyd",
        "sklearn.cluster._kmeans._kmeans_single_elkan",
        # SelectKBest & co. keep their score function (the defaults and the documented ones).
        "sklearn.feature_selection._univariate_selection.f_classif",
        "sklearn.feature_selection._univariate_selection.f_regression",
        "sklearn.feature_selection._univariate_selection.r_regression",
        "sklearn.feature_selection._univariate_selection.chi2",
        "sklearn.feature_selection._mutual_info.mutual_info_classif",
        "sklearn.feature_selection._mutual_info.mutual_info_regression",
        # FeatureAgglomeration's default pooling function.
        "numpy.mean",
        # SplineTransformer's fitted splines: scipy's BSpline holds its knots, coefficients
        # and the array-API `asarray` it converts inputs with.
        "scipy.interpolate._bsplines.BSpline",
        "scipy._lib.array_api_compat.numpy._aliases.asarray",
    ]
)

# ---------------------------------------------------------------------------
# Module trees of the frameworks whose fitted models we load, and what may be
# named under each (the longest matching tree decides):
#   CLASSES: classes only. Their constructors just store parameters and their
#     state is restored by BUILD; what a class *does* needs a method, and a
#     pickle cannot reach a method without builtins.getattr.
#   FUNCTIONS: classes and functions, for trees whose functions only compute.
# Functions elsewhere in scikit-learn are refused on purpose: many of its private
# helpers fit an estimator they are handed (`_fit_transform_one`, cross_validate,
# ...), and fitting with hostile parameters can touch the disk
# (Pipeline(memory=...), CountVectorizer(input="filename")).
CLASSES = "classes"
FUNCTIONS = "classes and functions"
ALLOWED_MODULE_TREES: dict[str, str] = {
    "sklearn": CLASSES,
    "sklearn.metrics": FUNCTIONS,  # scorers keep their metric functions
    "scipy.sparse": CLASSES,  # sparse matrices (coef_, one-hot encodings)
    "scipy.special": FUNCTIONS,  # expit, logsumexp... as FunctionTransformer funcs
    "xgboost.sklearn": CLASSES,
    "lightgbm.sklearn": CLASSES,
}

# numpy's namespaces are allowed only for what cannot act: scalar types, dtype
# classes and ufuncs (checked on the resolved object). Everything else in numpy
# (load, save*, fromfile, memmap, ctypeslib, f2py, testing, ...) is refused, and
# its other modules are not even imported (some run examples or JIT at import).
NUMPY_MODULES = ("numpy", "numpy.dtypes")

DENIED_MODULE_TREES: tuple[str, ...] = (
    "sklearn.datasets",  # fetch_* download and write; load_*/dump_svmlight_file read and write files
    "sklearn.utils._testing",  # runs Python source in a subprocess
    "sklearn.utils.estimator_checks",
    "sklearn.utils.discovery",  # imports modules by name
    "sklearn.utils._show_versions",
    "sklearn.externals",  # vendored array-API shims that import by name
    "sklearn._build_utils",
    "sklearn.callback",  # opens sockets to a listener named in its state
    "sklearn.experimental",  # importing it patches sklearn
    "sklearn.tree._export",  # export_graphviz writes to a path
    "sklearn.utils._mocking",  # test estimators that call the callables in their params
    "scipy.sparse._matrix_io",  # save_npz / load_npz
    # (numpy is limited by NUMPY_MODULES already; these stay denied if that widens)
    "numpy.lib.npyio",
    "numpy.lib.format",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.ctypeslib",
    "numpy.testing",
)

DENIED_NAMES: frozenset[str] = frozenset(
    [
        "sklearn.utils._set_output.check_library_installed",  # import_module(arbitrary name)
        "joblib.numpy_pickle_compat.NDArrayWrapper",
        "joblib.numpy_pickle_compat.ZNDArrayWrapper",
    ]
)

# Any module path with one of these components is test, build or example code.
_DENIED_COMPONENTS = frozenset(["tests", "conftest", "testing", "_examples", "_precompute", "benchmarks"])
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Cython's generated unpickle helpers are dunder names, and safe under an allowed module.
_CYTHON_UNPICKLE = re.compile(r"^__pyx_unpickle_[A-Za-z0-9_]+$")


class RefusedGlobal(Exception):
    """A global outside the allowlist (raised by `resolve`)."""

    def __init__(self, qualified: str, reason: str) -> None:
        super().__init__(f"{qualified}: {reason}")
        self.qualified = qualified
        self.reason = reason


def _in_tree(module: str, tree: str) -> bool:
    return module == tree or module.startswith(tree + ".")


def _tree_policy(module: str) -> str | None:
    """CLASSES / FUNCTIONS for the longest allowed tree holding `module`, else None."""
    trees = [tree for tree in ALLOWED_MODULE_TREES if _in_tree(module, tree)]
    return ALLOWED_MODULE_TREES[max(trees, key=len)] if trees else None


def refusal(module: str, name: str) -> str | None:
    """Why the text of this global is refused, or None when it may be allowed."""
    qualified = f"{module}.{name}"
    if qualified in DENIED_NAMES:
        return "explicitly denied"
    if qualified in EXACT_ALLOWED:
        return None
    if not _IDENTIFIER.match(name):
        # Dotted names walk attributes (`sklearn.base.copy.deepcopy`): exact-listed only.
        return "not a plain name"
    if name.startswith("__") and not _CYTHON_UNPICKLE.match(name):
        return "dunder name"
    parts = module.split(".")
    if not all(_IDENTIFIER.match(p) for p in parts):
        return "not a plain module path"
    if any(p in _DENIED_COMPONENTS for p in parts):
        return "test code"
    if any(_in_tree(module, tree) for tree in DENIED_MODULE_TREES):
        return "denied module"
    if _tree_policy(module) is not None:
        return None
    if module in NUMPY_MODULES:
        return None  # decided on the object by `resolve`
    return "not in the allowlist"


def _is_numpy_data_type(obj: Any) -> bool:
    import numpy as np

    if isinstance(obj, np.ufunc):
        return True
    return isinstance(obj, type) and issubclass(obj, (np.generic, np.dtype))


def _is_function(obj: Any) -> bool:
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
        return True
    # Cython functions are their own type, but carry the usual function attributes.
    return type(obj).__name__ in ("cython_function_or_method", "fused_cython_function") and callable(obj)


def _object_refusal(module: str, name: str, obj: Any) -> str | None:
    """Why this resolved object is refused, or None (its text already passed)."""
    qualified = f"{module}.{name}"
    if qualified in EXACT_ALLOWED:
        return None
    import numpy as np

    if isinstance(obj, np.ufunc):
        return None  # element-wise arithmetic, wherever it is exposed
    if module in NUMPY_MODULES:
        if _is_numpy_data_type(obj):
            return None
        return "numpy names are limited to scalar types, dtypes and ufuncs"
    policy = _tree_policy(module)
    if isinstance(obj, type):
        pass
    elif not _is_function(obj):
        return f"resolves to a {type(obj).__name__}, not a class or function"
    elif policy != FUNCTIONS and not _CYTHON_UNPICKLE.match(name):
        return "a function outside the trees whose functions are allowed"
    home = getattr(obj, "__module__", None)
    own = getattr(obj, "__qualname__", None)
    if not isinstance(home, str) or not isinstance(own, str):
        return "resolves to an object without a home module"
    if (home, own) != (module, name):
        # Reached through a module that imports it: judge it where it lives.
        reason = refusal(home, own) or _object_refusal(home, own, obj)
        if reason is not None:
            return f"resolves to {home}.{own} ({reason})"
    return None


def resolve(module: str, name: str) -> Any:
    """Import and return an allowed global; raise `RefusedGlobal` otherwise.

    ImportError / AttributeError propagate when the name passes but does not exist
    in this environment (a missing optional package, another library version).
    """
    qualified = f"{module}.{name}"
    reason = refusal(module, name)
    if reason is not None:
        raise RefusedGlobal(qualified, reason)
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    reason = _object_refusal(module, name, obj)
    if reason is not None:
        raise RefusedGlobal(qualified, reason)
    return obj


def offenders_of(globals_: list[str]) -> tuple[list[str], list[tuple[str, Exception]]]:
    """Split scanned globals into refused ones and ones this environment cannot import.

    Scanner markers such as "<unresolvable STACK_GLOBAL>" are always refused.
    """
    refused: list[str] = []
    missing: list[tuple[str, Exception]] = []
    for qualified in globals_:
        module, _, name = qualified.rpartition(".")
        if qualified.startswith("<") or not module:
            refused.append(qualified)
            continue
        try:
            resolve(module, name)
        except RefusedGlobal:
            refused.append(qualified)
        except (ImportError, AttributeError) as exc:
            missing.append((qualified, exc))
    return refused, missing
