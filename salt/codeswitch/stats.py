"""Evaluation-only quality statistics of code-switch records (the only code here that reads a
bilingual dictionary)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from salt.codeswitch.config import (
    SYNONYM_TAG,
    CodeSwitchError,
)
from salt.vocab import detect_scheme, special_ids


def read_muse(path: str | Path) -> set[tuple[str, str]]:
    """(target word, English word) pairs, lower-cased, from a MUSE ``en-{lang}.dict`` file.

    Accepts the shipped ``target @ source`` lines and plain ``target<space|tab>source`` lines.
    EVALUATION ONLY: the method never reads a dictionary.
    """
    path = Path(path)
    pairs: set[tuple[str, str]] = set()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(" @ ") if " @ " in line else line.split()
            if len(parts) != 2 or not all(p.strip() for p in parts):
                raise CodeSwitchError(f"{path}:{lineno}: expected 'target @ source' or "
                                      f"'target source', got {line!r}")
            pairs.add((parts[0].strip().lower(), parts[1].strip().lower()))
    return pairs


def codeswitch_stats(records: Sequence[dict[str, Any]], tokenizer: PreTrainedTokenizerBase,
                     muse_dir: str | Path | None = None, top: int = 20,
                     bins: int = 10) -> dict[str, Any]:
    """Quality summary of code-switch records, per substitution tag (language or "en-syn").

    Per tag: records (copies into that language; all records for "en-syn"), candidates, tokens
    (non-special), substitutions, rate_per_candidate, rate_per_token, pairs_with_substitution,
    probability_histogram (``bins`` equal bins over [0, 1]), top_pairs ([English piece, new
    piece, count], markers stripped), and ``dictionary``: with ``muse_dir``, the share of
    substitutions whose (English word, target word), lower-cased, is a pair of
    ``muse_dir/en-{lang}.dict`` ("no dictionary" when that file is missing, "not checked"
    without ``muse_dir``). EVALUATION ONLY: the method never reads a dictionary.
    """
    scheme = detect_scheme(tokenizer)
    specials = special_ids(tokenizer)
    tags: dict[str, dict[str, Any]] = {}

    def slot(tag: str) -> dict[str, Any]:
        return tags.setdefault(tag, {"records": 0, "candidates": 0, "tokens": 0,
                                     "substitutions": 0, "pairs_with_substitution": 0,
                                     "_probs": [], "_pairs": Counter()})

    any_syn = any(s[4] == SYNONYM_TAG for r in records for s in r["substitutions"])
    for r in records:
        n_tok = sum(t not in specials for t in r["input_ids"])
        for tag in [r["lang"]] + ([SYNONYM_TAG] if any_syn else []):
            st = slot(tag)
            st["records"] += 1
            st["candidates"] += len(r["candidates"])
            st["tokens"] += n_tok
            subs = [s for s in r["substitutions"] if s[4] == tag]
            st["substitutions"] += len(subs)
            st["pairs_with_substitution"] += bool(subs)
            for s in subs:
                st["_probs"].append(float(s[3]))
                st["_pairs"][(s[1], s[2])] += 1
    out: dict[str, Any] = {}
    for tag, st in tags.items():
        pairs: Counter[tuple[int, int]] = st.pop("_pairs")
        probs: list[float] = st.pop("_probs")
        counts = [0] * bins
        for p in probs:
            counts[min(int(p * bins), bins - 1) if p >= 0 else 0] += 1
        words = {}
        ids = sorted({i for pr in pairs for i in pr})
        for i, piece in zip(ids, tokenizer.convert_ids_to_tokens(ids), strict=True):
            words[i] = scheme.text(piece)
        st["rate_per_candidate"] = st["substitutions"] / st["candidates"] if st["candidates"] else 0.0
        st["rate_per_token"] = st["substitutions"] / st["tokens"] if st["tokens"] else 0.0
        st["probability_histogram"] = {"edges": [k / bins for k in range(bins + 1)],
                                       "counts": counts}
        st["top_pairs"] = [[words[a], words[b], n] for (a, b), n in
                           sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
        if tag == SYNONYM_TAG:
            st["dictionary"] = "not applicable"
        elif muse_dir is None:
            st["dictionary"] = "not checked"
        else:
            path = Path(muse_dir) / f"en-{tag}.dict"
            if not path.is_file():
                st["dictionary"] = "no dictionary"
            else:
                muse = read_muse(path)
                sources = {s for _, s in muse}
                hits = sum(n for (a, b), n in pairs.items()
                           if (words[b].lower(), words[a].lower()) in muse)
                known = sum(n for (a, _), n in pairs.items() if words[a].lower() in sources)
                total = sum(pairs.values())
                st["dictionary"] = {
                    "file": path.name, "translations": hits, "substitutions": total,
                    "share": hits / total if total else None,
                    "source_in_dictionary": known / total if total else None,
                }
        out[tag] = st
    return {"per_language": out, "n_records": len(records),
            "note": "dictionary shares are evaluation only; the method uses no dictionary"}
