"""The static scan names exactly the globals a real unpickler would import."""

from __future__ import annotations

import collections
import io
import pickle
from typing import Any

import joblib
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joblib.numpy_pickle import NumpyUnpickler

from mlc.loading import scan_pickle
from mlc.loading._pickle_scan import _py3_name

# Leaves that pickle through globals (classes, reconstructors, numpy arrays) and plain ones.
_arrays = st.sampled_from(
    [
        np.arange(6, dtype=np.int32).reshape(2, 3),
        np.asfortranarray(np.ones((2, 2))),
        np.array(["a", "bc"]),
        np.array([1, "x", None], dtype=object),
        np.zeros(3, dtype=[("a", "u1"), ("b", "f4")]),
        np.float32(2.5),
        np.array(7),
    ]
)
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.complex_numbers(allow_nan=False, allow_infinity=False, max_magnitude=10),
    _arrays,
    st.builds(slice, st.integers(0, 3), st.integers(4, 9)),
    st.frozensets(st.integers(), max_size=3),
)
_objects = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=3), inner, max_size=4),
        st.builds(collections.OrderedDict, st.dictionaries(st.text(max_size=3), inner, max_size=3)),
        st.sets(st.integers(), max_size=3),
    ),
    max_leaves=12,
)


class _Recording:
    """Mixin: remember every global the unpickler asks for."""

    seen: set[str]

    def find_class(self, module: str, name: str) -> Any:
        self.seen.add(".".join(_py3_name(module, name)) if self.proto < 3 else f"{module}.{name}")
        return super().find_class(module, name)  # type: ignore[misc]


class _PlainRecorder(_Recording, pickle._Unpickler):  # type: ignore[name-defined,misc]
    pass


class _JoblibRecorder(_Recording, NumpyUnpickler):
    pass


def _imported_by_pickle(data: bytes) -> set[str]:
    unpickler = _PlainRecorder(io.BytesIO(data))
    unpickler.seen = set()
    unpickler.load()
    return unpickler.seen


def _imported_by_joblib(data: bytes) -> set[str]:
    unpickler = _JoblibRecorder("", io.BytesIO(data), ensure_native_byte_order=True)
    unpickler.seen = set()
    unpickler.load()
    return unpickler.seen


_settings = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(obj=_objects, protocol=st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_scan_matches_pickle(obj: Any, protocol: int) -> None:
    data = pickle.dumps(obj, protocol=protocol)
    assert set(scan_pickle(data)) == _imported_by_pickle(data)


@_settings
@given(obj=_objects, protocol=st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_scan_matches_joblib(obj: Any, protocol: int) -> None:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer, protocol=protocol)
    data = buffer.getvalue()
    assert set(scan_pickle(data)) == _imported_by_joblib(data)


def test_scan_lists_each_global_once_in_order() -> None:
    data = pickle.dumps([collections.OrderedDict(), np.arange(3), collections.OrderedDict()], protocol=2)
    found = scan_pickle(data)
    assert found[0] == "collections.OrderedDict" and len(found) == len(set(found))
