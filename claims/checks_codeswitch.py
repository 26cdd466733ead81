"""Property checks of code-switching: C2 (driven by the model's own MLM head, no dictionary),
C3 (substitutes in the target set, only at candidate positions), C4 (threshold and arg-max of the
model's restricted distribution), C5 (the synonym option), each taking a code-switcher
``(model, tokenizer, encoded, vocabs, config) -> records`` so broken variants can be audited."""

from __future__ import annotations

import builtins
import contextlib
import copy
import io
import math
import os
import pathlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from hypothesis import strategies as st

from salt import codeswitch as cs_mod
from salt.data import Example
from salt.encoding import Encoded, encode_pairs

from .bench import (
    TOL,
    Bench,
    CodeSwitcher,
    checked,
    default_code_switch,
    explore,
    fmt,
    get_bench,
    require,
    verdict,
)

# ----------------------------------------------------------------------------- code-switching


def _cs_config(**kw: Any):
    return cs_mod.CodeSwitchConfig(**kw)


@st.composite
def _cs_inputs(draw, bench: Bench, allow_random: bool = True) -> list[tuple[str, str] | int]:
    """1-3 English pairs: real XNLI dev pairs (by index) or random sentences of English words."""
    out: list[tuple[str, str] | int] = []
    for _ in range(draw(st.integers(1, 3))):
        if allow_random and draw(st.booleans()):
            words = st.lists(st.sampled_from(bench.words), min_size=1, max_size=8)
            out.append((" ".join(draw(words)), " ".join(draw(words))))
        else:
            out.append(draw(st.integers(0, len(bench.pairs) - 1)))
    return out


def _encode(bench: Bench, inputs: Sequence[tuple[str, str] | int]) -> list[Encoded]:
    out = []
    for k, x in enumerate(inputs):
        if isinstance(x, int):
            e = bench.pairs[x]
            out.append(Encoded(f"{e.uid}#{k}", e.input_ids, e.token_type_ids, e.label))
        else:
            out.extend(encode_pairs(bench.tokenizer, [Example(f"prop/rand:{k}", x[0], x[1], 0)], 48))
    return out


# The tiny model's restricted probabilities are near uniform (~1/|V_L|, ~1/|V| under "full"):
# low thresholds make substitutions happen, the wide range covers the rest.
_THRESHOLDS = st.one_of(st.just(0.0), st.floats(0.0, 0.01), st.floats(0.0, 0.03),
                        st.floats(0.0, 1.0))
_SYN_THRESHOLDS = st.one_of(st.just(0.0), st.floats(0.0, 0.005), st.floats(0.0, 1.0))


@st.composite
def _cs_cases(draw, bench: Bench, synonyms: bool | None = False) -> dict[str, Any]:
    langs = draw(st.lists(st.sampled_from(bench.vocabs.languages), min_size=1, max_size=3,
                          unique=True))
    syn = draw(st.booleans()) if synonyms is None else synonyms
    # with synonyms on, translation thresholds above 1 leave candidates to the synonym fallback
    # (off too: an "off" that only holds at thresholds the model never reaches proves nothing)
    thresholds = (st.one_of(st.floats(1.0, 2.0), _THRESHOLDS) if synonyms is None
                  else _THRESHOLDS)
    return {"inputs": draw(_cs_inputs(bench)), "threshold": draw(thresholds),
            "normalize": draw(st.sampled_from(["target", "full"])), "languages": tuple(langs),
            "copies": draw(st.integers(1, 2)), "max_ratio": draw(st.sampled_from([0.2, 0.5, 1.0])),
            "candidate": draw(st.sampled_from(["single_word", "word_start", "any"])),
            "synonyms": syn, "synonym_threshold": draw(_SYN_THRESHOLDS)}


def _run_cs(impl: CodeSwitcher, bench: Bench, c: dict[str, Any], model=None):
    cfg = _cs_config(threshold=c["threshold"], normalize=c["normalize"], languages=c["languages"],
                     copies=c["copies"], max_ratio=c["max_ratio"], candidate=c["candidate"],
                     synonyms=c["synonyms"], synonym_threshold=c["synonym_threshold"])
    enc = _encode(bench, c["inputs"])
    return cfg, enc, impl(model if model is not None else bench.mlm, bench.tokenizer, enc,
                          bench.vocabs, cfg)


class _Recompute:
    """The definition, computed independently: one full masked-LM forward pass per masked
    position, float64 softmax over the language's ids (or the full softmax restricted)."""

    def __init__(self, bench: Bench):
        self.bench = bench
        self.cache: dict[tuple, torch.Tensor] = {}

    def logits(self, input_ids: Sequence[int], token_type_ids: Sequence[int] | None,
               p: int) -> torch.Tensor:
        key = (tuple(input_ids), None if token_type_ids is None else tuple(token_type_ids), p)
        if key not in self.cache:
            ids = torch.tensor([list(input_ids)])
            ids[0, p] = self.bench.tokenizer.mask_token_id
            kw = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            if token_type_ids is not None:
                kw["token_type_ids"] = torch.tensor([list(token_type_ids)])
            with torch.no_grad():
                self.cache[key] = self.bench.mlm(**kw).logits[0, p].double()
        return self.cache[key]

    def probs(self, rec: dict[str, Any], p: int, lang: str, normalize: str) -> tuple[list[int], torch.Tensor]:
        logits = self.logits(rec["input_ids"], rec["token_type_ids"], p)
        ids = self.bench.vocabs.ids(lang)
        if normalize == "target":
            probs = torch.softmax(logits[ids], -1)
        else:
            probs = torch.exp(logits[ids] - torch.logsumexp(logits, -1))
        return ids.tolist(), probs


def allowed_positions(bench: Bench, input_ids: Sequence[int], mode: str) -> set[int]:
    """Positions the candidate mode may switch, recomputed from the tokenizer alone (WordPiece
    bench): never a special token; word starts for "word_start", word starts not glued to a
    continuation piece for "single_word", any other piece for "any". Digit/punctuation pieces
    are excluded by the implementation too; they are not re-derived here."""
    specials = set(bench.tokenizer.all_special_ids)
    pieces = bench.tokenizer.convert_ids_to_tokens(list(input_ids))
    out = set()
    for p, (tid, piece) in enumerate(zip(input_ids, pieces, strict=True)):
        if tid in specials:
            continue
        start = not piece.startswith("##")
        glued = p + 1 < len(pieces) and pieces[p + 1].startswith("##")
        if mode == "any" or (start and (mode == "word_start" or not glued)):
            out.add(p)
    return out


def check_records(recs: list[dict[str, Any]], enc: Sequence[Encoded], cfg,
                  bench: Bench) -> None:
    """The written records against their sources: one per (pair, copy) in input order, uid,
    label, source ids and token types copied from the source, the copy token-aligned, every
    changed position a recorded substitution at a candidate position (never a special token,
    never outside what the candidate mode allows), and every candidate allowed."""
    n_copies = cfg.copies if cfg.assignment == "round_robin" else len(cfg.languages)
    require(len(recs) == len(enc) * n_copies,
            f"{len(recs)} records for {len(enc)} pairs x {n_copies} copies")
    for k, rec in enumerate(recs):
        e = enc[k // n_copies]
        require(rec["uid"] == e.uid, f"record {k} has uid {rec['uid']!r}, its source is {e.uid!r}")
        require(rec["label"] == e.label, f"{rec['uid']}: record label {rec['label']!r}, the "
                                         f"source's label is {e.label!r}")
        require(list(rec["input_ids"]) == list(e.input_ids),
                f"{rec['uid']}: the record's source ids are not the source's")
        tt = None if e.token_type_ids is None else list(e.token_type_ids)
        require((rec["token_type_ids"] is None and tt is None)
                or list(rec["token_type_ids"] or []) == (tt or []),
                f"{rec['uid']}: the record's token types are not the source's")
        src, cs = rec["input_ids"], rec["cs_input_ids"]
        require(len(src) == len(cs), f"{rec['uid']}: code-switched copy not token-aligned")
        allowed = allowed_positions(bench, src, cfg.candidate)
        bad = sorted(set(rec["candidates"]) - allowed)
        require(not bad, f"{rec['uid']}: candidate position {bad[:1]} ({_piece(bench, src[bad[0]])!r}"
                         f") is a special token or not a {cfg.candidate!r} position"
                if bad else "")
        subs = {s[0]: s for s in rec["substitutions"]}
        require(len(subs) == len(rec["substitutions"]),
                f"{rec['uid']}: two substitutions at one position")
        for p, s in subs.items():
            require(p in rec["candidates"] and p in allowed,
                    f"{rec['uid']}: substitution at position {p} ({_piece(bench, src[p])!r}), "
                    "which is not a candidate position (special token or outside the "
                    f"{cfg.candidate!r} mode)")
            require(s[1] == src[p] and s[2] == cs[p],
                    f"{rec['uid']}: substitution {s[:3]} does not match source {src[p]} / copy "
                    f"{cs[p]} at position {p}")
        for p, (a, b) in enumerate(zip(src, cs, strict=True)):
            if a != b:
                require(p in subs, f"{rec['uid']}: token at position {p} changed ({a} -> {b}) "
                                   "without a recorded substitution")


def _piece(bench: Bench, i: int) -> str:
    return bench.tokenizer.convert_ids_to_tokens([int(i)])[0]


@checked
def check_c3(impl: CodeSwitcher | None = None, *, seed: int = 0, max_examples: int = 80,
             bench: Bench | None = None) -> dict[str, Any]:
    """C3: every substituted token lies in the target language's sub-word set (random English
    sentences and real pairs, random thresholds, languages, normalisations, candidate modes)."""
    impl = impl or default_code_switch
    bench = bench or get_bench()
    sets = {lang: set(bench.vocabs.ids(lang).tolist()) for lang in bench.vocabs.languages}
    seen = {"substitutions": 0, "records": 0}

    def prop(c: dict[str, Any]) -> None:
        cfg, enc, recs = _run_cs(impl, bench, c)
        check_records(recs, enc, cfg, bench)
        for rec in recs:
            lang = rec["lang"]
            require(lang in cfg.languages, f"record into {lang!r}, not a requested language "
                                            f"{cfg.languages}")
            seen["records"] += 1
            for p, (a, b) in enumerate(zip(rec["input_ids"], rec["cs_input_ids"], strict=True)):
                if a == b:
                    continue
                seen["substitutions"] += 1
                require(b in sets[lang],
                         f"substituted token {b} ({_piece(bench, b)!r}) at position {p} of "
                         f"{rec['uid']} is not in the target language {lang!r}'s set")
            for s in rec["substitutions"]:
                require(s[4] == lang, f"substitution tagged {s[4]!r} in a copy into {lang!r}")

    run = explore("substitutes lie in the target language's set", prop, _cs_cases(bench),
                  seed=seed, max_examples=max_examples)
    inconclusive = None if seen["substitutions"] else "no substitution happened in any example"
    return verdict(
        "C3", f"every changed token of {seen['substitutions']} substitutions in "
        f"{seen['records']} code-switched copies lies in the target language's sub-word set "
        "(and carries that language's tag)", [run], bench, inconclusive=inconclusive,
        details=dict(seen), notes=["Synonym mode off (the default)."])


@checked
def check_c4(impl: CodeSwitcher | None = None, *, seed: int = 0, max_examples: int = 50,
             bench: Bench | None = None) -> dict[str, Any]:
    """C4: each substitution's probability is >= threshold and equals the model's restricted
    probability recomputed by the definition; the substitute is the arg-max; every candidate
    whose arg-max clears the threshold is substituted unless the max_ratio cap is reached, and
    the cap keeps the most probable."""
    impl = impl or default_code_switch
    bench = bench or get_bench()
    rec_model = _Recompute(bench)
    seen = {"substitutions": 0, "candidates_recomputed": 0}

    def prop(c: dict[str, Any]) -> None:
        cfg, enc, recs = _run_cs(impl, bench, c)
        check_records(recs, enc, cfg, bench)
        for rec in recs:
            lang, subs = rec["lang"], rec["substitutions"]
            for p, _orig, new, prob, _tag in subs:
                seen["substitutions"] += 1
                require(prob >= cfg.threshold,
                         f"substitution at position {p} of {rec['uid']} has probability "
                         "%s below the threshold %s" % tuple(fmt(prob, cfg.threshold)))
                ids, probs = rec_model.probs(rec, p, lang, cfg.normalize)
                require(new in ids, f"substitute {new} not in the {lang} set")
                want = float(probs[ids.index(new)])
                require(abs(prob - want) <= TOL,
                         f"recorded probability {fmt(prob, want)[0]} of substitute {new} at "
                         f"position {p} differs from the model's restricted probability "
                         f"{fmt(prob, want)[1]} (normalize={cfg.normalize})")
                require(float(probs.max()) - want <= 1e-6,
                         f"substitute {new} at position {p} is not the arg-max of the restricted "
                         "distribution (%s < %s)" % tuple(fmt(want, float(probs.max()))))
            # completeness: candidates whose arg-max clears the threshold are used (up to the cap)
            limit = math.floor(cfg.max_ratio * len(rec["candidates"]) + 1e-9)
            strict, loose = [], []
            chosen = {s[0] for s in subs}
            for p in rec["candidates"]:
                ids, probs = rec_model.probs(rec, p, lang, cfg.normalize)
                seen["candidates_recomputed"] += 1
                best, k = float(probs.max()), int(probs.argmax())
                if ids[k] == rec["input_ids"][p]:
                    continue
                if best >= cfg.threshold + 1e-6:
                    strict.append((best, p))
                if best >= cfg.threshold - 1e-6:
                    loose.append((best, p))
            lo, hi = min(limit, len(strict)), min(limit, len(loose))
            require(lo <= len(subs) <= hi,
                     f"{rec['uid']} ({lang}): {len(subs)} substitutions, but {len(strict)} "
                     f"candidates have an arg-max with probability >= threshold {cfg.threshold:.6g} "
                     f"and the max_ratio cap allows {limit}: high-probability substitutes are not "
                     "all used")
            if subs:
                floor = min(s[3] for s in subs)
                skipped = [(b, p) for b, p in strict if p not in chosen and b > floor + 1e-5]
                require(not skipped, f"{rec['uid']}: the cap kept a substitute of probability "
                                      f"{floor:.6g} over position {skipped[0][1] if skipped else 0} "
                                      "with a higher one")

    run = explore("substitution probabilities vs threshold and the model", prop,
                  _cs_cases(bench), seed=seed, max_examples=max_examples)
    inconclusive = None if seen["substitutions"] else "no substitution happened in any example"
    return verdict(
        "C4", f"all {seen['substitutions']} substitutions had probability >= threshold, equal "
        f"(|diff| <= {TOL}) to the model's restricted probability recomputed by the definition "
        "(one full masked-LM pass per position, float64), and were its arg-max; every candidate "
        f"whose arg-max cleared the threshold was used up to the max_ratio cap "
        f"({seen['candidates_recomputed']} candidate predictions recomputed)", [run], bench,
        inconclusive=inconclusive, details=dict(seen))


def _original_excluded(impl: CodeSwitcher, bench: Bench, lang: tuple[str, ...]) -> str | None:
    """Where the model's English-set arg-max IS the original token (its output bias raised), a
    synonym must still be substituted: the second best, never the original. None when it is."""
    enc = bench.pairs[:1]
    cfg = _cs_config(threshold=1.5, languages=lang, max_ratio=1.0, synonyms=True,
                     synonym_threshold=0.0)
    en = set(bench.vocabs.ids(bench.vocabs.source_lang).tolist())
    rec = impl(bench.mlm, bench.tokenizer, enc, bench.vocabs, cfg)[0]
    spots = [p for p in rec["candidates"] if rec["input_ids"][p] in en]
    if not spots:
        return None
    p = spots[0]
    orig = rec["input_ids"][p]
    model = copy.deepcopy(bench.mlm)
    with torch.no_grad():
        model.get_output_embeddings().bias[orig] += 50.0  # the original wins every arg-max
    rec = impl(model, bench.tokenizer, enc, bench.vocabs, cfg)[0]
    at = [s for s in rec["substitutions"] if s[0] == p]
    if not at or at[0][2] == orig:
        return (f"with the original token {orig} ({_piece(bench, orig)!r}) the model's English-set "
                f"arg-max at position {p}, synonym threshold 0 and no cap, no synonym other than "
                f"the original was substituted there ({at or 'nothing'}): the original is not "
                "excluded from the synonym choice")
    return None


def _synonyms_complete(rec: dict[str, Any], cfg, rec_model: _Recompute, src: str,
                       seen: dict[str, int]) -> None:
    """Below the max_ratio cap every proposal is used, so a candidate left unchanged must have
    no synonym (a different English-set id) clearing the synonym threshold."""
    limit = math.floor(cfg.max_ratio * len(rec["candidates"]) + 1e-9)
    if not cfg.synonyms or len(rec["substitutions"]) >= limit:
        return
    chosen = {s[0] for s in rec["substitutions"]}
    for p in rec["candidates"]:
        if p in chosen:
            continue
        ids, probs = rec_model.probs(rec, p, src, cfg.normalize)
        others = probs.clone()
        orig = rec["input_ids"][p]
        if orig in ids:
            others[ids.index(orig)] = -1.0
        best = float(others.max())
        seen["synonym_candidates_recomputed"] = seen.get("synonym_candidates_recomputed", 0) + 1
        require(best < cfg.synonym_threshold + TOL,
                f"{rec['uid']}: position {p} was left unchanged although the English-set synonym "
                f"{ids[int(others.argmax())]} (the arg-max without the original) has probability "
                "{} >= the synonym threshold {} and the cap was not reached".format(
                    *fmt(best, cfg.synonym_threshold)))


@checked
def check_c5(impl: CodeSwitcher | None = None, *, seed: int = 0, max_examples: int = 60,
             bench: Bench | None = None) -> dict[str, Any]:
    """C5 (the seed marks it NOT verified; an option, off by default): with synonyms off no
    source-language synonym substitution happens; with it on, synonyms come from the English set,
    differ from the original, equal the model's prediction and clear their own threshold,
    which acts independently of the translation threshold."""
    impl = impl or default_code_switch
    bench = bench or get_bench()
    rec_model = _Recompute(bench)
    src = bench.vocabs.source_lang
    en = bench.vocabs.ids(src).tolist()
    targets = {lang: set(bench.vocabs.ids(lang).tolist()) for lang in bench.vocabs.languages}
    seen = {"synonyms": 0, "translations": 0}

    def prop(c: dict[str, Any]) -> None:
        cfg, enc, recs = _run_cs(impl, bench, c)
        check_records(recs, enc, cfg, bench)
        for rec in recs:
            for p, orig, new, prob, tag in rec["substitutions"]:
                if tag != cs_mod.SYNONYM_TAG:
                    seen["translations"] += 1
                    require(new in targets[rec["lang"]],
                             f"a substitution tagged {tag!r} took {new} ({_piece(bench, new)!r}), "
                             f"outside the {rec['lang']} set")
                    require(prob >= cfg.threshold, "translation probability {} below the "
                            "translation threshold {}".format(*fmt(prob, cfg.threshold)))
                    continue
                seen["synonyms"] += 1
                require(cfg.synonyms, f"a source-language synonym substitution ({orig} -> {new} "
                                       f"at position {p}) happened with synonyms off")
                require(new in en and new != orig,
                         f"synonym {new} ({_piece(bench, new)!r}) is not a different id of the "
                         f"English set")
                require(prob >= cfg.synonym_threshold,
                         "synonym probability {} below the synonym threshold {}".format(
                             *fmt(prob, cfg.synonym_threshold)))
                ids, probs = rec_model.probs(rec, p, src, cfg.normalize)
                want = float(probs[ids.index(new)])
                require(abs(prob - want) <= TOL,
                         "synonym probability {} differs from the model's English-set "
                         "probability {}".format(*fmt(prob, want)))
                others = probs.clone()
                if orig in ids:
                    others[ids.index(orig)] = -1.0
                require(float(others.max()) - want <= 1e-6,
                         f"synonym {new} is not the model's arg-max over the English set "
                         "without the original")
            _synonyms_complete(rec, cfg, rec_model, src, seen)

    run = explore("synonym option off/on", prop, _cs_cases(bench, synonyms=None), seed=seed,
                  max_examples=max_examples)
    extra = None
    probe: dict[str, Any] = {}
    if run.failure is None:
        enc = bench.pairs[:6]
        lang = bench.vocabs.languages[:1]

        def count(cfg) -> tuple[int, int]:
            recs = impl(bench.mlm, bench.tokenizer, enc, bench.vocabs, cfg)
            tags = [s[4] for r in recs for s in r["substitutions"]]
            return (sum(t == cs_mod.SYNONYM_TAG for t in tags),
                    sum(t != cs_mod.SYNONYM_TAG for t in tags))

        default_off = not cs_mod.CodeSwitchConfig().synonyms
        only_syn = count(_cs_config(threshold=1.5, languages=lang, max_ratio=1.0, synonyms=True,
                                    synonym_threshold=0.0))
        only_tr = count(_cs_config(threshold=0.0, languages=lang, max_ratio=1.0, synonyms=True,
                                   synonym_threshold=1.5))
        # "off" at a synonym threshold the model reaches (0) and no translations (threshold
        # above 1): the same setting with the option on substitutes synonyms, so on and off differ
        off = count(_cs_config(threshold=1.5, languages=lang, max_ratio=1.0, synonyms=False,
                               synonym_threshold=0.0))
        excluded = _original_excluded(impl, bench, lang)
        probe = {"default_off": default_off, "translation_off_synonym_on": only_syn,
                 "translation_on_synonym_off": only_tr, "synonyms_off": off,
                 "original_excluded": excluded}
        if not default_off:
            extra = "the synonym option is on by default (the seed marks C5 unverified)"
        elif only_syn[0] == 0:
            extra = ("the synonym threshold is not its own: with synonym_threshold=0 and the "
                     f"translation threshold above 1 no synonym substitution happened {only_syn}")
        elif only_tr[0] != 0 or only_tr[1] == 0:
            extra = ("the synonym threshold is not its own: with synonym_threshold above 1 and "
                     f"translation threshold 0, (synonyms, translations) = {only_tr}")
        elif off[0] != 0:
            extra = (f"synonym substitutions happened with synonyms off (synonym threshold 0, "
                     f"translation threshold above 1): (synonyms, translations) = {off}")
        elif excluded is not None:
            extra = excluded
    inconclusive = None if seen["synonyms"] else "no synonym substitution happened in any example"
    return verdict(
        "C5", f"the option behaves as specified: with synonyms off no 'en-syn' substitution "
        f"happened; with it on, {seen['synonyms']} synonym substitutions came from the English "
        "set, differed from the original, matched the model's arg-max and probability and "
        "cleared synonym_threshold, while translations cleared the translation threshold; probes "
        f"on 6 pairs (synonyms, translations): translation threshold >1 with synonym threshold 0 "
        f"-> {probe.get('translation_off_synonym_on')}, translation threshold 0 with synonym "
        f"threshold >1 -> {probe.get('translation_on_synonym_off')}, so the two thresholds act "
        f"independently; the first setting with the option off -> {probe.get('synonyms_off')}, "
        "so on and off differ where the model reaches the synonym threshold", [run], bench,
        extra_failure=extra, inconclusive=inconclusive,
        details={**seen, "probe": probe},
        notes=["This verifies the option, not the seed's claim (marked NOT verified there): "
               "the option is off by default (CodeSwitchConfig.synonyms=False)."])


# ----------------------------------------------------------------------------- C2


def swap_mlm_head(model, seed: int):
    """A copy of a masked LM whose head (everything but the tied decoder weight) is redrawn."""
    other = copy.deepcopy(model)
    decoder = other.get_output_embeddings()
    heads = [ch for ch in other.children()
             if ch is not other.base_model and any(m is decoder for m in ch.modules())]
    if decoder is None or not heads:
        raise ValueError(f"{type(model).__name__}: no MLM head around the output embedding")
    head = heads[0]
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in head.parameters():
            if p is decoder.weight:
                continue
            p.copy_(float(p.mean()) + 0.1 * torch.randn(p.shape, generator=g))
    return other.eval()


@contextlib.contextmanager
def record_file_access() -> Iterator[list[str]]:
    """Record the paths opened through open/io.open/os.open/pathlib while the block runs."""
    paths: list[str] = []
    real = {"open": builtins.open, "io_open": io.open, "os_open": os.open,
            "p_open": pathlib.Path.open, "read_text": pathlib.Path.read_text,
            "read_bytes": pathlib.Path.read_bytes}

    def note(target: Any) -> None:
        if isinstance(target, (str, bytes, os.PathLike)):
            paths.append(os.fsdecode(target))

    def b_open(file, *a, **k):
        note(file)
        return real["open"](file, *a, **k)

    def i_open(file, *a, **k):
        note(file)
        return real["io_open"](file, *a, **k)

    def o_open(file, *a, **k):
        note(file)
        return real["os_open"](file, *a, **k)

    def p_open(self, *a, **k):
        note(self)
        return real["p_open"](self, *a, **k)

    def read_text(self, *a, **k):
        note(self)
        return real["read_text"](self, *a, **k)

    def read_bytes(self, *a, **k):
        note(self)
        return real["read_bytes"](self, *a, **k)

    builtins.open, io.open, os.open = b_open, i_open, o_open
    pathlib.Path.open, pathlib.Path.read_text, pathlib.Path.read_bytes = p_open, read_text, read_bytes
    try:
        yield paths
    finally:
        builtins.open, io.open, os.open = real["open"], real["io_open"], real["os_open"]
        pathlib.Path.open = real["p_open"]
        pathlib.Path.read_text = real["read_text"]
        pathlib.Path.read_bytes = real["read_bytes"]


def _is_dictionary(path: str) -> bool:
    low = path.replace("\\", "/").lower()
    return "/muse/" in low or low.endswith(".dict") or "muse" in Path(low).name


@checked
def check_c2(impl: CodeSwitcher | None = None, *, seed: int = 0, max_examples: int = 25,
             bench: Bench | None = None) -> dict[str, Any]:
    """C2 (mechanism): code-switching is distilled from the model's own MLM head (redrawing the
    head changes the substitutions) and reads no dictionary (file access is recorded during the
    call). Translation quality is measured elsewhere (code-switch statistics)."""
    impl = impl or default_code_switch
    bench = bench or get_bench()
    opened: set[str] = set()

    @st.composite
    def cases(draw) -> dict[str, Any]:
        return {"inputs": draw(st.lists(st.integers(0, len(bench.pairs) - 1), min_size=1,
                                        max_size=3)),
                "head_seed": draw(st.integers(0, 2**31 - 1)),
                "languages": tuple(draw(st.lists(st.sampled_from(bench.vocabs.languages),
                                                 min_size=1, max_size=3, unique=True)))}

    def prop(c: dict[str, Any]) -> None:
        case = {"inputs": c["inputs"], "threshold": 0.0, "normalize": "target",
                "languages": c["languages"], "copies": 1, "max_ratio": 1.0,
                "candidate": "single_word", "synonyms": False, "synonym_threshold": 0.5}
        with record_file_access() as paths:
            _, _, recs = _run_cs(impl, bench, case)
        opened.update(paths)
        dicts = [p for p in paths if _is_dictionary(p)]
        require(not dicts, f"the code-switcher read a dictionary during code-switching: {dicts[:3]}")
        _, _, other = _run_cs(impl, bench, case, model=swap_mlm_head(bench.mlm, c["head_seed"]))
        n_cands = sum(len(r["candidates"]) for r in recs)
        mine = [[s[:3] for s in r["substitutions"]] for r in recs]
        theirs = [[s[:3] for s in r["substitutions"]] for r in other]
        require(n_cands == 0 or mine != theirs,
                 f"substitutions did not change when the MLM head was redrawn (seed "
                 f"{c['head_seed']}): code-switching is not driven by the model's own MLM head")

    run = explore("driven by the model's MLM head, no dictionary", prop, cases(), seed=seed,
                  max_examples=max_examples)
    return verdict(
        "C2", "the substitutions come from the model's own MLM head (redrawing the head's "
        "transform and bias changed them in every example, at threshold 0) and the code-switch "
        f"call opened no dictionary file (paths opened: {sorted(opened)[:5] or 'none'})", [run],
        bench, details={"opened": sorted(opened)},
        notes=["This checks the mechanism only: whether the distilled pairs are real translations "
               "is measured elsewhere (salt.codeswitch.codeswitch_stats against MUSE, evaluation "
               "only, on the pipeline's model; see design.md section 5). C4 checks that each "
               "substitute is the model's restricted arg-max."])


