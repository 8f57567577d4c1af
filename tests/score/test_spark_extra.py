"""Without pyspark, the Spark path says which extra to install (this runs in the default tier)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlc.errors import MissingDependencyError

_WITHOUT_PYSPARK = ("import sys; sys.modules['pyspark'] = None; from mlc.cli import cli; "
                    "cli(sys.argv[1:], prog_name='mlc')")


def test_the_spark_engine_without_pyspark_names_the_extra(mlc_env: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", _WITHOUT_PYSPARK, "score", "forest", str(tmp_path / "in.parquet"),
                             "--out", str(tmp_path / "out"), "--engine", "spark"], env=mlc_env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert "scoring on Spark needs the 'pyspark' package" in result.stderr
    assert 'pip install "mlc[spark]"' in result.stderr


def test_the_library_without_pyspark_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlc.score import spark

    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(MissingDependencyError, match="pyspark") as info:
        spark.score(None, "forest")  # type: ignore[arg-type]
    assert info.value.hint == 'install it with: pip install "mlc[spark]"'
