"""What the masked objective trains and how one step's rows are drawn from the cache.

The training-time head is centring -> the head's ``transform`` -> the tied decoder restricted
to the kept ids (+ a trained kept-id bias); the loss is cross-entropy over all kept ids or, with
``softmax_scope="language"``, over the ids of each row's own language. Step data is a pure
function of (seed, step), so a resumed run sees what an uninterrupted one saw.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from salt.mlm.centring import Centring
from salt.mlm.config import MLMHeadConfig
from salt.mlm.layers import run_layers
from salt.mlm.vocabulary import KeptVocabulary


class HeadObjective(nn.Module):
    """Trainable head (the model's transform + kept-id bias) over frozen kept embeddings."""

    def __init__(self, transform: nn.Module, kept_emb: torch.Tensor, vocab: KeptVocabulary,
                 centring: Centring, cfg: MLMHeadConfig):
        super().__init__()
        self.transform = transform
        self.register_buffer("kept_emb", kept_emb.detach(), persistent=False)  # (K, H)
        freq = (vocab.counts + 1.0) / (vocab.counts.sum() + len(vocab))
        self.bias_kept = nn.Parameter(freq.log().to(kept_emb.device))  # (K,) log-unigram start
        self.lang_kept = [t.to(kept_emb.device) for t in vocab.lang_kept]
        self.lang_local = [t.to(kept_emb.device) for t in vocab.lang_local]
        self.centring = centring
        self.cfg = cfg

    def logits(self, rows: torch.Tensor, lang_idx: torch.Tensor) -> torch.Tensor:
        """Centre, transform, tied decoder over kept ids: rows (M, H) -> logits (M, K)."""
        t = self.transform(self.centring.apply(rows, lang_idx))  # (M, H)
        return t @ self.kept_emb.to(t.dtype).T + self.bias_kept  # (M, K)

    def loss(self, rows: torch.Tensor, targets: torch.Tensor, langs: torch.Tensor
             ) -> torch.Tensor:
        """Mean cross-entropy of rows (M, H) against kept-index targets (M,)."""
        if self.cfg.softmax_scope == "all":
            return F.cross_entropy(self.logits(rows, langs).float(), targets)
        t = self.transform(self.centring.apply(rows, langs))  # (M, H)
        total = t.new_zeros((), dtype=torch.float32)
        for li in langs.unique().tolist():
            sel = langs == li
            cand = self.lang_kept[li]  # (K_l,)
            logits = t[sel] @ self.kept_emb[cand].to(t.dtype).T + self.bias_kept[cand]  # (M_l, K_l)
            total = total + F.cross_entropy(logits.float(), self.lang_local[li][targets[sel]],
                                            reduction="sum")
        return total / len(targets)

    def update_running_means(self, rows: torch.Tensor, langs: torch.Tensor) -> None:
        """EMA of the language means while the top layers change (they move the head input)."""
        if self.cfg.centre == "none" or self.cfg.train_top_layers == 0:
            return
        m = self.cfg.ema_momentum
        means = self.centring.means.clone()
        for li in langs.unique().tolist():
            sel = langs == li
            means[li] = m * means[li] + (1 - m) * rows[sel].detach().float().mean(0).cpu()
        self.centring.set_means(means)


class StepData:
    """One step's (rows (M, H), targets (M,), language index (M,)) from the cache, on
    ``device``; the top layers (k > 0) re-run on the cached states."""

    def __init__(self, cache: dict[str, Any], bert: nn.Module, top_layers: nn.ModuleList,
                 cfg: MLMHeadConfig, device: torch.device):
        self.cache, self.bert, self.top_layers, self.cfg = cache, bert, top_layers, cfg
        self.device = device
        self._perm_key: tuple[int, int] | None = None
        self._perm = torch.empty(0, dtype=torch.long)

    def steps_per_epoch(self) -> int:
        if self.cfg.train_top_layers == 0:
            return max(1, len(self.cache["targets"]) // self.cfg.head_batch_size)
        return len(self.cache["batches"])

    def _permutation(self, epoch: int, n: int) -> torch.Tensor:
        if self._perm_key != (epoch, n):
            gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(n, generator=gen)
            self._perm_key = (epoch, n)
        return self._perm

    def _batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The top layers' output (B, T, H) over a cached batch."""
        return run_layers(self.bert, self.top_layers, batch["states"].float().to(self.device),
                          batch["attention"].to(self.device))

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        per_epoch = self.steps_per_epoch()
        epoch, k = divmod(step, per_epoch)
        dev = self.device
        if self.cfg.train_top_layers == 0:
            n = len(self.cache["targets"])
            bs = min(self.cfg.head_batch_size, n)
            idx = self._permutation(epoch, n)[k * bs:(k + 1) * bs]
            return (self.cache["rows"][idx].float().to(dev), self.cache["targets"][idx].to(dev),
                    self.cache["langs"][idx].to(dev))
        batch = self.cache["batches"][int(self._permutation(epoch, per_epoch)[k])]
        hidden = self._batch(batch)  # (B, T, H)
        return (hidden[batch["select"].to(dev)], batch["targets"].to(dev),
                batch["langs"].to(dev))

    def final_rows(self, max_batches: int, autocast) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Head-input rows (M, H) and their languages (M,) on the CPU, top layers in eval mode
        (the whole cache for k = 0, its first ``max_batches`` batches for k > 0)."""
        if self.cfg.train_top_layers == 0:
            yield self.cache["rows"].float(), self.cache["langs"]
            return
        self.top_layers.eval()
        for batch in self.cache["batches"][:max_batches]:
            with autocast():
                hidden = self._batch(batch)
            yield hidden[batch["select"].to(self.device)].float().cpu(), batch["langs"]


@torch.no_grad()
def exact_means(data: StepData, n_languages: int, hidden_size: int, autocast,
                max_batches: int = 64) -> torch.Tensor:
    """Per-language mean (L, H) of the head's input at masked positions over the cache."""
    sums = torch.zeros(n_languages, hidden_size, dtype=torch.float64)
    counts = torch.zeros(n_languages, dtype=torch.float64)
    for rows, langs in data.final_rows(max_batches, autocast):
        sums.index_add_(0, langs, rows.double())
        counts += torch.bincount(langs, minlength=n_languages).double()
    return (sums / counts.clamp(min=1)[:, None]).float()


__all__: Sequence[str] = ("HeadObjective", "StepData", "exact_means")
