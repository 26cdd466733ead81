"""Online embedding mixup (the seed's claims C6-C8).

For a token-aligned pair (source s, code-switched t) the input embedding at position i is
``h_i = r * h_si + (1 - r) * h_ti`` with ``r = {r_j}``, ``r_j in [0, 1]``, one entry per hidden
dimension j, drawn afresh at every training step for every instance. Labels are unchanged and
nothing is mixed at evaluation time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MixupConfig:
    """Distribution and shape of r.

    distribution: "uniform" (r_j ~ U[0, 1], the default) or "beta" (r_j ~ Beta(alpha, beta)).
    per_position: False -> r has shape (B, 1, H), one vector per instance shared over positions
        (the seed's wording); True -> (B, T, H), a vector per position.
    """

    distribution: str = "uniform"
    alpha: float = 1.0
    beta: float = 1.0
    per_position: bool = False

    def __post_init__(self) -> None:
        if self.distribution not in ("uniform", "beta"):
            raise ValueError(f"mixup.distribution: unknown {self.distribution!r}; use uniform|beta")
        if self.distribution == "beta" and (self.alpha <= 0 or self.beta <= 0):
            raise ValueError("mixup.alpha and mixup.beta must be positive")


def sample_r(batch: int, seq_len: int, hidden: int, config: MixupConfig,
             generator: torch.Generator) -> torch.Tensor:
    """Draw r: (B, 1, H), or (B, T, H) when per_position; every entry in [0, 1]."""
    shape = (batch, seq_len if config.per_position else 1, hidden)
    if config.distribution == "uniform":
        return torch.rand(shape, generator=generator)
    # Beta via two Gammas, so the draw follows ``generator`` (torch's Beta takes no generator).
    a = torch._standard_gamma(torch.full(shape, config.alpha), generator=generator)
    b = torch._standard_gamma(torch.full(shape, config.beta), generator=generator)
    return a / (a + b)


def mix_embeddings(h_s: torch.Tensor, h_t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """h = r * h_s + (1 - r) * h_t; h_s, h_t: (B, T, H); r broadcasts from (B, 1|T, H)."""
    if h_s.shape != h_t.shape:
        raise ValueError(f"source and code-switched embeddings differ in shape: "
                         f"{tuple(h_s.shape)} vs {tuple(h_t.shape)} (pairs must be token-aligned)")
    r = r.to(dtype=h_s.dtype, device=h_s.device)
    return r * h_s + (1.0 - r) * h_t


def mixed_input_embeddings(embedding: torch.nn.Embedding, src_ids: torch.Tensor,
                           cs_ids: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Look up word embeddings of both sequences (B, T) and mix them: (B, T, H)."""
    if src_ids.shape != cs_ids.shape:
        raise ValueError(f"src_ids {tuple(src_ids.shape)} and cs_ids {tuple(cs_ids.shape)} "
                         "must have the same shape")
    return mix_embeddings(embedding(src_ids), embedding(cs_ids), r)


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A generator for one training step: fresh draws each step, identical after a resume."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step * 7919 + stream) % (2**63 - 1))
    return g
