"""The kept vocabulary of an MLM head: the ids seen in the training text, per language too."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KeptVocabulary:
    """Ids the head scores (the decoder is restricted to them) and the maps between id, kept
    index and per-language position (for the per-language softmax)."""

    kept: torch.Tensor  # (K,) vocabulary ids, sorted
    counts: torch.Tensor  # (K,) float occurrences in the training text
    index_of: torch.Tensor  # (V,) id -> kept index, -1 outside
    lang_kept: tuple[torch.Tensor, ...]  # per language (K_l,): kept indices seen in its text
    lang_local: tuple[torch.Tensor, ...]  # per language (K,): kept index -> position, -1 outside

    def __len__(self) -> int:
        return len(self.kept)

    def language_ids(self, li: int) -> torch.Tensor:
        """Vocabulary ids (K_l,) seen in language ``li``'s training text."""
        return self.kept[self.lang_kept[li]]


def kept_vocabulary(train_ids: Mapping[str, Sequence[Sequence[int]]], languages: Sequence[str],
                    special: set[int], vocab_size: int, prune: bool) -> KeptVocabulary:
    """The ids seen in ``train_ids`` (all non-special ids when ``prune`` is off)."""
    counts: Counter[int] = Counter()
    seen_by_lang: list[set[int]] = []
    for lang in languages:
        seen = Counter(t for seq in train_ids[lang] for t in seq if t not in special)
        counts.update(seen)
        seen_by_lang.append(set(seen))
    kept = sorted(counts) if prune else [i for i in range(vocab_size) if i not in special]
    kept_t = torch.tensor(kept, dtype=torch.long)
    index_of = torch.full((vocab_size,), -1, dtype=torch.long)
    index_of[kept_t] = torch.arange(len(kept))
    lang_kept, lang_local = [], []
    for seen in seen_by_lang:
        pos = index_of[torch.tensor(sorted(seen), dtype=torch.long)]
        local = torch.full((len(kept),), -1, dtype=torch.long)
        local[pos] = torch.arange(len(pos))
        lang_kept.append(pos)
        lang_local.append(local)
    return KeptVocabulary(kept_t, torch.tensor([counts.get(i, 0) for i in kept],
                                               dtype=torch.float),
                          index_of, tuple(lang_kept), tuple(lang_local))
