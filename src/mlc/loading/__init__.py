"""Safe model loading: detect a file's format, load it without running untrusted code.

    from mlc.loading import load_model
    loaded = load_model("model.pkl")          # refuses pickles that import unsafe globals
    loaded.model, loaded.framework, loaded.signature

Pickles are programs: `scan_pickle` lists every global one would import (without
running it); `load_model` refuses any outside the allowlist (`_allowlist.py`)
unless `trust=True`, then unpickles with an Unpickler held to the same list.
"""

from mlc.loading._allowlist import offenders_of
from mlc.loading._detect import detect_format
from mlc.loading._load import load_model
from mlc.loading._pickle_scan import scan_pickle
from mlc.loading._signature import infer_signature
from mlc.loading.model import FORMATS, FRAMEWORKS, LoadedModel

__all__ = [
    "FORMATS",
    "FRAMEWORKS",
    "LoadedModel",
    "detect_format",
    "infer_signature",
    "load_model",
    "offenders_of",
    "scan_pickle",
]
