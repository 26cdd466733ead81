"""Matmul peak, the FLOP model of a BERT forward / training step, and utilisation."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from benchmarks.common import Figure, figure, skipped


def matmul_flops(n: int, dtype: torch.dtype, timings: int) -> list[float]:
    """FLOP/s of ``torch.matmul`` on (n, n) x (n, n), one value per timing (2 n^3 per product)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dtype)
    b = torch.randn(n, n, generator=g).to(dtype)
    for _ in range(2):
        torch.matmul(a, b)
    iters = max(1, int(2e9 // (2 * n**3)))  # ~2 GFLOP per timing
    out = []
    for _ in range(timings):
        t0 = time.perf_counter()
        for _ in range(iters):
            torch.matmul(a, b)
        out.append(2 * n**3 * iters / (time.perf_counter() - t0))
    return out


@dataclass(frozen=True)
class FlopModel:
    """Forward FLOPs of a BERT-style classifier for a sequence of L real tokens:

    ``2 * N_enc * L + 4 * layers * H * L**2 + 2 * N_head``

    where N_enc = encoder-layer parameters (every Linear weight is a multiply-add per token),
    the L**2 term is attention's QK^T and AV products, and N_head = pooler + classifier
    parameters, applied once per sequence. Embedding lookups count zero. Training counts
    3 x forward (forward, gradient w.r.t. activations, w.r.t. weights). Padding is excluded:
    the figures are useful FLOPs, so padding waste shows up as lower utilisation.
    """

    n_encoder: int
    n_head: int
    layers: int
    hidden: int

    @classmethod
    def of(cls, model: torch.nn.Module) -> FlopModel:
        base = model.base_model
        n_enc = sum(p.numel() for p in base.encoder.parameters())
        n_emb = sum(p.numel() for p in base.embeddings.parameters())
        n_all = sum(p.numel() for p in model.parameters())
        return cls(n_enc, n_all - n_enc - n_emb, model.config.num_hidden_layers,
                   model.config.hidden_size)

    def forward(self, lengths: Sequence[int]) -> float:
        return float(sum(2 * self.n_encoder * n + 4 * self.layers * self.hidden * n * n
                         + 2 * self.n_head for n in lengths))

    def train(self, lengths: Sequence[int]) -> float:
        return 3.0 * self.forward(lengths)


def utilisation(flops: FlopModel | None, train_info: dict | None, eval_info: dict | None,
                peak: dict[str, list[float]]) -> list[Figure]:
    """Achieved useful GFLOP/s (see ``FlopModel``) and its ratio to the measured matmul peak."""
    figs = []
    phases = {}
    if flops is not None and train_info is not None:
        work = flops.train(train_info["lengths"])
        phases["train"] = [work / w for w in train_info["loops"]]
        if train_info.get("proxy_loops"):  # the same work, the proxy's speed settings
            phases["train_proxy"] = [work / w for w in train_info["proxy_loops"]]
    if flops is not None and eval_info is not None:
        work = flops.forward(eval_info["lengths"])
        n = len(eval_info["lengths"])
        phases["eval"] = [work * rate / n for rate in eval_info["rates"]]
    for phase, what in (("train", "train() baseline system, its training loop (train.json wall_time_s), "
                                  "3 x forward FLOPs"),
                        ("train_proxy", "train() baseline with the proxy's speed settings: the "
                                        "same work's 3 x forward FLOPs over its loop time"),
                        ("eval", "evaluate_languages, forward FLOPs")):
        for dtype in ("fp32", "bf16"):
            name = f"utilisation_{phase}_vs_{dtype}_matmul"
            if phase not in phases or not peak.get(dtype):
                figs.append(skipped(name, "GFLOP/s", "not measured (section skipped)"))
                continue
            peak_med = statistics.median(peak[dtype])
            achieved = [x / 1e9 for x in phases[phase]]
            figs.append(figure(name, achieved, "GFLOP/s",
                               [a * 1e9 / peak_med for a in achieved], vs=f"matmul_{dtype}",
                               note=what, flop_model=asdict(flops) if flops else None))
    return figs
