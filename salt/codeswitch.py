"""Offline code-switching by the model's own MLM head (SALT's first self-augmentation).

Definition (``code_switch_reference``): for every candidate position of an English pair, run one
forward pass with only that position replaced by the mask token; restrict the MLM logits at that
position to the target language's sub-word set (``salt.vocab``); if the arg-max's probability
(renormalised over the set, or the full-vocabulary softmax restricted: ``normalize``) is at least
``threshold``, substitute it. At most ``max_ratio`` of a pair's candidates are switched, highest
probability first. No dictionary and no parallel text are used.

Fast path (``code_switch``): the same substitutions, computed by batching many single-masked
copies (one per candidate, across sentences) into one forward pass of the encoder only, gathering
the hidden states at the masked positions and applying the MLM head to those rows alone, with the
decoder restricted to the target ids: (M, H) @ (H, |V_L|). The hidden state of a masked position
does not depend on the target language, so one pass serves every language an example is switched
into. ``multi_mask_stride=k`` is an explicit approximation that masks candidates k apart together.

Input mode (``CodeSwitchConfig.input``): "masked" is the definition above. "unmasked" serves a head
that reads a token's own contextual state (``salt.mlm_head`` ``objective="prototype"``, whose
``mlm_head.json`` says ``"input": "unmasked"``; see ``input_mode_for``): no mask token, the head is
applied at every candidate's hidden state of the unmodified sentence. Everything after the head
(target restriction, normalisation, threshold, max_ratio, synonyms, records) is the same. The
reference then runs one full forward per (sentence, candidate), the fast path one encoder pass
per sentence with the head at the gathered candidate rows.

Output: one self-describing record per (example, copy); see ``code_switch``. Evaluation-only
statistics (``codeswitch_stats``) are the only code here that reads a bilingual dictionary.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from salt.encoding import Encoded
from salt.mlm_head import REPORT_FILE as HEAD_REPORT_FILE
from salt.vocab import LanguageVocabs, PieceScheme, detect_scheme, special_ids

RECORD_FORMAT = "salt-codeswitch/1"
SYNONYM_TAG = "en-syn"
RECORD_KEYS = ("uid", "copy", "lang", "input_ids", "cs_input_ids", "token_type_ids", "label",
               "candidates", "substitutions")
NORMALIZE = ("target", "full")
ASSIGNMENT = ("round_robin", "each")
CANDIDATE = ("single_word", "word_start", "any")
INPUT = ("masked", "unmasked")


class CodeSwitchError(ValueError):
    """Bad configuration, input or output file; the message names what and where."""


@dataclass(frozen=True)
class CodeSwitchConfig:
    """Parameters of offline code-switching; every one is recorded next to the output.

    threshold: probability the arg-max substitute needs (>= threshold); above 1 disables.
    normalize: "target" = softmax over the target set's logits (default: probabilities comparable
        across languages and vocabulary sizes); "full" = full-vocabulary softmax, then restricted.
    languages: target languages; empty = every target language of the vocabularies.
    assignment: "round_robin" (copy c of example i goes to languages[(i + c) % n]) or "each"
        (one copy per language; ``copies`` must then be 1).
    copies: copies per example under round_robin.
    max_ratio: at most floor(max_ratio * #candidates) positions switched per pair, highest
        probability first (ties: earlier position).
    candidate: which positions may change. Never special tokens or digit/punctuation pieces;
        "single_word" (default) = a word-start piece whose next piece is not a continuation,
        "word_start" = any word-start piece, "any" = any other piece.
    synonyms / synonym_threshold: optional source-language synonym substitution (the seed's
        unverified C5): at a candidate without a target substitute, the arg-max over the source
        set excluding the original id, normalised like the target, substituted when >=
        synonym_threshold; tagged "en-syn". Off by default.
    batch_size: sequences per forward pass (fast path): masked copies, or sentences when
        ``input="unmasked"``.
    seed: recorded for provenance and used to seed torch; the procedure itself is deterministic.
    multi_mask_stride: None = exact (one masked position per copy); k = approximation masking
        the candidates p with equal p % k together in one copy.
    bf16: run the encoder under bf16 autocast (fast path only; the head stays fp32).
    input: "masked" (the definition: one masked candidate per pass) or "unmasked" (no mask
        token: the head reads each candidate's state in the unmodified sentence; for heads
        trained that way, see ``input_mode_for``). ``multi_mask_stride`` needs "masked".
    """

    threshold: float = 0.3
    normalize: str = "target"
    languages: tuple[str, ...] = ()
    assignment: str = "round_robin"
    copies: int = 1
    max_ratio: float = 0.5
    candidate: str = "single_word"
    synonyms: bool = False
    synonym_threshold: float = 0.5
    batch_size: int = 64
    seed: int = 0
    multi_mask_stride: int | None = None
    bf16: bool = False
    input: str = "masked"

    def check(self) -> None:
        if math.isnan(self.threshold) or math.isnan(self.synonym_threshold):
            raise CodeSwitchError("threshold / synonym_threshold: must be numbers, got NaN")
        if self.normalize not in NORMALIZE:
            raise CodeSwitchError(f"normalize: {self.normalize!r}; use one of {NORMALIZE}")
        if self.assignment not in ASSIGNMENT:
            raise CodeSwitchError(f"assignment: {self.assignment!r}; use one of {ASSIGNMENT}")
        if self.candidate not in CANDIDATE:
            raise CodeSwitchError(f"candidate: {self.candidate!r}; use one of {CANDIDATE}")
        if self.copies < 1:
            raise CodeSwitchError(f"copies: must be >= 1, got {self.copies}")
        if self.assignment == "each" and self.copies != 1:
            raise CodeSwitchError("copies: must be 1 with assignment='each' (one copy per language)")
        if not 0.0 <= self.max_ratio <= 1.0:
            raise CodeSwitchError(f"max_ratio: must be in [0, 1], got {self.max_ratio}")
        if self.batch_size < 1:
            raise CodeSwitchError(f"batch_size: must be >= 1, got {self.batch_size}")
        if self.multi_mask_stride is not None and self.multi_mask_stride < 1:
            raise CodeSwitchError(f"multi_mask_stride: must be >= 1 or None, "
                                  f"got {self.multi_mask_stride}")
        if self.input not in INPUT:
            raise CodeSwitchError(f"input: {self.input!r}; use one of {INPUT}")
        if self.input == "unmasked" and self.multi_mask_stride is not None:
            raise CodeSwitchError("multi_mask_stride: approximates masked input; it must be None "
                                  "with input='unmasked'")
        if len(set(self.languages)) != len(self.languages):
            raise CodeSwitchError(f"languages: duplicates in {list(self.languages)}")

    def resolved(self, vocabs: LanguageVocabs) -> CodeSwitchConfig:
        """Checked copy with ``languages`` filled in and validated against the vocabularies."""
        self.check()
        langs = tuple(self.languages) or vocabs.languages
        if not langs:
            raise CodeSwitchError("languages: the vocabularies have no target language")
        for lang in langs:
            if lang not in vocabs.languages:
                raise CodeSwitchError(f"languages: no target vocabulary for {lang!r}; "
                                      f"have {list(vocabs.languages)}")
        return CodeSwitchConfig(**{**asdict(self), "languages": tuple(langs)})


# ----------------------------------------------------------------------------- planning


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


# ----------------------------------------------------------------------------- the model


class _Stop(Exception):
    """Raised by a hook to stop the head before its full-vocabulary decoder."""


class MaskedLMScorer:
    """A masked LM split into encoder and head, so the head runs on gathered rows only and its
    decoder only over the requested ids. Works for heads whose last step is the output-embedding
    Linear (BERT, XLM-R); otherwise it falls back to full logits (checked at construction).
    Subclass and override ``encode`` / ``features`` / ``logits`` for other models (e.g. a head
    over a pruned vocabulary that needs an id map).

    ``row_offsets[lang]`` (H,) is added to a candidate's hidden state before the head when
    predicting into ``lang`` (language-mean centring, ``salt.mlm_head`` ``centre="mean"``:
    offset ``mu_src - mu_L``); the reference path knows nothing of it.
    """

    def __init__(self, model: PreTrainedModel,
                 row_offsets: Mapping[str, torch.Tensor] | None = None):
        self.model = model
        self.base = model.base_model
        self.decoder = model.get_output_embeddings()
        self.head = self._find_head()
        self.split = self.head is not None and self._check_split()
        self.row_offsets = dict(row_offsets or {})
        if self.row_offsets and not self.split:
            raise CodeSwitchError("row_offsets need a head that splits off its decoder")

    def _find_head(self) -> nn.Module | None:
        if not isinstance(self.decoder, nn.Linear) or self.base is self.model:
            return None
        for child in self.model.children():
            if child is not self.base and any(m is self.decoder for m in child.modules()):
                return child
        return None

    def _check_split(self) -> bool:
        h = self.model.config.hidden_size
        p = next(self.model.parameters())
        x = torch.randn(3, h, generator=torch.Generator().manual_seed(0)).to(p.device, p.dtype)
        with torch.inference_mode():
            try:
                full = self.head(x)
                feats = self._decoder_input(x)
            except Exception:  # any head we cannot split falls back to full logits
                return False
            mine = feats @ self.decoder.weight.T
            if self.decoder.bias is not None:
                mine = mine + self.decoder.bias
        return full.shape == mine.shape and torch.allclose(full, mine, rtol=1e-4, atol=1e-5)

    def _decoder_input(self, rows: torch.Tensor) -> torch.Tensor:
        got: dict[str, torch.Tensor] = {}

        def hook(_mod: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            got["x"] = args[0]
            raise _Stop

        handle = self.decoder.register_forward_pre_hook(hook)
        try:
            self.head(rows)
        except _Stop:
            pass
        finally:
            handle.remove()
        if "x" not in got:
            raise RuntimeError("the MLM head never called its output embedding")
        return got["x"]

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               token_type_ids: torch.Tensor | None) -> torch.Tensor:
        """Hidden states (B, T, H) of the encoder (or full logits (B, T, V) without a split)."""
        kw: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids
        if not self.split:
            return self.model(**kw).logits
        return self.base(**kw)[0]

    def features(self, rows: torch.Tensor, lang: str | None = None) -> torch.Tensor:
        """Head transform of gathered rows: (M, H) -> (M, F), the decoder's input (rows shifted
        by ``row_offsets[lang]`` first, when there is one)."""
        if not self.split:
            return rows
        rows = rows.to(self.decoder.weight.dtype)
        if lang in self.row_offsets:
            rows = rows + self.row_offsets[lang].to(rows)  # (M, H) + (H,)
        return self._decoder_input(rows)

    def logits(self, feats: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder logits over ``ids`` only: (M, F) @ (F, |ids|) -> (M, |ids|); all if None."""
        if not self.split:
            return feats if ids is None else feats[:, ids]
        w = self.decoder.weight if ids is None else self.decoder.weight[ids]  # (|ids|, F)
        out = feats @ w.T  # (M, |ids|)
        if self.decoder.bias is not None:
            out = out + (self.decoder.bias if ids is None else self.decoder.bias[ids])
        return out


def restricted_probs(logits_sub: torch.Tensor, normalize: str,
                     full_lse: torch.Tensor | None = None) -> torch.Tensor:
    """Probabilities over a sub-vocabulary (M, |V_L|): renormalised over it ("target") or the
    full-vocabulary softmax restricted to it ("full", needs the full log-normaliser (M,))."""
    logits_sub = logits_sub.float()
    if normalize == "target":
        return torch.softmax(logits_sub, dim=-1)
    assert full_lse is not None
    return torch.exp(logits_sub - full_lse.float()[:, None])


# ----------------------------------------------------------------------------- shared assembly


@dataclass
class _Ctx:
    """What both paths share: resolved config, per-example candidates, plans and id sets."""

    cfg: CodeSwitchConfig
    encoded: Sequence[Encoded]
    cands: list[list[int]]
    plans: list[list[tuple[int, str]]]
    lang_ids: dict[str, torch.Tensor]
    source_lang: str
    mask_id: int
    pad_id: int
    extra: dict[str, Any] = field(default_factory=dict)

    def needed(self, i: int) -> list[str]:
        """Vocabularies example i is predicted over (its copies' languages, + source for synonyms)."""
        langs = sorted({lang for _, lang in self.plans[i]})
        if self.cfg.synonyms:
            langs.append(self.source_lang)
        return langs


def _context(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
             encoded: Sequence[Encoded], vocabs: LanguageVocabs,
             config: CodeSwitchConfig | None) -> _Ctx:
    cfg = (config or CodeSwitchConfig()).resolved(vocabs)
    if tokenizer.pad_token_id is None:
        raise CodeSwitchError("the tokenizer needs a pad token")
    if cfg.input == "masked" and tokenizer.mask_token_id is None:
        raise CodeSwitchError("the tokenizer needs a mask token for input='masked'")
    uids = [e.uid for e in encoded]
    if len(set(uids)) != len(uids):
        dup = next(u for u, c in Counter(uids).items() if c > 1)
        raise CodeSwitchError(f"duplicate uid {dup!r} in the input: records are keyed by uid")
    n_out = model.get_output_embeddings()
    v_model = n_out.weight.shape[0] if n_out is not None else model.config.vocab_size
    scheme = PieceScheme(vocabs.rule.scheme) if vocabs.rule.scheme else detect_scheme(tokenizer)
    specials = special_ids(tokenizer)
    langs = list(cfg.languages) + ([vocabs.source_lang] if cfg.synonyms else [])
    lang_ids = {}
    for lang in langs:
        ids = vocabs.ids(lang)
        if ids.numel() == 0:
            raise CodeSwitchError(f"the vocabulary of {lang!r} is empty")
        if int(ids.max()) >= v_model:
            raise CodeSwitchError(f"vocabulary of {lang!r} has id {int(ids.max())} but the model "
                                  f"predicts only {v_model} ids")
        lang_ids[lang] = ids
    cands = []
    for e in encoded:
        pieces = tokenizer.convert_ids_to_tokens(list(e.input_ids))
        cands.append(candidate_positions(pieces, [t in specials for t in e.input_ids], scheme,
                                         cfg.candidate))
    plans = plan_copies(len(encoded), cfg.languages, cfg.assignment, cfg.copies)
    mask_id = -1 if tokenizer.mask_token_id is None else int(tokenizer.mask_token_id)  # -1: unused
    return _Ctx(cfg, encoded, cands, plans, lang_ids, vocabs.source_lang, mask_id,
                int(tokenizer.pad_token_id))


# predictions[(i, position, lang)] = (best id, its probability); lang = source for synonyms
Predictions = dict[tuple[int, int, str], tuple[int, float]]


def _best(probs: torch.Tensor, ids: torch.Tensor, exclude: torch.Tensor | None = None
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Arg-max id and probability per row of probs (M, |V|); ``exclude`` (M,) ids not allowed."""
    if exclude is not None:
        hit = ids[None, :] == exclude[:, None]  # (M, |V|)
        probs = probs.masked_fill(hit, -1.0)
    p, k = probs.max(dim=-1)  # (M,), (M,)
    return ids[k], p


def _assemble(ctx: _Ctx, idx: Iterable[int], preds: Predictions) -> list[dict[str, Any]]:
    """Records for examples ``idx``: threshold, synonym fallback, max_ratio cap."""
    cfg = ctx.cfg
    out = []
    for i in idx:
        e = ctx.encoded[i]
        cands = ctx.cands[i]
        limit = math.floor(cfg.max_ratio * len(cands) + 1e-9)
        for c, lang in ctx.plans[i]:
            props = []
            for p in cands:
                orig = int(e.input_ids[p])
                new, prob = preds[(i, p, lang)]
                if prob >= cfg.threshold and new != orig:
                    props.append([p, orig, new, prob, lang])
                elif cfg.synonyms:
                    new, prob = preds[(i, p, ctx.source_lang)]
                    if prob >= cfg.synonym_threshold and new != orig:
                        props.append([p, orig, new, prob, SYNONYM_TAG])
            props.sort(key=lambda s: (-s[3], s[0]))
            subs = sorted(props[:limit], key=lambda s: s[0])
            cs = list(e.input_ids)
            for p, _, new, _, _ in subs:
                cs[p] = new
            out.append({
                "uid": e.uid, "copy": c, "lang": lang, "input_ids": list(e.input_ids),
                "cs_input_ids": cs,
                "token_type_ids": list(e.token_type_ids) if e.token_type_ids is not None else None,
                "label": int(e.label), "candidates": list(cands), "substitutions": subs,
            })
    return out


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


# ----------------------------------------------------------------------------- reference path


def _reference_predictions(model: PreTrainedModel, ctx: _Ctx, idx: Iterable[int]) -> Predictions:
    """The definition: one forward pass of the whole masked LM per candidate position, fp32,
    with that position masked (``input="masked"``) or the sentence unmodified ("unmasked")."""
    dev = _device(model)
    masked = ctx.cfg.input == "masked"
    preds: Predictions = {}
    for i in idx:
        e = ctx.encoded[i]
        needed = ctx.needed(i)
        for p in ctx.cands[i]:
            ids = torch.tensor([e.input_ids], dtype=torch.long, device=dev)  # (1, T)
            if masked:
                ids[0, p] = ctx.mask_id
            kw: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            if e.token_type_ids is not None:
                kw["token_type_ids"] = torch.tensor([e.token_type_ids], device=dev)
            logits = model(**kw).logits[0, p].float()  # (V,)
            full_lse = torch.logsumexp(logits, -1)[None]  # (1,)
            for lang in needed:
                lids = ctx.lang_ids[lang].to(dev)
                probs = restricted_probs(logits[lids][None], ctx.cfg.normalize, full_lse)
                excl = None
                if lang == ctx.source_lang and ctx.cfg.synonyms:
                    excl = torch.tensor([e.input_ids[p]], device=dev)
                new, prob = _best(probs, lids, excl)
                preds[(i, p, lang)] = (int(new[0]), float(prob[0]))
    return preds


def code_switch_reference(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                          encoded: Sequence[Encoded], vocabs: LanguageVocabs,
                          config: CodeSwitchConfig | None = None) -> list[dict[str, Any]]:
    """Code-switch by the definition (one full forward pass per candidate position, masked or,
    with ``input="unmasked"``, not). Slow; for tests and benchmarks. Ignores
    ``multi_mask_stride``, ``batch_size`` and ``bf16``."""
    ctx = _context(model, tokenizer, encoded, vocabs, config)
    was = model.training
    model.eval()
    torch.manual_seed(ctx.cfg.seed)
    try:
        with torch.inference_mode():
            preds = _reference_predictions(model, ctx, range(len(encoded)))
    finally:
        model.train(was)
    return _assemble(ctx, range(len(encoded)), preds)


# ----------------------------------------------------------------------------- fast path


def _full_lse(scorer: MaskedLMScorer, feats: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary log-normaliser per row: (M, F) -> (M,)."""
    return torch.logsumexp(scorer.logits(feats).float(), dim=-1)


def _fast_predictions(scorer: MaskedLMScorer, ctx: _Ctx, idx: Sequence[int],
                      dev: torch.device) -> Predictions:
    """Batched sequences, encoder once per sequence, head on the candidate rows only. A job
    (example, positions) is one sequence: a copy with those positions masked ("masked"), or
    the unmodified sentence with all its candidates read off one pass ("unmasked")."""
    cfg = ctx.cfg
    masked = cfg.input == "masked"
    if masked:
        jobs = [(i, g) for i in idx for g in mask_groups(ctx.cands[i], cfg.multi_mask_stride)]
    else:
        jobs = [(i, tuple(ctx.cands[i])) for i in idx if ctx.cands[i]]
    jobs.sort(key=lambda j: (len(ctx.encoded[j[0]].input_ids), j[0], j[1][0]))
    lang_ids = {lang: ids.to(dev) for lang, ids in ctx.lang_ids.items()}
    preds: Predictions = {}
    for b in range(0, len(jobs), cfg.batch_size):
        batch = jobs[b : b + cfg.batch_size]
        width = max(len(ctx.encoded[i].input_ids) for i, _ in batch)
        ids = torch.full((len(batch), width), ctx.pad_id, dtype=torch.long)  # (B, T)
        att = torch.zeros((len(batch), width), dtype=torch.long)  # (B, T)
        has_types = ctx.encoded[batch[0][0]].token_type_ids is not None
        types = torch.zeros((len(batch), width), dtype=torch.long) if has_types else None
        rows_b, rows_t, rows_i = [], [], []
        for r, (i, group) in enumerate(batch):
            e = ctx.encoded[i]
            n = len(e.input_ids)
            ids[r, :n] = torch.as_tensor(e.input_ids)
            att[r, :n] = 1
            if types is not None:
                types[r, :n] = torch.as_tensor(e.token_type_ids)
            for p in group:
                if masked:
                    ids[r, p] = ctx.mask_id
                rows_b.append(r)
                rows_t.append(p)
                rows_i.append(i)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            hidden = scorer.encode(ids.to(dev), att.to(dev),
                                   None if types is None else types.to(dev))  # (B, T, H)
        rows = hidden[torch.tensor(rows_b, device=dev), torch.tensor(rows_t, device=dev)]  # (M, H)
        rows = rows.float()
        by_lang: dict[str, list[int]] = defaultdict(list)
        for m, i in enumerate(rows_i):
            for lang in ctx.needed(i):
                by_lang[lang].append(m)
        shared: tuple[torch.Tensor, torch.Tensor | None] | None = None  # languages w/o offset
        for lang, ms in by_lang.items():
            sel = torch.tensor(ms, device=dev)
            if lang in scorer.row_offsets:
                feats = scorer.features(rows[sel], lang)  # (m, F)
                lse = _full_lse(scorer, feats) if cfg.normalize == "full" else None  # (m,)
            else:
                if shared is None:
                    f = scorer.features(rows)  # (M, F): once for every language
                    shared = (f, _full_lse(scorer, f) if cfg.normalize == "full" else None)
                feats = shared[0][sel]
                lse = None if shared[1] is None else shared[1][sel]
            lids = lang_ids[lang]
            probs = restricted_probs(scorer.logits(feats, lids), cfg.normalize, lse)  # (m, |V_L|)
            excl = None
            if lang == ctx.source_lang and cfg.synonyms:
                excl = torch.tensor([ctx.encoded[rows_i[m]].input_ids[rows_t[m]] for m in ms],
                                    device=dev)
            new, prob = _best(probs, lids, excl)
            for k, m in enumerate(ms):
                preds[(rows_i[m], rows_t[m], lang)] = (int(new[k]), float(prob[k]))
    return preds


def _config_digest(meta: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]


def _inputs_digest(encoded: Sequence[Encoded]) -> str:
    h = hashlib.sha256()
    for e in encoded:
        h.update(json.dumps([e.uid, list(e.input_ids), e.token_type_ids, e.label]).encode())
    return h.hexdigest()[:16]


def _meta(ctx: _Ctx, vocabs: LanguageVocabs, model: PreTrainedModel) -> dict[str, Any]:
    """What the output depends on; a resumed run must match it (batch_size excluded). The input
    mode is also a top-level key, checked before "config" so a refusal names it."""
    cfg = asdict(ctx.cfg)
    cfg.pop("batch_size")
    cfg["languages"] = list(cfg["languages"])
    return {
        "format": RECORD_FORMAT,
        "input": ctx.cfg.input,
        "config": cfg,
        "vocab_rule": asdict(vocabs.rule),
        "vocab_digests": {lang: vocabs.digest(lang) for lang in ctx.lang_ids},
        "model": str(getattr(model.config, "_name_or_path", "")),
        "inputs": {"n": len(ctx.encoded), "digest": _inputs_digest(ctx.encoded)},
    }


def meta_path(out_path: str | Path) -> Path:
    """The sidecar that records the configuration behind a records file."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".meta.json")


def _resume(out: Path, ctx: _Ctx, meta: dict[str, Any]) -> set[str]:
    """Check the sidecar, repair a torn tail, return uids whose copies are all written."""
    side = meta_path(out)
    if not out.exists():
        side.write_text(json.dumps(meta, indent=1, ensure_ascii=False))
        return set()
    if not side.is_file():
        raise CodeSwitchError(f"{out}: exists but its sidecar {side.name} does not; "
                              "cannot tell what produced it (delete it or choose another path)")
    try:
        old = json.loads(side.read_text())
    except json.JSONDecodeError as err:
        raise CodeSwitchError(f"{side}: not valid JSON ({err})") from None
    if isinstance(old, dict):  # sidecars from before the input mode were all masked
        old.setdefault("input", "masked")
        if isinstance(old.get("config"), dict):
            old["config"].setdefault("input", "masked")
    for key in meta:
        if old.get(key) != meta[key]:
            raise CodeSwitchError(f"{out}: written with a different {key!r} "
                                  f"({old.get(key)!r} vs now {meta[key]!r}); "
                                  "use another out_path or delete the file")
    raw = out.read_bytes()
    good_end = raw.rfind(b"\n") + 1  # a line without its newline is a torn write
    starts: dict[str, int] = {}
    count: Counter[str] = Counter()
    expect = {e.uid: len(ctx.plans[i]) for i, e in enumerate(ctx.encoded)}
    pos = 0
    for lineno, line in enumerate(raw[:good_end].split(b"\n")[:-1], start=1):
        rec = _parse_line(line.decode("utf-8", errors="strict"), out, lineno)
        uid = rec["uid"]
        if uid not in expect:
            raise CodeSwitchError(f"{out}:{lineno}: uid {uid!r} is not in the input")
        starts.setdefault(uid, pos)
        count[uid] += 1
        pos += len(line) + 1
    incomplete = [u for u in count if count[u] < expect[u]]
    cut = min((starts[u] for u in incomplete), default=good_end)
    if cut < len(raw):
        with open(out, "r+b") as f:
            f.truncate(cut)
    return {u for u in count if count[u] >= expect[u] and starts[u] < cut}


def input_mode_for(model_dir: str | Path) -> str:
    """The input mode a model folder's MLM head expects: the ``"input"`` of its
    ``mlm_head.json`` ("masked" when the file or the key is absent)."""
    path = Path(model_dir) / HEAD_REPORT_FILE
    if not path.is_file():
        return "masked"
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CodeSwitchError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(report, dict):
        raise CodeSwitchError(f"{path}: expected a JSON object, got {type(report).__name__}")
    mode = report.get("input", "masked")
    if mode not in INPUT:
        raise CodeSwitchError(f"{path}: \"input\" is {mode!r}; expected one of {INPUT}")
    return mode


def code_switch(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                encoded: Sequence[Encoded], vocabs: LanguageVocabs,
                config: CodeSwitchConfig | None = None, *, out_path: str | Path | None = None,
                chunk_size: int = 256, progress: bool = True,
                scorer: MaskedLMScorer | None = None,
                on_chunk: Callable[[int, int], None] | None = None,
                return_records: bool = True) -> list[dict[str, Any]]:
    """Code-switch ``encoded`` (fast path; same substitutions as the reference when
    ``multi_mask_stride`` is None, up to fp32 rounding).

    Returns one record per (example, copy), in input order:
    ``{"uid", "copy", "lang", "input_ids" (source), "cs_input_ids" (same length),
    "token_type_ids" (or None), "label", "candidates" (positions that could change),
    "substitutions": [[position, original_id, new_id, probability, lang or "en-syn"], ...]}``.

    With ``out_path``, records are appended chunk by chunk (``chunk_size`` examples) next to a
    ``.meta.json`` sidecar holding the configuration; a restarted call skips uids already
    written (a torn last chunk is cut off and redone) and returns the whole file's records.
    ``on_chunk(chunk_index, examples_done)`` runs after each chunk (e.g. to stop early).
    ``return_records=False`` (with ``out_path``) returns [] instead of reading the file back,
    for training sets too large to hold; stream them with ``iter_jsonl``.
    """
    ctx = _context(model, tokenizer, encoded, vocabs, config)
    scorer = scorer or MaskedLMScorer(model)
    dev = _device(model)
    done: set[str] = set()
    out = Path(out_path) if out_path is not None else None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        done = _resume(out, ctx, _meta(ctx, vocabs, model))
    was = model.training
    model.eval()
    torch.manual_seed(ctx.cfg.seed)
    records: list[dict[str, Any]] = []
    bar = tqdm(total=len(encoded), initial=len(done), disable=not progress, desc="code-switch",
               unit="ex")
    try:
        for k, start in enumerate(range(0, len(encoded), chunk_size)):
            idx = [i for i in range(start, min(start + chunk_size, len(encoded)))
                   if encoded[i].uid not in done]
            if not idx:
                continue
            with torch.inference_mode():
                preds = _fast_predictions(scorer, ctx, idx, dev)
            recs = _assemble(ctx, idx, preds)
            if out is not None:
                text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
                with open(out, "a", encoding="utf-8") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
            else:
                records.extend(recs)
            bar.update(len(idx))
            if on_chunk is not None:
                on_chunk(k, bar.n)
    finally:
        bar.close()
        model.train(was)
    if out is None:
        return records
    return read_jsonl(out) if return_records else []


# ----------------------------------------------------------------------------- JSONL


def _check_record(rec: Any, where: str) -> dict[str, Any]:
    """A record's keys, types and internal consistency; errors start with ``where``."""
    if not isinstance(rec, dict):
        raise CodeSwitchError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    missing = [k for k in RECORD_KEYS if k not in rec]
    if missing:
        raise CodeSwitchError(f"{where}: missing key(s) {missing}")
    src, cs = rec["input_ids"], rec["cs_input_ids"]
    if not isinstance(src, list) or not isinstance(cs, list) or len(src) != len(cs):
        raise CodeSwitchError(f"{where}: input_ids and cs_input_ids must be lists of one length")
    changed = {p for p, (a, b) in enumerate(zip(src, cs, strict=True)) if a != b}
    subs = rec["substitutions"]
    if not isinstance(subs, list):
        raise CodeSwitchError(f"{where}: substitutions must be a list")
    for s in subs:
        if not (isinstance(s, list) and len(s) == 5 and isinstance(s[0], int)
                and 0 <= s[0] < len(src)):
            raise CodeSwitchError(f"{where}: bad substitution {s!r} "
                                  "(want [position, original_id, new_id, probability, tag])")
        p, orig, new = s[0], s[1], s[2]
        if src[p] != orig or cs[p] != new:
            raise CodeSwitchError(f"{where}: substitution {s!r} disagrees with the id lists")
    if changed != {s[0] for s in subs}:
        raise CodeSwitchError(f"{where}: cs_input_ids changes positions "
                              f"{sorted(changed - {s[0] for s in subs})} without a substitution")
    return rec


def _parse_line(line: str, path: Path, lineno: int) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as err:
        raise CodeSwitchError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
    return _check_record(rec, f"{path}:{lineno}")


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write records one JSON object a line (overwrites)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for k, r in enumerate(records, start=1):
            _check_record(r, f"record {k}")
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Stream and check records; any bad line raises CodeSwitchError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise CodeSwitchError(f"{path}: no such records file")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                raise CodeSwitchError(f"{path}:{lineno}: empty line")
            yield _parse_line(line, path, lineno)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a file (see ``iter_jsonl``)."""
    return list(iter_jsonl(path))


# ----------------------------------------------------------------------------- evaluation only


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
                    "file": str(path), "translations": hits, "substitutions": total,
                    "share": hits / total if total else None,
                    "source_in_dictionary": known / total if total else None,
                }
        out[tag] = st
    return {"per_language": out, "n_records": len(records),
            "note": "dictionary shares are evaluation only; the method uses no dictionary"}


def benchmark(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
              encoded: Sequence[Encoded], vocabs: LanguageVocabs,
              config: CodeSwitchConfig | None = None) -> dict[str, Any]:
    """Time the reference and the fast path on the same input and compare their outputs."""
    t0 = time.perf_counter()
    ref = code_switch_reference(model, tokenizer, encoded, vocabs, config)
    t1 = time.perf_counter()
    fast = code_switch(model, tokenizer, encoded, vocabs, config, progress=False)
    t2 = time.perf_counter()

    def key(recs: list[dict[str, Any]]) -> list[Any]:
        return [(r["uid"], r["copy"], [s[:3] + s[4:] for s in r["substitutions"]]) for r in recs]

    return {"reference_s": t1 - t0, "fast_s": t2 - t1, "speedup": (t1 - t0) / max(t2 - t1, 1e-9),
            "masked_positions": sum(len(r["candidates"]) for r in ref if r["copy"] == 0),
            "identical": key(ref) == key(fast),
            "max_prob_diff": max((abs(a[3] - b[3]) for r, q in zip(ref, fast, strict=True)
                                  for a, b in zip(r["substitutions"], q["substitutions"],
                                                      strict=False)),
                                 default=0.0)}
