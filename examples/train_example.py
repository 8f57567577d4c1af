"""Train the example model the README optimizes: a small churn-style random forest.

The data is synthetic (sklearn's make_classification) so nothing is downloaded.
Usage: python examples/train_example.py [OUT.joblib]
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "examples/churn_forest.joblib")
    x, y = make_classification(n_samples=2000, n_features=20, n_informative=8, random_state=0)
    x = x.astype(np.float32)
    model = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0, n_jobs=1).fit(x, y)
    out.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out)
    np.save(out.with_suffix(".sample.npy"), x[:500])
    print(f"wrote {out} and {out.with_suffix('.sample.npy')} (500 rows of real inputs for --data)")


if __name__ == "__main__":
    main()
