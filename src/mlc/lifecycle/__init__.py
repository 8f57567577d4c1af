"""The retrain loop: compare two versions, promote by criteria, and the pipeline file that runs it all.

- compare.py: `mlc compare NEW OLD`, agreement, quality with intervals, latency (metrics.py, rows.py);
- criteria.py: the small expression language of `mlc promote --require`;
- promote.py: moving an alias by criteria, its history and rollback;
- pipeline.py / run.py: `mlc.toml` and `mlc run`, each step cached by its inputs' digests.
"""
