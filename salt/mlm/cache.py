"""The encode-once phase: the frozen bottom of the encoder runs once over the training
sentences (balanced across languages, cut to the sentence budget) and its states are cached.

Masked objective: for ``train_top_layers = 0`` the final states at masked positions; else the
layer-``L-k`` states of whole sentences. Prototype objective: per kept id the sum of its
unmasked states and its count per language. Everything is a function of the sentences, the
seed and the budget, never of the clock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from salt.encoding import pad_batch
from salt.mlm.config import MLMHeadConfig
from salt.mlm.layers import bottom_states
from salt.mlm.text import mask_positions
from salt.mlm.vocabulary import KeptVocabulary
from salt.runtime import Runtime

Order = Sequence[tuple[int, int]]  # (language index, sentence index) pairs


def interleaved(train_ids: Mapping[str, Sequence[Any]], languages: Sequence[str]
                ) -> list[tuple[int, int]]:
    """(language index, sentence index) round-robin over languages: a balanced order."""
    longest = max(len(train_ids[lang]) for lang in languages)
    return [(li, j) for j in range(longest) for li, lang in enumerate(languages)
            if j < len(train_ids[lang])]


def budgeted_order(order: Sequence[tuple[int, int]], limit: int | None
                   ) -> tuple[list[tuple[int, int]], dict[str, Any]]:
    """``order`` cut to ``limit`` sentences (None: all), and the budget record the stage writes
    (the schema's ``extra.budgets`` entry)."""
    used = list(order) if limit is None else list(order[:limit])
    return used, {"stage": "mlm", "kind": "sentences", "limit": limit, "used": len(used),
                  "cut_short": len(used) < len(order)}


@dataclass(frozen=True)
class Encoder:
    """The frozen bottom ``split_at`` layers and the tokenised sentences they read."""

    bert: nn.Module
    split_at: int
    train_ids: Mapping[str, Sequence[Sequence[int]]]
    languages: Sequence[str]
    vocab: KeptVocabulary
    special: set[int]
    mask_id: int
    pad_id: int
    cfg: MLMHeadConfig
    runtime: Runtime

    @property
    def store_dtype(self) -> torch.dtype:
        """Cache dtype: bf16 when the runtime autocasts in bf16 (half the memory)."""
        return torch.bfloat16 if self.runtime.precision == "bf16" else torch.float32

    def batches(self, order: Order, desc: str) -> Iterator[list[tuple[int, int]]]:
        """Batches of ``order``, sorted by length within chunks of 16 batches to cut padding;
        a deterministic function of the order."""
        size = self.cfg.encode_batch_size
        bar = tqdm(total=len(order), desc=desc, unit="sent", disable=not self.cfg.progress,
                   mininterval=5)
        for c0 in range(0, len(order), size * 16):
            part = sorted(order[c0:c0 + size * 16],
                          key=lambda o: len(self.train_ids[self.languages[o[0]]][o[1]]))
            for b0 in range(0, len(part), size):
                yield part[b0:b0 + size]
                bar.update(len(part[b0:b0 + size]))
        bar.close()

    def _bottom(self, items: Sequence[tuple[int, int]], masked: bool
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """ids (B, T) before masking, attention (B, T), selected positions (B, T) and the
        bottom states (B, T, H) on the CPU of one batch."""
        seqs = [self.train_ids[self.languages[li]][j] for li, j in items]
        ids, att = pad_batch(seqs, self.pad_id)  # (B, T)
        if masked:
            select = torch.zeros_like(ids, dtype=torch.bool)
            for b, ((li, j), seq) in enumerate(zip(items, seqs, strict=True)):
                rng = random.Random(f"{self.cfg.seed}:{self.languages[li]}:{j}")
                for p in mask_positions(seq, self.special, self.cfg.mask_prob, rng):
                    select[b, p] = True
            inputs = ids.masked_fill(select, self.mask_id)
        else:
            select = att.bool() & ~torch.isin(ids, torch.tensor(sorted(self.special)))
            inputs = ids
        device = self.runtime.device
        with self.runtime.autocast():
            hidden = bottom_states(self.bert, inputs.to(device), att.to(device),
                                   self.split_at)  # (B, T, H)
        return ids, att, select, hidden.cpu()

    @torch.no_grad()
    def encode_masked(self, order: Order) -> dict[str, Any]:
        """The masked objective's cache over the sentences of ``order``."""
        started = time.perf_counter()
        rows, targets, row_lang, batches = [], [], [], []
        n_per_lang = [0] * len(self.languages)
        for items in self.batches(order, "mlm-head encode"):
            ids, att, select, hidden = self._bottom(items, masked=True)
            gold = self.vocab.index_of[ids[select]]  # (M,) kept-vocabulary index
            langs = torch.tensor([li for li, _ in items])[:, None].expand_as(ids)[select]  # (M,)
            if self.cfg.train_top_layers == 0:
                rows.append(hidden[select].to(self.store_dtype))  # (M, H)
                targets.append(gold)
                row_lang.append(langs)
            else:
                batches.append({"states": hidden.to(self.store_dtype), "attention": att,
                                "select": select, "targets": gold, "langs": langs})
            for li, _ in items:
                n_per_lang[li] += 1
        cache: dict[str, Any] = {"encode_s": time.perf_counter() - started,
                                 "sentences": dict(zip(self.languages, n_per_lang, strict=True))}
        if self.cfg.train_top_layers == 0:
            cache.update(rows=torch.cat(rows), targets=torch.cat(targets),
                         langs=torch.cat(row_lang))
        else:
            cache["batches"] = batches
        return cache

    @torch.no_grad()
    def encode_prototypes(self, order: Order) -> dict[str, Any]:
        """Unmasked pass over ``order``: per kept id the sum of its states (K, H) and its count
        per language (K, L); per language the sum of all its token states (L, H)."""
        started = time.perf_counter()
        n_lang, hsize = len(self.languages), self.bert.config.hidden_size
        sums = torch.zeros(len(self.vocab), hsize)  # (K, H)
        counts = torch.zeros(len(self.vocab), n_lang)  # (K, L)
        lang_sums = torch.zeros(n_lang, hsize, dtype=torch.float64)  # (L, H)
        n_per_lang = [0] * n_lang
        for items in self.batches(order, "prototype encode"):
            ids, _, real, hidden = self._bottom(items, masked=False)
            rows = hidden[real].float()  # (N, H)
            col = self.vocab.index_of[ids[real]]  # (N,) kept index
            langs = torch.tensor([li for li, _ in items])[:, None].expand_as(ids)[real]  # (N,)
            sums.index_add_(0, col, rows)
            counts.index_put_((col, langs), torch.ones(len(col)), accumulate=True)
            lang_sums.index_add_(0, langs, rows.double())
            for li, _ in items:
                n_per_lang[li] += 1
        return {"encode_s": time.perf_counter() - started,
                "sentences": dict(zip(self.languages, n_per_lang, strict=True)),
                "sums": sums, "counts": counts, "lang_sums": lang_sums.float()}
