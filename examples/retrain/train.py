"""Train (or retrain) the model of the example pipeline, and write the held-out rows it is judged on.

Synthetic churn-like data (sklearn's make_classification), so nothing is downloaded.
Usage: python examples/retrain/train.py [--trees N] [--depth D] [--seed S]
Writes examples/retrain/work/churn.joblib and work/holdout.csv (features f0..f7 and `label`);
`mlc run examples/retrain/mlc.toml` then registers, optimizes, compares and promotes it.
A retrain with a weaker setting (`--trees 2 --depth 2`) is refused by the criteria.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=20)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = Path(__file__).with_name("work")
    work.mkdir(exist_ok=True)
    x, y = make_classification(n_samples=1500, n_features=8, n_informative=5, random_state=0)
    x = x.astype(np.float32)
    model = RandomForestClassifier(n_estimators=args.trees, max_depth=args.depth, random_state=args.seed,
                                   n_jobs=1).fit(x[:1000], y[:1000])
    joblib.dump(model, work / "churn.joblib")
    rows = ",".join([*(f"f{i}" for i in range(8)), "label"])
    lines = [rows] + [",".join([*(f"{v:.6g}" for v in features), str(int(label))])
                      for features, label in zip(x[1000:], y[1000:], strict=True)]
    (work / "holdout.csv").write_text("\n".join(lines) + "\n")
    print(f"wrote {work / 'churn.joblib'} ({args.trees} trees, depth {args.depth}) and {work / 'holdout.csv'}")


if __name__ == "__main__":
    main()
