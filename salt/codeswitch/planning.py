"""Which positions may change and which copies go to which language."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from salt.vocab import PieceScheme


def plan_copies(n_examples: int, languages: Sequence[str], assignment: str,
                copies: int) -> list[list[tuple[int, str]]]:
    """(copy index, language) for every example, by the assignment rule."""
    n = len(languages)
    if assignment == "each":
        return [[(c, lang) for c, lang in enumerate(languages)] for _ in range(n_examples)]
    return [[(c, languages[(i + c) % n]) for c in range(copies)] for i in range(n_examples)]


def candidate_positions(pieces: Sequence[str], is_special: Sequence[bool], scheme: PieceScheme,
                        mode: str = "single_word") -> list[int]:
    """Positions that may be switched (see ``CodeSwitchConfig.candidate``)."""
    out = []
    for p, piece in enumerate(pieces):
        if is_special[p] or scheme.is_digits_or_punct(piece):
            continue
        if mode == "any":
            out.append(p)
            continue
        if not scheme.is_word_start(piece):
            continue
        if mode == "single_word" and p + 1 < len(pieces):
            nxt = pieces[p + 1]
            glued = not (is_special[p + 1] or scheme.is_word_start(nxt) or scheme.is_punct(nxt))
            if glued:  # the word continues into the next piece
                continue
        out.append(p)
    return out


def mask_groups(cands: Sequence[int], stride: int | None) -> list[tuple[int, ...]]:
    """Positions masked together: one each (exact) or those equal modulo ``stride``."""
    if stride is None:
        return [(p,) for p in cands]
    groups: dict[int, list[int]] = defaultdict(list)
    for p in cands:
        groups[p % stride].append(p)
    return [tuple(g) for _, g in sorted(groups.items(), key=lambda kv: kv[1][0])]
