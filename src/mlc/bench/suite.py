"""The built-in benchmark suites: models trained here, with fixed seeds, so every run times the same models.

- quick: three tiny but realistic models (a linear model, a small forest, an MLP regressor);
  trained in about a second, timed in well under a minute on two cores: the CI suite.
- full: the models `mlc optimize` is tuned on, at realistic sizes. XGBoost and LightGBM models
  are skipped, with a note, when those packages are not installed.

Each model comes with held-out rows from its training distribution, so parity and tree paths
are exercised on realistic inputs rather than noise.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlc.errors import MissingDependencyError, UsageError

SUITES = ("quick", "full")
EVAL_ROWS = 1024  # the largest batch size timed; parity runs on these rows
SEED = 0


@dataclass(frozen=True)
class SuiteModel:
    name: str
    description: str
    build: Callable[[], Any]  # an unfitted estimator
    n_features: int
    n_classes: int | None  # None: regression
    train_rows: int = 2000
    requires: str | None = None  # optional package (also the mlc extra) the model needs

    def train(self) -> tuple[Any, np.ndarray]:
        """The fitted model and EVAL_ROWS held-out float32 rows; refuses if `requires` is missing."""
        if self.requires and importlib.util.find_spec(self.requires) is None:
            raise MissingDependencyError(self.requires, self.requires, f"the {self.name} benchmark")
        x, y = _data(self.n_features, self.n_classes, self.train_rows + EVAL_ROWS)
        model = self.build()
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            # An MLP cut at max_iter warns about convergence; a fixed iteration count is the point here.
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            model.fit(x[: self.train_rows], y[: self.train_rows])
        return model, np.ascontiguousarray(x[self.train_rows:])


def converted_onnx(model: Any) -> bytes:
    """A trained suite model as `mlc optimize` converts it (mlc.convert, before any pass)."""
    from mlc.convert import convert
    from mlc.loading import infer_signature
    from mlc.loading.model import LoadedModel

    package = type(model).__module__.split(".")[0]
    framework = package if package in ("xgboost", "lightgbm") else "sklearn"
    loaded = LoadedModel(model=model, format="pickle", framework=framework,
                         signature=infer_signature(model, framework))
    return convert(loaded).onnx_bytes


def _data(n_features: int, n_classes: int | None, rows: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification, make_regression

    informative = max(2, n_features // 2)
    if n_classes is None:
        x, y = make_regression(n_samples=rows, n_features=n_features, n_informative=informative, noise=5.0,
                               random_state=SEED)
    else:
        x, y = make_classification(n_samples=rows, n_features=n_features, n_informative=informative,
                                   n_redundant=n_features // 4, n_classes=n_classes, n_clusters_per_class=2,
                                   random_state=SEED)
    return x.astype(np.float32), y


def _logreg() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=500)


def _forest(trees: int, depth: int) -> Callable[[], Any]:
    def build() -> Any:
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=trees, max_depth=depth, random_state=SEED)
    return build


def _mlp_regressor() -> Any:
    from sklearn.neural_network import MLPRegressor

    return MLPRegressor(hidden_layer_sizes=(64, 32), max_iter=200, random_state=SEED)


def _pca_logreg() -> Any:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), PCA(n_components=20, random_state=SEED), LogisticRegression(max_iter=500))


def _hist_gb() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=200, early_stopping=False, random_state=SEED)


def _gb_regressor() -> Any:
    from sklearn.ensemble import GradientBoostingRegressor

    return GradientBoostingRegressor(n_estimators=200, max_depth=4, random_state=SEED)


def _mlp_classifier() -> Any:
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=30, random_state=SEED)


def _xgboost() -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(n_estimators=300, max_depth=6, random_state=SEED)


def _lightgbm() -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=300, num_leaves=63, random_state=SEED, verbose=-1)


QUICK = (
    SuiteModel("logreg", "LogisticRegression, 20 features, 3 classes", _logreg, 20, 3),
    SuiteModel("forest", "RandomForestClassifier, 30 trees of depth 8, 20 features", _forest(30, 8), 20, 2),
    SuiteModel("mlp", "MLPRegressor (64, 32), 16 features", _mlp_regressor, 16, None),
)

FULL = (
    SuiteModel("logreg-50", "LogisticRegression, 50 features, 2 classes", _logreg, 50, 2, 5000),
    SuiteModel("pca-logreg", "StandardScaler -> PCA(20) -> LogisticRegression, 100 features, 5 classes",
               _pca_logreg, 100, 5, 5000),
    SuiteModel("forest-100", "RandomForestClassifier, 100 trees of depth 10, 30 features", _forest(100, 10),
               30, 2, 5000),
    SuiteModel("hist-gb-200", "HistGradientBoostingClassifier, 200 iterations, 30 features", _hist_gb, 30, 2, 5000),
    SuiteModel("gb-regressor-200", "GradientBoostingRegressor, 200 trees of depth 4, 20 features",
               _gb_regressor, 20, None, 5000),
    SuiteModel("mlp-256x2", "MLPClassifier (256, 256), 64 features, 10 classes", _mlp_classifier, 64, 10, 5000),
    SuiteModel("xgboost-300", "XGBClassifier, 300 trees of depth 6, 30 features", _xgboost, 30, 2, 5000,
               requires="xgboost"),
    SuiteModel("lightgbm-300", "LGBMClassifier, 300 trees of 63 leaves, 30 features", _lightgbm, 30, 2, 5000,
               requires="lightgbm"),
)


def suite(name: str) -> tuple[SuiteModel, ...]:
    if name not in SUITES:
        raise UsageError(f"unknown suite {name!r}", f"choose one of: {', '.join(SUITES)}")
    return QUICK if name == "quick" else FULL
