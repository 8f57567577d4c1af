# Type stub for the compiled extension built from csrc/_core.pyx.
from collections.abc import Sequence

import numpy as np

def pack_rows(arrays: Sequence[np.ndarray], out: np.ndarray | None = None) -> np.ndarray: ...
def scatter_rows(buffer: np.ndarray, counts: Sequence[int]) -> list[np.ndarray]: ...
