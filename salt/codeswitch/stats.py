"""Evaluation-only quality statistics of code-switch records (the only code here that reads a
bilingual dictionary)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from salt.codeswitch.config import (
    SYNONYM_TAG,
    CodeSwitchError,
)
from salt.vocab import LanguageVocabs, detect_scheme, special_ids


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


ARMS = {"masked": "MLM-head code-switching + mixup",
        "unmasked": "prototype-lexicon code-switching + mixup"}


def arm_name(input_mode: str) -> str:
    """What the SALT arm is, named for its code-switcher: a masked-LM head's fill-mask
    predictions ("masked") or nearest contextual prototypes of unmasked tokens ("unmasked")."""
    if input_mode not in ARMS:
        raise CodeSwitchError(f"input mode {input_mode!r}; expected one of {sorted(ARMS)}")
    return ARMS[input_mode]


def _tally(records: Sequence[dict[str, Any]], specials: set[int]) -> dict[str, dict[str, Any]]:
    """Raw counts per tag (language or "en-syn"): records, candidates, tokens, substitutions,
    pairs with one, pairs where the cap bound, probabilities and (source id, new id) pairs."""
    tags: dict[str, dict[str, Any]] = {}
    any_syn = any(s[4] == SYNONYM_TAG for r in records for s in r["substitutions"])
    for r in records:
        n_tok = sum(t not in specials for t in r["input_ids"])
        for tag in [r["lang"]] + ([SYNONYM_TAG] if any_syn else []):
            st = tags.setdefault(tag, {"records": 0, "candidates": 0, "tokens": 0,
                                       "substitutions": 0, "pairs_with_substitution": 0,
                                       "_capped": 0, "_with_proposals": 0, "_probs": [],
                                       "_pairs": Counter()})
            st["records"] += 1
            st["candidates"] += len(r["candidates"])
            st["tokens"] += n_tok
            subs = [s for s in r["substitutions"] if s[4] == tag]
            st["substitutions"] += len(subs)
            st["pairs_with_substitution"] += bool(subs)
            if "proposals" in r and tag == r["lang"]:
                st["_with_proposals"] += 1
                st["_capped"] += r["proposals"] > len(r["substitutions"])
            for s in subs:
                st["_probs"].append(float(s[3]))
                st["_pairs"][(s[1], s[2])] += 1
    return tags


def _function_words(records: Sequence[dict[str, Any]], words: Mapping[int, str],
                    top_k: int) -> set[str]:
    """The ``top_k`` most frequent source words at candidate positions (each source pair
    counted once): the "function words" the content-word precision leaves out."""
    seen: dict[str, list[int]] = {}
    for r in records:
        seen.setdefault(r["uid"], [r["input_ids"][p] for p in r["candidates"]])
    counts = Counter(words.get(i, "").lower() for ids in seen.values() for i in ids)
    return {w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]}


def _dictionary(path: Path, pairs: Counter[tuple[int, int]], words: Mapping[int, str],
                function: set[str]) -> dict[str, Any]:
    """Dictionary precision of the substitutions: token-weighted and by type (distinct pairs),
    over all pairs and over content words only (source word not a function word)."""
    muse = read_muse(path)
    sources = {src for _, src in muse}

    def hit(a: int, b: int) -> bool:
        return (words[b].lower(), words[a].lower()) in muse

    def share(keys: list[tuple[int, int]], weighted: bool) -> float | None:
        total = sum(pairs[k] if weighted else 1 for k in keys)
        good = sum(pairs[k] if weighted else 1 for k in keys if hit(*k))
        return good / total if total else None

    everything = list(pairs)
    content = [k for k in everything if words[k[0]].lower() not in function]
    total = sum(pairs.values())
    return {
        "file": path.name, "translations": sum(n for k, n in pairs.items() if hit(*k)),
        "substitutions": total, "share": share(everything, True),
        "precision_by_type": share(everything, False),
        "content_words": {"substitutions": sum(pairs[k] for k in content),
                          "types": len(content), "share": share(content, True),
                          "precision_by_type": share(content, False)},
        "source_in_dictionary": (sum(n for (a, _), n in pairs.items()
                                     if words[a].lower() in sources) / total) if total else None,
    }


def _leak_rate(pairs: Counter[tuple[int, int]], tag: str, vocabs: LanguageVocabs) -> float | None:
    """Share of the substitutions into ``tag`` whose new id is also in another target
    language's set (a word the sets do not tell apart)."""
    others = set()
    for lang in vocabs.languages:
        if lang not in (tag, vocabs.source_lang):
            others.update(vocabs.ids(lang).tolist())
    total = sum(pairs.values())
    return sum(n for (_, b), n in pairs.items() if b in others) / total if total else None


def codeswitch_stats(records: Sequence[dict[str, Any]], tokenizer: PreTrainedTokenizerBase,
                     muse_dir: str | Path | None = None, top: int = 20, bins: int = 10, *,
                     vocabs: LanguageVocabs | None = None, input_mode: str | None = None,
                     function_top_k: int = 100) -> dict[str, Any]:
    """Quality summary of code-switch records, per substitution tag (language or "en-syn").

    Per tag: records (copies into that language; all records for "en-syn"), candidates, tokens
    (non-special), substitutions, rate_per_candidate (the switch rate), rate_per_token,
    pairs_with_substitution, cap_bound_share (pairs whose above-threshold proposals exceeded
    the ``max_ratio`` cap; None for files without "proposals"), probability_histogram
    (``bins`` equal bins over [0, 1]), top_pairs ([English piece, new piece, count], markers
    stripped); with ``vocabs``: set_size and leak_rate (share of substitutions whose id is in
    another target language's set). ``dictionary``: with ``muse_dir``, the share of
    substitutions whose (English word, target word), lower-cased, is a pair of
    ``muse_dir/en-{lang}.dict``, token-weighted and by type, over all words and over content
    words only (the English word not among the ``function_top_k`` most frequent candidate
    words); "no dictionary" when that file is missing, "not run" without ``muse_dir``.
    ``input_mode`` names the arm (:func:`arm_name`). EVALUATION ONLY: the method never reads a
    dictionary.
    """
    scheme = detect_scheme(tokenizer)
    tags = _tally(records, special_ids(tokenizer))
    ids = sorted({i for st in tags.values() for pr in st["_pairs"] for i in pr}
                 | {i for r in records for p in r["candidates"] for i in [r["input_ids"][p]]})
    words = {i: scheme.text(piece)
             for i, piece in zip(ids, tokenizer.convert_ids_to_tokens(ids), strict=True)}
    function = _function_words(records, words, function_top_k)
    out = {tag: _summarise(tag, st, words, function, muse_dir, vocabs, top, bins)
           for tag, st in tags.items()}
    result: dict[str, Any] = {
        "per_language": out, "n_records": len(records),
        "function_words": {"definition": f"the {function_top_k} most frequent English words at "
                                         "candidate positions", "n": len(function)},
        "note": "dictionary shares are evaluation only; the method uses no dictionary"}
    if input_mode is not None:
        result["arm"] = arm_name(input_mode)
    return result


def _summarise(tag: str, st: dict[str, Any], words: Mapping[int, str], function: set[str],
               muse_dir: str | Path | None, vocabs: LanguageVocabs | None, top: int,
               bins: int) -> dict[str, Any]:
    pairs: Counter[tuple[int, int]] = st.pop("_pairs")
    probs: list[float] = st.pop("_probs")
    capped, with_proposals = st.pop("_capped"), st.pop("_with_proposals")
    counts = [0] * bins
    for p in probs:
        counts[min(int(p * bins), bins - 1) if p >= 0 else 0] += 1
    st["rate_per_candidate"] = st["substitutions"] / st["candidates"] if st["candidates"] else 0.0
    st["rate_per_token"] = st["substitutions"] / st["tokens"] if st["tokens"] else 0.0
    st["cap_bound_share"] = capped / with_proposals if with_proposals else None
    st["probability_histogram"] = {"edges": [k / bins for k in range(bins + 1)],
                                   "counts": counts}
    st["top_pairs"] = [[words[a], words[b], n] for (a, b), n in
                       sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    if vocabs is not None and tag in vocabs.languages:
        st["set_size"] = len(vocabs.ids(tag))
        st["leak_rate"] = _leak_rate(pairs, tag, vocabs)
    if tag == SYNONYM_TAG:
        st["dictionary"] = "not applicable"
    elif muse_dir is None:
        st["dictionary"] = "not run"
    else:
        path = Path(muse_dir) / f"en-{tag}.dict"
        st["dictionary"] = (_dictionary(path, pairs, words, function) if path.is_file()
                            else "no dictionary")
    return st
