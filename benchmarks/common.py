"""What every benchmark section shares: sizes, targets, figures (median, min, max, ratio) and
the setup (model folder, tokenizer, precision)."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

TASK = "xnli"
NUM_LABELS = 3
PIPELINE_TARGET_S = 1800.0
TARGETS = {  # figure name -> target (checked against the ratio unless "of" says value)
    "codeswitch_fast": {"op": ">=", "value": 10.0, "of": "ratio"},
    "train_ours": {"op": ">=", "value": 1.0, "of": "ratio"},
    "train_salt_step": {"op": "<=", "value": 1.10, "of": "ratio"},
    "eval_ours": {"op": ">=", "value": 1.0, "of": "ratio"},
    "pipeline_total": {"op": "<=", "value": PIPELINE_TARGET_S, "of": "value"},
}
SECTIONS = ("matmul", "codeswitch", "train", "eval", "pipeline")
# Code-switching threshold for the benchmark: an untrained (random) MLM head rarely clears the
# pipeline's 0.3, and a comparison of two empty outputs proves nothing. With 0 every candidate
# proposes a substitute (max_ratio still caps them); the forward passes, which dominate the
# cost, are the same at any threshold.
CS_THRESHOLD = 0.0


@dataclass(frozen=True)
class Size:
    """Workload of one ``--size``; ``None`` languages = all of XNLI's."""

    cs_sentences: int  # English training pairs code-switched by both paths
    cs_languages: int | None  # target languages (round robin over the sentences)
    vocab_rows: int | None  # dev rows per language for the target vocabularies
    train_steps: int  # timed optimiser steps per run (items = steps x batch size, one epoch)
    batch_size: int
    eval_per_language: int  # XNLI test pairs per language (row-parallel subset)
    eval_languages: int | None
    eval_batch_size: int
    max_length: int
    matmul_n: int  # square matmul side for the peak FLOP/s
    matmul_timings: int  # timings per dtype (median taken)


SIZES = {
    "tiny": Size(cs_sentences=4, cs_languages=2, vocab_rows=200, train_steps=3, batch_size=8,
                 eval_per_language=16, eval_languages=3, eval_batch_size=16, max_length=64,
                 matmul_n=256, matmul_timings=5),
    # the proxy profile's lengths, batch sizes and test size (params.yaml)
    "full": Size(cs_sentences=24, cs_languages=None, vocab_rows=None, train_steps=24,
                 batch_size=16, eval_per_language=300, eval_languages=None, eval_batch_size=64,
                 max_length=128, matmul_n=1024, matmul_timings=9),
}


_T0 = time.perf_counter()
LOADS: list[float] = []  # 1-minute load average at every progress line


def log(msg: str) -> None:
    """Progress line on stderr; also samples the load average (a busy machine skews figures)."""
    LOADS.append(os.getloadavg()[0])
    print(f"[bench {time.perf_counter() - _T0:6.0f}s] {msg}", file=sys.stderr, flush=True)


@dataclass
class Figure:
    """One reported number: median of its repeats, min, max; optionally a ratio to ``vs``."""

    name: str
    value: float | None
    unit: str
    min: float | None = None
    max: float | None = None
    n: int = 0
    ratio: float | None = None
    ratio_min: float | None = None
    ratio_max: float | None = None
    vs: str | None = None
    target: dict | None = None
    meets_target: bool | None = None
    note: str = ""
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def median3(values: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


def check_target(target: dict | None, value: float | None, ratio: float | None) -> bool | None:
    """True/False when the target can be judged, None when there is no target or no number."""
    if target is None:
        return None
    x = ratio if target["of"] == "ratio" else value
    if x is None:
        return None
    return x >= target["value"] if target["op"] == ">=" else x <= target["value"]


def figure(name: str, values: Sequence[float], unit: str, ratios: Sequence[float] = (),
           vs: str | None = None, note: str = "", extra_ok: bool = True, **details) -> Figure:
    """Summarise repeats (and paired ratios) into a Figure and judge its target, if any.

    ``extra_ok`` False forces ``meets_target`` False (a condition beside the number failed)."""
    value, lo, hi = median3(values)
    ratio, rlo, rhi = median3(ratios)
    target = TARGETS.get(name)
    meets = check_target(target, value, ratio)
    if meets is not None and not extra_ok:
        meets = False
    return Figure(name, value, unit, lo, hi, len([v for v in values if v is not None]), ratio,
                  rlo, rhi, vs, target, meets, note, details)


def skipped(name: str, unit: str, why: str) -> Figure:
    return Figure(name, None, unit, target=TARGETS.get(name), note=why)


@dataclass
class Setup:
    """What every section shares: model folder, tokenizer, precision, sizes, scratch space."""

    spec: str
    model_dir: Path
    tokenizer: Any
    bf16: bool
    size: Size
    repeats: int
    tmp: Path
    mlm_dir: Path | None = None

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)


def resolve_model(spec: str, tmp: Path, model_dir: Path | None) -> Path:
    """A save_pretrained folder for ``spec``: tiny is built from XNLI dev text in ``tmp``."""
    from salt.data import load_local
    from salt.models import build_tiny, resolve

    if spec == "tiny":
        texts = [t for lang in ("en", "fr", "de", "es")
                 for ex in load_local(TASK, "dev", lang)[:150] for t in (ex.text_a, ex.text_b)]
        return build_tiny(tmp / "tiny", texts, vocab_size=3000, hidden=64, layers=2, heads=2)
    if spec == "e5-small":
        return resolve(spec, out_dir=model_dir)
    return resolve(spec)


def bf16_for(choice: str) -> bool:
    """Whether ``--precision`` (auto | fp32 | bf16) means bf16 here (``salt.runtime`` decides)."""
    from salt.runtime import decide

    return decide(choice, device="cpu").precision == "bf16"


def cpu_autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def train_rows(n: int):
    from salt.data import load_local, stratified_subset

    return stratified_subset(load_local(TASK, "train", "en"), n, 0)
