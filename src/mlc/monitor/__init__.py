"""Watching a deployed version: the data it receives against the data it was built on.

`summary` keeps mergeable per-column sketches (a version's reference, a window of collected
rows); `drift` judges two summaries per column and overall, with the tests in `stats`;
`collect` writes what `mlc serve --collect` samples, off the hot path. Nothing is imported
here, so the server loads the collector without the statistics (scipy) it does not need.
"""
