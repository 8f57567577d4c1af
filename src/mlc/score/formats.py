"""The file formats `mlc score` reads and writes (kept apart so the CLI names them without pyarrow)."""

from __future__ import annotations

INPUT_FORMATS = ("parquet", "csv", "jsonl", "npy")
SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
            ".json": "jsonl", ".npy": "npy"}
OUTPUT_FORMATS = ("parquet", "csv", "jsonl")
