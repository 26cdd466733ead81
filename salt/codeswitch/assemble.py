"""What the reference and the fast path share: the resolved context and the assembly of
predictions into records (threshold, synonym fallback, ``max_ratio`` cap)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from salt.codeswitch.config import (
    SYNONYM_TAG,
    CodeSwitchConfig,
    CodeSwitchError,
    Substitution,
)
from salt.codeswitch.planning import candidate_positions, plan_copies
from salt.encoding import Encoded
from salt.vocab import LanguageVocabs, PieceScheme, detect_scheme, special_ids


@dataclass
class SwitchContext:
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


def build_context(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
             encoded: Sequence[Encoded], vocabs: LanguageVocabs,
             config: CodeSwitchConfig | None) -> SwitchContext:
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
    return SwitchContext(cfg, encoded, cands, plans, lang_ids, vocabs.source_lang, mask_id,
                int(tokenizer.pad_token_id))


# predictions[(i, position, lang)] = (best id, its probability, renormalised over the
# set); lang = source for synonyms
Predictions = dict[tuple[int, int, str], tuple[int, float, float]]


def best(probs: torch.Tensor, ids: torch.Tensor, exclude: torch.Tensor | None = None
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Arg-max id, its probability and that probability renormalised over the set, per row of
    probs (M, |V|) (all (M,)); ``exclude`` (M,) ids not allowed."""
    total = probs.sum(dim=-1)  # (M,) mass of the whole set (1 for "target" probabilities)
    if exclude is not None:
        hit = ids[None, :] == exclude[:, None]  # (M, |V|)
        probs = probs.masked_fill(hit, -1.0)
    p, k = probs.max(dim=-1)  # (M,), (M,)
    return ids[k], p, p / total.clamp(min=1e-30)


def assemble(ctx: SwitchContext, idx: Iterable[int], preds: Predictions) -> list[dict[str, Any]]:
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
                new, prob, renorm = preds[(i, p, lang)]
                if prob >= cfg.threshold and new != orig:
                    props.append((Substitution(p, orig, new, prob, lang), renorm))
                elif cfg.synonyms:
                    new, prob, renorm = preds[(i, p, ctx.source_lang)]
                    if prob >= cfg.synonym_threshold and new != orig:
                        props.append((Substitution(p, orig, new, prob, SYNONYM_TAG), renorm))
            props.sort(key=lambda sr: (-sr[0].probability, sr[0].position))
            kept = sorted(props[:limit], key=lambda sr: sr[0].position)
            subs = [s for s, _ in kept]
            cs = list(e.input_ids)
            for p, _, new, _, _ in subs:
                cs[p] = new
            out.append({
                "uid": e.uid, "copy": c, "lang": lang, "input_ids": list(e.input_ids),
                "cs_input_ids": cs,
                "token_type_ids": list(e.token_type_ids) if e.token_type_ids is not None else None,
                "label": int(e.label), "candidates": list(cands), "substitutions": subs,
                # beside each substitution: its probability renormalised over the target set
                # (= "probability" under normalize="target"); proposals above the threshold
                # before the max_ratio cap (the cap bound when proposals > len(substitutions))
                "renormalised": [r for _, r in kept], "proposals": len(props),
            })
    return out
