"""Pinned CPU numerics, for work whose bytes must be the same on another machine.

The study's shared stages (MLM head, code-switched training sets) rebuilt on another CPU type
gave other bytes: the last bit of a matmul moves a switch decision that lies near the threshold.
Pinning each kernel choice that depends on the CPU removes the known sources: ATen's vectorised
kernels and oneDNN at AVX2, MKL's conditional-numerical-reproducibility branch AVX2, and a fixed
thread count (work is split by thread). These are read when torch starts, so a pinned command
re-executes itself with them set (``exec_pinned``).

``probe`` fingerprints the result: a fixed fp32 forward and backward pass of a small BERT with
the stages' shapes and operations. Two machines whose probes differ will not rebuild the same
outputs; equal probes are necessary, not sufficient (the rebuilt outputs' digests decide).
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from pathlib import Path
from typing import Any, NoReturn

THREADS = 2
PINS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
        "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}


def is_pinned(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return all(env.get(key) == value for key, value in PINS.items())


def exec_pinned(argv: list[str]) -> NoReturn:
    """Replace this process by ``python -m salt ARGV`` with the pins in its environment."""
    os.execvpe(sys.executable, [sys.executable, "-m", "salt", *argv], {**os.environ, **PINS})


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor as /proc/cpuinfo names it, with family and model (two CPU generations
    may share one marketing name), else what ``platform`` knows."""
    fields: dict[str, str] = {}
    try:
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition(":")
            if not sep:
                if fields:
                    break  # the first processor is enough
                continue
            fields.setdefault(key.strip(), " ".join(value.split()))
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def probe() -> str:
    """sha256 (16 hex) of the logits and every gradient of a fixed fp32 forward and backward pass:
    a 2-layer BERT with e5-small's widths (hidden 384, 12 heads, FFN 1536), eager attention,
    8 sequences of 64 ids, all from seed 0."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = BertConfig(vocab_size=4096, hidden_size=384, num_hidden_layers=2,
                            num_attention_heads=12, intermediate_size=1536,
                            max_position_embeddings=64, hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0, attn_implementation="eager")
        model = BertForMaskedLM(config).float()
        ids = torch.randint(0, config.vocab_size, (8, 64))
    out = model(input_ids=ids, labels=ids)  # logits [8, 64, 4096]
    out.loss.backward()
    digest = hashlib.sha256(out.logits.detach().numpy().tobytes())
    for _, param in sorted(model.named_parameters()):
        if param.grad is not None:
            digest.update(param.grad.numpy().tobytes())
    return digest.hexdigest()[:16]


def state() -> dict[str, Any]:
    """What decides this process's CPU numerics, and their probe (recorded per study run)."""
    import torch

    return {"cpu": cpu_model(), "capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(),
            "env": {key: os.environ.get(key) for key in PINS}, "probe": probe()}
