"""Static scan of a pickle: every global it would import, without running any of it.

`pickletools.genops` gives the opcodes; a small symbolic machine replays them on
inert values (strings, numbers, containers, and `_Sym` stand-ins for the objects
a real unpickler would build). That is what resolves STACK_GLOBAL, whose module
and name are whatever strings sit on the stack, wherever they came from (pushed,
or fetched back from the memo).

joblib files are pickles with raw array bytes spliced in: after the BUILD of each
`joblib.numpy_pickle.NumpyArrayWrapper`, joblib's unpickler reads the array's
bytes (or, for object arrays, a nested pickle) straight from the stream. The
scanner does the same: it works out from the wrapper's symbolic state how many
bytes follow, skips them (or scans the nested pickle), and records where each
payload started and ended. The restricted unpickler in `_pickle_load` checks it
meets exactly these payloads at exactly these offsets, so the bytes it executes
are the bytes scanned here.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickletools
from dataclasses import dataclass, field
from typing import IO, Any

from mlc.errors import ModelFormatError

UNRESOLVABLE_STACK_GLOBAL = "<unresolvable STACK_GLOBAL>"
NUMPY_ARRAY_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
_WRAPPER_PARAMS = ("subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes")
_WRAPPER_DEFAULTS = {"allow_mmap": False, "numpy_array_alignment_bytes": 16}
_MAX_NESTING = 8


class PickleScanError(Exception):
    """The stream is not a well-formed pickle (or joblib pickle) we can follow.

    crafted: no library writes such a stream; it is refused as unsafe, not as corrupt.
    """

    def __init__(self, reason: str, globals_: list[str], *, crafted: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.globals = globals_
        self.crafted = crafted


@dataclass
class ScanResult:
    globals: list[str]  # "module.name", first-seen order, no duplicates
    # BUILD ordinal (1-based, top-level stream) -> (payload start, payload end) offsets.
    payloads: dict[int, tuple[int, int]] = field(default_factory=dict)
    protocol: int = 0
    # The BUILDs whose payload is a nested pickle (an object array), not raw bytes.
    object_payloads: set[int] = field(default_factory=set)


class _Sym:
    """An object the pickle would build; never a real one."""

    __slots__ = ("args", "attrs", "func", "kind", "name", "state")

    def __init__(self, kind: str, *, name: str | None = None, func: Any = None, args: Any = None) -> None:
        self.kind = kind  # "global", "call", "new", "opaque"
        self.name = name  # for "global"; for "new": the class's global name, if known
        self.func = func
        self.args = args
        self.state: Any = None  # the last BUILD state applied to it
        self.attrs: dict[str, Any] | None = None  # for "new" of a known class: instance __dict__


class _Dict:
    """A pickled dict, as ordered pairs (keys may be unhashable stand-ins)."""

    __slots__ = ("index", "pairs")

    def __init__(self) -> None:
        self.pairs: list[tuple[Any, Any]] = []
        self.index: dict[tuple[type, Any], int] = {}  # plain keys -> position in pairs

    def set(self, key: Any, value: Any) -> None:
        if isinstance(key, (str, int, float, bytes)):
            slot = self.index.setdefault((type(key), key), len(self.pairs))
            if slot < len(self.pairs):
                self.pairs[slot] = (key, value)
                return
        self.pairs.append((key, value))

    def str_items(self) -> dict[str, Any] | None:
        """The dict when every key is a str, else None."""
        if not all(isinstance(k, str) for k, _ in self.pairs):
            return None
        return dict(self.pairs)


def _py3_name(module: str, name: str) -> tuple[str, str]:
    """Python 2 names (protocols 0-2) as pickle's fix_imports maps them."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _global_name(sym: Any) -> str | None:
    return sym.name if isinstance(sym, _Sym) and sym.kind == "global" else None


class _Scanner:
    def __init__(self, stream: IO[bytes], *, joblib: bool, depth: int = 0) -> None:
        self.stream = stream
        self.joblib = joblib
        self.depth = depth
        self.globals: dict[str, None] = {}
        self.payloads: dict[int, tuple[int, int]] = {}
        self.object_payloads: set[int] = set()
        self.proto = 0
        self.builds = 0
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}

    # -- helpers -------------------------------------------------------------
    def fail(self, reason: str, *, crafted: bool = False) -> PickleScanError:
        return PickleScanError(reason, list(self.globals), crafted=crafted)

    def record(self, qualified: str) -> None:
        self.globals.setdefault(qualified, None)

    def push(self, value: Any) -> None:
        self.stack.append(value)

    def pop(self) -> Any:
        if not self.stack:
            raise self.fail("stack underflow (malformed pickle)")
        return self.stack.pop()

    def top(self) -> Any:
        if not self.stack:
            raise self.fail("stack underflow (malformed pickle)")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.metastack:
            raise self.fail("MARK missing (malformed pickle)")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def make_global(self, module: str, name: str) -> _Sym:
        if self.proto < 3:
            # What pickle.Unpickler(fix_imports=True) does with Python 2 names.
            module, name = _py3_name(module, name)
        qualified = f"{module}.{name}"
        self.record(qualified)
        return _Sym("global", name=qualified)

    def new_instance(self, cls: Any, args: Any, *, init: bool) -> _Sym:
        sym = _Sym("new", name=_global_name(cls), func=cls, args=args)
        if sym.name == "numpy.dtype":
            # numpy pickles a dtype as a call of numpy.dtype, whose state is judged at its BUILD;
            # one made through copyreg or NEWOBJ would dodge that judgement.
            raise self.fail("a numpy dtype built other than by calling numpy.dtype", crafted=True)
        if sym.name == NUMPY_ARRAY_WRAPPER:
            attrs: dict[str, Any] = {}
            if init:
                if not isinstance(args, tuple) or len(args) > len(_WRAPPER_PARAMS):
                    raise self.fail("NumpyArrayWrapper built with unexpected arguments")
                attrs.update(_WRAPPER_DEFAULTS)
                attrs.update(zip(_WRAPPER_PARAMS, args, strict=False))
            sym.attrs = attrs
        return sym

    def reduce(self, func: Any, args: Any) -> Any:
        name = _global_name(func)
        if name == NUMPY_ARRAY_WRAPPER:
            return self.new_instance(func, args, init=True)
        if isinstance(args, tuple) and args:
            if name == "copyreg._reconstructor" and len(args) == 3:
                return self.new_instance(args[0], (), init=False)
            if name == "copyreg.__newobj__":
                return self.new_instance(args[0], args[1:], init=False)
            if name == "copyreg.__newobj_ex__" and len(args) == 3:
                return self.new_instance(args[0], args[1], init=False)
        return _Sym("call", func=func, args=args)

    # -- BUILD and joblib payloads --------------------------------------------
    def build(self, state: Any) -> None:
        self.builds += 1
        inst = self.top()
        if not isinstance(inst, _Sym) or inst is _BYTES:
            return
        inst.state = state
        if inst.kind == "call" and _global_name(inst.func) == "numpy.dtype":
            self.dtype_has_object(inst)  # refuses a state whose object flag contradicts its fields
        if inst.attrs is None:
            return
        # object.__setstate__-less BUILD: update __dict__, then setattr the slot state.
        slotstate = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slotstate = state
        for part in (state, slotstate):
            if part is None or part == ():
                continue
            items = part.str_items() if isinstance(part, _Dict) else None
            if items is None:
                raise self.fail("NumpyArrayWrapper state is not a dict of attributes")
            inst.attrs.update(items)
        if self.joblib:
            start = self.stream.tell()
            self.skip_array(inst.attrs)
            self.payloads[self.builds] = (start, self.stream.tell())

    def skip_array(self, attrs: dict[str, Any]) -> None:
        import numpy as np

        shape = attrs.get("shape")
        if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
            raise self.fail("joblib array wrapper with a shape that is not a tuple of sizes")
        count = 1
        for d in shape:
            count *= d
        dtype = attrs.get("dtype")
        if not (isinstance(dtype, _Sym) and _global_name(dtype.func) == "numpy.dtype"):
            raise self.fail("joblib array wrapper whose dtype is not a numpy.dtype")
        has_object = self.dtype_has_object(dtype)
        itemsize = np.dtype(dtype.args[0]).itemsize
        st = dtype.state
        if isinstance(st, tuple) and len(st) >= 6 and type(st[5]) is int and st[5] > 0:
            itemsize = st[5]  # elsize: a structured dtype's size

        if has_object:
            self.object_payloads.add(self.builds)
            # A nested, ordinary pickle follows (read by a plain Unpickler).
            if self.depth >= _MAX_NESTING:
                raise self.fail("joblib object arrays nested too deeply")
            inner = _Scanner(self.stream, joblib=False, depth=self.depth + 1)
            try:
                inner.run()
            finally:
                for g in inner.globals:
                    self.record(g)
            return
        alignment = attrs.get("numpy_array_alignment_bytes")
        if alignment is not None:
            pad = self.stream.read(1)
            if len(pad) != 1:
                raise self.fail("joblib array data truncated")
            self.skip(pad[0])
        self.skip(count * itemsize)

    def dtype_has_object(self, dtype: _Sym, depth: int = 0) -> bool:
        """Whether a pickled numpy.dtype holds Python objects, judged from all numpy would use.

        numpy trusts the object flag of a state of version 3 or later: a structured dtype whose
        fields hold objects but whose flags say none makes an array of raw bytes read as object
        pointers. From an older state numpy works the flag out from the fields, so a scan that
        read only the base type would skip, as raw bytes, a nested pickle that joblib runs. So
        the answer comes from the base type, the fields and the subarray, and a state whose flag
        contradicts them, or that cannot be judged, is refused.
        """
        import numpy as np

        if depth > _MAX_NESTING:
            raise self.fail("numpy dtype nested too deeply")
        args = dtype.args
        if not (isinstance(args, tuple) and args and isinstance(args[0], str)):
            raise self.fail("numpy dtype with an unreadable type")
        try:
            has_object = bool(np.dtype(args[0]).hasobject)
        except (TypeError, ValueError) as exc:
            raise self.fail(f"numpy dtype with an invalid type {args[0]!r}") from exc
        st = dtype.state
        if st is None:
            return has_object
        if not isinstance(st, tuple) or not 7 <= len(st) <= 9:
            raise self.fail("numpy dtype with a state mlc cannot judge")
        subarray, fields = st[2], st[4]
        if subarray is not None:
            if not (isinstance(subarray, tuple) and len(subarray) == 2 and self._is_dtype(subarray[0])):
                raise self.fail("numpy dtype with an unreadable subarray")
            has_object |= self.dtype_has_object(subarray[0], depth + 1)
        if fields is not None:
            items = fields.str_items() if isinstance(fields, _Dict) else None
            if items is None:
                raise self.fail("numpy dtype with unreadable fields")
            for value in items.values():
                if not (isinstance(value, tuple) and 2 <= len(value) <= 3 and self._is_dtype(value[0])):
                    raise self.fail("numpy dtype with an unreadable field")
                has_object |= self.dtype_has_object(value[0], depth + 1)
        if len(st) >= 8:
            flags = st[7]
            if type(flags) is not int or bool(flags & 1) != has_object:  # NPY_ITEM_HASOBJECT
                raise self.fail("a numpy dtype whose object flag contradicts its fields", crafted=True)
        return has_object

    @staticmethod
    def _is_dtype(value: Any) -> bool:
        return isinstance(value, _Sym) and value.kind == "call" and _global_name(value.func) == "numpy.dtype"

    def skip(self, n: int) -> None:
        remaining = n
        while remaining > 0:
            chunk = self.stream.read(min(remaining, 1 << 20))
            if not chunk:
                raise self.fail("joblib array data truncated")
            remaining -= len(chunk)

    # -- the machine ------------------------------------------------------------
    def run(self) -> None:
        try:
            ops = pickletools.genops(self.stream)
            for op, arg, _pos in ops:
                if self.step(op.name, arg):
                    return
        except PickleScanError:
            raise
        except (ValueError, EOFError, UnicodeDecodeError, KeyError, IndexError, TypeError) as exc:
            raise self.fail(str(exc) or type(exc).__name__) from exc
        raise self.fail("pickle exhausted before seeing STOP")

    def step(self, name: str, arg: Any) -> bool:
        if name == "STOP":
            return True
        if name == "PROTO":
            self.proto = arg
        elif name == "FRAME":
            pass
        elif name == "MARK":
            self.metastack.append(self.stack)
            self.stack = []
        elif name == "POP":
            if self.stack:
                self.stack.pop()
            else:
                self.pop_mark()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            self.push(self.top())
        elif name in _PUSH_ARG:
            self.push(arg)
        elif name in _PUSH_BYTES:
            self.push(_BYTES)  # never a name or an array shape: drop the data early
        elif name == "NONE":
            self.push(None)
        elif name == "NEWTRUE":
            self.push(True)
        elif name == "NEWFALSE":
            self.push(False)
        elif name in ("NEXT_BUFFER", "PERSID"):
            self.push(_Sym("opaque"))
        elif name == "READONLY_BUFFER":
            self.top()
        elif name == "BINPERSID":
            self.pop()
            self.push(_Sym("opaque"))
        elif name in ("EMPTY_LIST",):
            self.push([])
        elif name == "LIST":
            self.push(self.pop_mark())
        elif name == "APPEND":
            value = self.pop()
            target = self.top()
            if isinstance(target, list):
                target.append(value)
        elif name == "APPENDS":
            items = self.pop_mark()
            target = self.top()
            if isinstance(target, list):
                target.extend(items)
        elif name == "EMPTY_TUPLE":
            self.push(())
        elif name == "TUPLE":
            self.push(tuple(self.pop_mark()))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(self.stack) < n:
                raise self.fail("stack underflow (malformed pickle)")
            popped = tuple(self.stack[-n:])
            del self.stack[-n:]
            self.push(popped)
        elif name == "EMPTY_DICT":
            self.push(_Dict())
        elif name == "DICT":
            items = self.pop_mark()
            d = _Dict()
            for i in range(0, len(items) - 1, 2):
                d.set(items[i], items[i + 1])
            self.push(d)
        elif name == "SETITEM":
            value = self.pop()
            key = self.pop()
            target = self.top()
            if isinstance(target, _Dict):
                target.set(key, value)
        elif name == "SETITEMS":
            items = self.pop_mark()
            target = self.top()
            if isinstance(target, _Dict):
                for i in range(0, len(items) - 1, 2):
                    target.set(items[i], items[i + 1])
        elif name == "EMPTY_SET":
            self.push(_Sym("opaque"))
        elif name == "ADDITEMS":
            self.pop_mark()
            self.top()
        elif name == "FROZENSET":
            self.pop_mark()
            self.push(_Sym("opaque"))
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[arg] = self.top()
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.top()
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise self.fail(f"memo key {arg} missing (malformed pickle)")
            self.push(self.memo[arg])
        elif name == "GLOBAL":
            module, _, gname = arg.partition(" ")
            self.push(self.make_global(module, gname))
        elif name == "STACK_GLOBAL":
            gname = self.pop()
            module = self.pop()
            if isinstance(module, str) and isinstance(gname, str):
                self.push(self.make_global(module, gname))
            else:
                self.record(UNRESOLVABLE_STACK_GLOBAL)
                self.push(_Sym("opaque"))
        elif name == "INST":
            module, _, gname = arg.partition(" ")
            cls = self.make_global(module, gname)
            args = tuple(self.pop_mark())
            self.push(self.new_instance(cls, args, init=bool(args)))
        elif name == "OBJ":
            items = self.pop_mark()
            if not items:
                raise self.fail("OBJ without a class (malformed pickle)")
            args = tuple(items[1:])
            self.push(self.new_instance(items[0], args, init=bool(args)))
        elif name == "NEWOBJ":
            args = self.pop()
            cls = self.pop()
            self.push(self.new_instance(cls, args, init=False))
        elif name == "NEWOBJ_EX":
            self.pop()  # kwargs
            args = self.pop()
            cls = self.pop()
            self.push(self.new_instance(cls, args, init=False))
        elif name in ("EXT1", "EXT2", "EXT4"):
            # A global named by number through copyreg's extension registry.
            self.record(f"<copyreg extension code {arg}>")
            self.push(_Sym("opaque"))
        elif name == "REDUCE":
            args = self.pop()
            func = self.pop()
            self.push(self.reduce(func, args))
        elif name == "BUILD":
            self.build(self.pop())
        else:
            raise self.fail(f"unknown opcode {name}")
        return False


_PUSH_ARG = frozenset(
    [
        "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
        "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "BINUNICODE8",
        "SHORT_BINUNICODE",
    ]
)  # fmt: skip
_PUSH_BYTES = frozenset(["BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"])
_BYTES = _Sym("opaque")


def scan_stream(stream: IO[bytes], *, joblib: bool = True) -> ScanResult:
    """Scan one pickle from `stream` (left just after its STOP); see the module docstring.

    With `joblib=True` (what our loader uses for every pickle) NumpyArrayWrapper
    payloads are followed as joblib's unpickler would.
    """
    scanner = _Scanner(stream, joblib=joblib)
    scanner.run()
    return ScanResult(list(scanner.globals), scanner.payloads, scanner.proto, scanner.object_payloads)


def scan_pickle(data: bytes) -> list[str]:
    """Every global the pickle (or uncompressed joblib pickle) in `data` would import.

    Names are "module.name" in first-seen order; a STACK_GLOBAL whose operands are
    not plain strings appears as "<unresolvable STACK_GLOBAL>". Nothing is imported
    and nothing of the pickle runs. A malformed stream raises ModelFormatError.
    """
    try:
        return scan_stream(io.BytesIO(data)).globals
    except PickleScanError as exc:
        raise ModelFormatError(f"not a valid pickle stream: {exc.reason}") from None
