"""``code_switch``: the fast path over chunks, appended to a resumable JSONL file with a sidecar
that records what the output depends on."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from salt.codeswitch.assemble import SwitchContext, assemble, build_context
from salt.codeswitch.config import (
    INPUT,
    RECORD_FORMAT,
    CodeSwitchConfig,
    CodeSwitchError,
    StalePartialOutput,
)
from salt.codeswitch.fast import fast_predictions
from salt.codeswitch.records import parse_line, read_jsonl
from salt.codeswitch.scorer import MaskedLMScorer
from salt.distributed import process_state
from salt.encoding import Encoded
from salt.mlm.config import REPORT_FILE as HEAD_REPORT_FILE
from salt.runtime import Runtime, decide
from salt.vocab import LanguageVocabs


def _inputs_digest(encoded: Sequence[Encoded]) -> str:
    h = hashlib.sha256()
    for e in encoded:
        h.update(json.dumps([e.uid, list(e.input_ids), e.token_type_ids, e.label]).encode())
    return h.hexdigest()[:16]


def _model_fingerprint(model: PreTrainedModel) -> str:
    """A digest of the weights that decide the substitutions (the output head), so a partial
    file from another model is refused; never the model's path (no machine paths in outputs)."""
    h = hashlib.sha256()
    head = model.get_output_embeddings()
    tensors = list(head.parameters()) if head is not None else list(model.parameters())[-2:]
    for t in tensors:
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return f"{type(model).__name__}:{h.hexdigest()[:16]}"


def _append(out: Path, recs: Sequence[dict[str, Any]]) -> None:
    """Append one chunk's records durably (a crash leaves at most a torn last line)."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
    with open(out, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _meta(ctx: SwitchContext, vocabs: LanguageVocabs, model: PreTrainedModel,
          runtime: Runtime) -> dict[str, Any]:
    """What the output depends on; a resumed run must match it (batch_size excluded). The input
    mode is also a top-level key, checked before "config" so a refusal names it."""
    cfg = asdict(ctx.cfg)
    cfg.pop("batch_size")
    cfg["languages"] = list(cfg["languages"])
    return {
        "format": RECORD_FORMAT,
        "input": ctx.cfg.input,
        "config": cfg,
        "vocab_rule": asdict(vocabs.rule),
        "vocab_digests": {lang: vocabs.digest(lang) for lang in ctx.lang_ids},
        "model": _model_fingerprint(model),
        "precision": runtime.precision,
        "inputs": {"n": len(ctx.encoded), "digest": _inputs_digest(ctx.encoded)},
    }


def meta_path(out_path: str | Path) -> Path:
    """The sidecar that records the configuration behind a records file."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".meta.json")


def _resume(out: Path, ctx: SwitchContext, meta: dict[str, Any]) -> set[str]:
    """Check the sidecar, repair a torn tail, return uids whose copies are all written."""
    side = meta_path(out)
    if not out.exists():
        side.write_text(json.dumps(meta, indent=1, ensure_ascii=False))
        return set()
    if not side.is_file():
        raise CodeSwitchError(f"{out}: exists but its sidecar {side.name} does not; "
                              "cannot tell what produced it (delete it or choose another path)")
    try:
        old = json.loads(side.read_text())
    except json.JSONDecodeError as err:
        raise CodeSwitchError(f"{side}: not valid JSON ({err})") from None
    if isinstance(old, dict):  # sidecars from before the input mode were all masked
        old.setdefault("input", "masked")
        if isinstance(old.get("config"), dict):
            old["config"].setdefault("input", "masked")
    for key in meta:
        if old.get(key) != meta[key]:
            raise StalePartialOutput(f"{out}: written with a different {key!r} "
                                  f"({old.get(key)!r} vs now {meta[key]!r}); "
                                  "use another out_path or delete the file")
    raw = out.read_bytes()
    good_end = raw.rfind(b"\n") + 1  # a line without its newline is a torn write
    starts: dict[str, int] = {}
    count: Counter[str] = Counter()
    expect = {e.uid: len(ctx.plans[i]) for i, e in enumerate(ctx.encoded)}
    pos = 0
    for lineno, line in enumerate(raw[:good_end].split(b"\n")[:-1], start=1):
        rec = parse_line(line.decode("utf-8", errors="strict"), out, lineno)
        uid = rec["uid"]
        if uid not in expect:
            raise CodeSwitchError(f"{out}:{lineno}: uid {uid!r} is not in the input")
        starts.setdefault(uid, pos)
        count[uid] += 1
        pos += len(line) + 1
    incomplete = [u for u in count if count[u] < expect[u]]
    cut = min((starts[u] for u in incomplete), default=good_end)
    if cut < len(raw):
        with open(out, "r+b") as f:
            f.truncate(cut)
    return {u for u in count if count[u] >= expect[u] and starts[u] < cut}


def input_mode_for(model_dir: str | Path) -> str:
    """The input mode a model folder's MLM head expects: the ``"input"`` of its
    ``mlm_head.json`` ("masked" when the file or the key is absent)."""
    path = Path(model_dir) / HEAD_REPORT_FILE
    if not path.is_file():
        return "masked"
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CodeSwitchError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(report, dict):
        raise CodeSwitchError(f"{path}: expected a JSON object, got {type(report).__name__}")
    mode = report.get("input", "masked")
    if mode not in INPUT:
        raise CodeSwitchError(f"{path}: \"input\" is {mode!r}; expected one of {INPUT}")
    return mode


def part_path(out: Path, rank: int, processes: int) -> Path:
    """The file process ``rank`` of ``processes`` appends its share to (merged into ``out``)."""
    return out.with_name(f"{out.stem}.part{rank}of{processes}{out.suffix}")


def _merge(out: Path, parts: Sequence[Path], meta: dict[str, Any]) -> None:
    """Concatenate the processes' files (contiguous shares, in process order = input order)
    into ``out`` with its sidecar, then remove them."""
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        for part in parts:
            f.write(part.read_bytes())
    meta_path(out).write_text(json.dumps(meta, indent=1, ensure_ascii=False))
    tmp.replace(out)
    for part in parts:
        part.unlink()
        meta_path(part).unlink(missing_ok=True)


def code_switch(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                encoded: Sequence[Encoded], vocabs: LanguageVocabs,
                config: CodeSwitchConfig | None = None, *, out_path: str | Path | None = None,
                chunk_size: int = 256, progress: bool = True,
                scorer: MaskedLMScorer | None = None,
                on_chunk: Callable[[int, int], None] | None = None,
                return_records: bool = True,
                runtime: Runtime | None = None) -> list[dict[str, Any]]:
    """Code-switch ``encoded`` (fast path; same substitutions as the reference when
    ``multi_mask_stride`` is None, up to fp32 rounding).

    Returns one record per (example, copy), in input order:
    ``{"uid", "copy", "lang", "input_ids" (source), "cs_input_ids" (same length),
    "token_type_ids" (or None), "label", "candidates" (positions that could change),
    "substitutions": [[position, original_id, new_id, probability, lang or "en-syn"], ...]}``.

    With ``out_path``, records are appended chunk by chunk (``chunk_size`` examples) next to a
    ``.meta.json`` sidecar holding the configuration; a restarted call skips uids already
    written (a torn last chunk is cut off and redone) and returns the whole file's records.
    ``on_chunk(chunk_index, examples_done)`` runs after each chunk (e.g. to stop early).
    ``return_records=False`` (with ``out_path``) returns [] instead of reading the file back,
    for training sets too large to hold; stream them with ``iter_jsonl``. ``runtime`` (default
    :func:`salt.runtime.decide`) places the model; the encoder runs under its autocast. A
    partial file written with other inputs or settings raises :class:`StalePartialOutput`.

    Several processes (``accelerate launch`` / torchrun; ``out_path`` required): the chunks are
    split into contiguous shares, one per process on its own device; each process appends to
    its own resumable part file (``part_path``), and the main process merges them into
    ``out_path`` in input order. A record depends only on its example and the settings (the
    copy's language comes from the example's index in ``encoded``) and a chunk holds the same
    examples whatever the process count, so the merged file equals a one-process run's.
    """
    ctx = build_context(model, tokenizer, encoded, vocabs, config)
    runtime = runtime or decide()
    runtime.place(model)
    scorer = scorer or MaskedLMScorer(model)
    state = process_state()
    processes = state.num_processes
    chunks = [list(range(s, min(s + chunk_size, len(encoded))))
              for s in range(0, len(encoded), chunk_size)]
    out = Path(out_path) if out_path is not None else None
    mine = list(range(len(chunks)))
    if processes > 1:
        if out is None:
            raise CodeSwitchError("code-switching with several processes needs out_path")
        with state.split_between_processes(mine) as share:
            mine = list(share)
    done: set[str] = set()
    part = out
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        meta = _meta(ctx, vocabs, model, runtime)
        if processes > 1:
            if out.exists():  # merged by an earlier run: complete, or stale (never partial)
                if len(_resume(out, ctx, meta)) != len(encoded):
                    raise StalePartialOutput(f"{out}: incomplete; delete it to code-switch "
                                             "with several processes")
                return read_jsonl(out) if return_records else []
            part = part_path(out, state.process_index, processes)
        done = _resume(part, ctx, meta)
    was = model.training
    model.eval()
    torch.manual_seed(ctx.cfg.seed)
    records: list[dict[str, Any]] = []
    total = sum(len(chunks[k]) for k in mine)
    initial = sum(1 for k in mine for i in chunks[k] if encoded[i].uid in done)
    bar = tqdm(total=total, initial=initial, disable=not progress or not state.is_main_process,
               desc="code-switch", unit="ex")
    try:
        for k in mine:
            idx = [i for i in chunks[k] if encoded[i].uid not in done]
            if not idx:
                continue
            with torch.inference_mode():
                preds = fast_predictions(scorer, ctx, idx, runtime)
            recs = assemble(ctx, idx, preds)
            if part is not None:
                _append(part, recs)
            else:
                records.extend(recs)
            bar.update(len(idx))
            if on_chunk is not None:
                on_chunk(k, bar.n)
    finally:
        bar.close()
        model.train(was)
    if out is None:
        return records
    if processes > 1:
        state.wait_for_everyone()
        if state.is_main_process:
            _merge(out, [part_path(out, r, processes) for r in range(processes)], meta)
        state.wait_for_everyone()
    return read_jsonl(out) if return_records else []
