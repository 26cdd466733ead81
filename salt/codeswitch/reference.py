"""The definition: one forward pass of the whole masked LM per candidate position."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from salt.codeswitch.assemble import Predictions, SwitchContext, assemble, best, build_context
from salt.codeswitch.config import CodeSwitchConfig
from salt.codeswitch.scorer import restricted_probs
from salt.encoding import Encoded
from salt.runtime import Runtime, decide
from salt.vocab import LanguageVocabs


def reference_predictions(model: PreTrainedModel, ctx: SwitchContext, idx: Iterable[int],
                          dev: torch.device) -> Predictions:
    """The definition: one forward pass of the whole masked LM per candidate position, fp32,
    with that position masked (``input="masked"``) or the sentence unmodified ("unmasked")."""
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
                new, prob, renorm = best(probs, lids, excl)
                preds[(i, p, lang)] = (int(new[0]), float(prob[0]), float(renorm[0]))
    return preds


def code_switch_reference(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                          encoded: Sequence[Encoded], vocabs: LanguageVocabs,
                          config: CodeSwitchConfig | None = None,
                          runtime: Runtime | None = None) -> list[dict[str, Any]]:
    """Code-switch by the definition (one full forward pass per candidate position, masked or,
    with ``input="unmasked"``, not). Slow; for tests and benchmarks. Ignores
    ``multi_mask_stride`` and ``batch_size``; runs in fp32 on ``runtime``'s device (no
    autocast: the definition)."""
    ctx = build_context(model, tokenizer, encoded, vocabs, config)
    dev = (runtime or decide()).device
    model.to(dev)
    was = model.training
    model.eval()
    torch.manual_seed(ctx.cfg.seed)
    try:
        with torch.inference_mode():
            preds = reference_predictions(model, ctx, range(len(encoded)), dev)
    finally:
        model.train(was)
    return assemble(ctx, range(len(encoded)), preds)
