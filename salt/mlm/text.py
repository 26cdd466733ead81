"""Text-side helpers of MLM-head training: the held-out split, special ids, mask positions."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from typing import Any


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _is_held_out(text: str, fraction: float) -> bool:
    """Deterministic sentence-level split: a hash of the text, independent of order and run."""
    h = int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")
    return h / 2**64 < fraction


def split_held_out(texts_by_lang: Mapping[str, Sequence[str]], fraction: float
                   ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(train, held_out) sentences per language, deduplicated, split by text hash."""
    train: dict[str, list[str]] = {}
    held: dict[str, list[str]] = {}
    for lang, texts in texts_by_lang.items():
        uniq = [t for t in dict.fromkeys(texts) if t.strip()]
        train[lang] = [t for t in uniq if not _is_held_out(t, fraction)]
        held[lang] = [t for t in uniq if _is_held_out(t, fraction)]
    return train, held


def mask_positions(ids: Sequence[int], special: set[int], prob: float,
                    rng: random.Random) -> list[int]:
    """round(prob * n) (at least one) distinct non-special positions of a sentence."""
    cands = [i for i, t in enumerate(ids) if t not in special]
    if not cands:
        return []
    k = max(1, round(prob * len(cands)))
    return sorted(rng.sample(cands, k))
