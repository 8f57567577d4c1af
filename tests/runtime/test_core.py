"""The compiled row packer/scatterer against numpy, and its pure twin against it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlc.errors import InvalidInputError
from mlc.runtime import _core, _pycore

IMPLS = [pytest.param(_core, id="compiled"), pytest.param(_pycore, id="pure")]
DTYPES = [np.float32, np.float64, np.int64, np.int32, np.bool_, np.uint8]


@st.composite
def row_blocks(draw: st.DrawFn) -> list[np.ndarray]:
    """Arrays that may be packed together: one dtype and trailing shape, 0..6 rows each."""
    dtype = draw(st.sampled_from(DTYPES))
    trailing = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=2)))
    counts = draw(st.lists(st.integers(0, 6), min_size=1, max_size=8))
    return [draw(hnp.arrays(dtype, (n, *trailing))) for n in counts]


@pytest.mark.parametrize("impl", IMPLS)
@settings(deadline=None, max_examples=60)
@given(blocks=row_blocks())
def test_pack_rows_equals_concatenate(impl, blocks):
    packed = impl.pack_rows(blocks)
    expected = np.concatenate(blocks)
    assert packed.dtype == expected.dtype and packed.flags.c_contiguous
    np.testing.assert_array_equal(packed, expected)


@pytest.mark.parametrize("impl", IMPLS)
@settings(deadline=None, max_examples=60)
@given(blocks=row_blocks())
def test_scatter_rows_inverts_pack_with_copies(impl, blocks):
    buffer = np.concatenate(blocks)
    parts = impl.scatter_rows(buffer, [b.shape[0] for b in blocks])
    assert len(parts) == len(blocks)
    for part, block in zip(parts, blocks, strict=True):
        assert part.dtype == block.dtype and part.shape == block.shape and part.flags.c_contiguous
        np.testing.assert_array_equal(part, block)
        assert not np.shares_memory(part, buffer)


@settings(deadline=None, max_examples=80)
@given(blocks=row_blocks(), data=st.data())
def test_pure_twin_agrees_with_compiled(blocks, data):
    np.testing.assert_array_equal(_pycore.pack_rows(blocks), _core.pack_rows(blocks))
    buffer = np.concatenate(blocks)
    counts = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=6).filter(lambda c: sum(c) <= len(buffer)))
    counts[-1] += len(buffer) - sum(counts)
    for fast, slow in zip(_core.scatter_rows(buffer, counts), _pycore.scatter_rows(buffer, counts), strict=True):
        assert fast.dtype == slow.dtype and fast.shape == slow.shape
        np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("impl", IMPLS)
def test_pack_rows_into_given_buffer(impl):
    blocks = [np.full((n, 3), n, np.float32) for n in (1, 2, 3)]
    out = np.empty((6, 3), np.float32)
    assert impl.pack_rows(blocks, out=out) is out
    np.testing.assert_array_equal(out, np.concatenate(blocks))


@pytest.mark.parametrize("impl", IMPLS)
def test_scatter_rows_of_labels_and_strings(impl):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.int64)
    assert [p.tolist() for p in impl.scatter_rows(labels, [2, 0, 3])] == [[3, 1], [], [4, 1, 5]]
    names = np.array(["cat", "dog", "emu"], dtype=object)
    assert [p.tolist() for p in impl.scatter_rows(names, [1, 2])] == [["cat"], ["dog", "emu"]]
    strided = np.arange(12.0).reshape(4, 3)[:, ::2]  # a non-contiguous output still splits right
    np.testing.assert_array_equal(np.concatenate(impl.scatter_rows(strided, [3, 1])), strided)


F32 = np.zeros((2, 3), np.float32)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    ("arrays", "out", "needle"),
    [
        ([], None, "at least one"),
        ([F32, [[1.0, 2.0, 3.0]]], None, "not a numpy array"),
        ([F32, F32.astype(np.float64)], None, "float64"),
        ([F32, np.zeros((2, 4), np.float32)], None, "shape"),
        ([F32, np.zeros((2, 3, 1), np.float32)], None, "shape"),
        ([F32, np.zeros((3, 2), np.float32).T], None, "C-contiguous"),
        ([np.ones((), np.float32)], None, "row axis"),
        ([np.array([["a"]], dtype=object)], None, "Python objects"),
        ([F32, F32], np.empty((3, 3), np.float32), "out is"),
        ([F32, F32], np.empty((4, 3), np.float64), "out is"),
        ([F32, F32], np.empty((3, 4), np.float32).T, "C-contiguous"),
    ],
)
def test_pack_rows_refuses_bad_input(impl, arrays, out, needle):
    with pytest.raises(InvalidInputError, match=needle):
        impl.pack_rows(arrays, out=out)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    ("buffer", "counts", "needle"),
    [
        (np.zeros((4, 2)), [1, 2], "add up to 3"),
        (np.zeros((4, 2)), [5, -1], "negative"),
        (np.ones(()), [1], "row axis"),
        ([[1.0]], [1], "not a numpy array"),
    ],
)
def test_scatter_rows_refuses_bad_counts(impl, buffer, counts, needle):
    with pytest.raises(ValueError, match=needle):
        impl.scatter_rows(buffer, counts)


def test_pack_rows_releases_the_gil():
    """Another Python thread keeps counting while big packs run in this one."""
    blocks = [np.ones((1 << 20,), np.float32) for _ in range(8)]  # 32 MiB in all
    out = np.zeros((8 << 20,), np.float32)
    count = 0
    stop = threading.Event()

    def counter() -> None:
        nonlocal count
        while not stop.is_set():
            count += 1

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # a GIL-holding pack would let the counter run only ~0.1 ms per call
    thread = threading.Thread(target=counter)
    thread.start()
    try:
        time.sleep(0.05)
        before, start = count, time.perf_counter()
        time.sleep(0.05)  # calibration: how fast it counts while this thread waits
        rate = (count - before) / (time.perf_counter() - start)
        before, start = count, time.perf_counter()
        for _ in range(3):
            _core.pack_rows(blocks, out=out)
        elapsed = time.perf_counter() - start
        progressed = count - before
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(old_interval)
    assert out.sum() == out.size
    # Held GIL: ~3 switch intervals of counting (<1% measured). Released: most of `elapsed` (~50%).
    assert progressed > 0.05 * rate * elapsed, (progressed, rate, elapsed)
    assert elapsed > 0.01  # the packs were long enough for the comparison to mean something


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "MLC_PURE_PYTHON"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**clean, **env}, timeout=120)


BLOCK_CORE = "import sys; sys.modules['mlc.runtime._core'] = None; "  # as if it were never built


def test_import_without_extension_says_how_to_build():
    proc = _python(BLOCK_CORE + "import mlc.runtime")
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr
    assert "pip install -e ." in proc.stderr and "python setup.py build_ext --inplace" in proc.stderr


def test_pure_python_fallback_only_when_asked():
    code = BLOCK_CORE + "import mlc.runtime.batcher as b; print(b.core.__name__)"
    assert _python(code, MLC_PURE_PYTHON="1").stdout.strip() == "mlc.runtime._pycore"
    assert _python(code).returncode != 0
    assert _python("import mlc.runtime.batcher as b; print(b.core.__name__)").stdout.strip() == "mlc.runtime._core"
