"""Tokenisation of sentence pairs and padding into batches, shared by every stage so that the
baseline, the code-switcher and the evaluator see identical token ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from salt.data import Example


@dataclass
class Encoded:
    """One tokenised pair. ``token_type_ids`` is None for tokenizers without segments (XLM-R)."""

    uid: str
    input_ids: list[int]
    token_type_ids: list[int] | None
    label: int


def encode_pairs(tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example],
                 max_length: int) -> list[Encoded]:
    """Tokenise (text_a, text_b) pairs with pair truncation to ``max_length`` tokens."""
    enc = tokenizer([e.text_a for e in examples], [e.text_b for e in examples],
                    truncation=True, max_length=max_length, padding=False)
    types = enc.get("token_type_ids")
    return [
        Encoded(ex.uid, list(enc["input_ids"][i]), list(types[i]) if types is not None else None,
                ex.label)
        for i, ex in enumerate(examples)
    ]


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists: returns ids (B, T) and attention mask (B, T)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def length_buckets(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (sorted), to cut padding at inference."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
