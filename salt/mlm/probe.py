"""Fill-mask accuracy of any masked LM, per language (the figure every model source reports)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from salt.encoding import pad_batch
from salt.mlm.config import MLMHeadError
from salt.mlm.layers import head_logits_over, mlm_head_module
from salt.mlm.text import mask_positions
from salt.runtime import Runtime, decide
from salt.vocab import special_ids


def _masked_logits(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor,
                   select: torch.Tensor, lang: str | None,
                   vocab: torch.Tensor | None) -> torch.Tensor:
    """Logits (M, V), or (M, C) over ``vocab``, at the selected positions of a batch (B, T)."""
    if hasattr(model, "masked_logits"):
        return model.masked_logits(ids, mask, select, lang, vocab)
    head = mlm_head_module(model)
    if head is not None and hasattr(model, "base_model"):
        hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        return head_logits_over(head, hidden[select], vocab)
    logits = model(input_ids=ids, attention_mask=mask).logits[select]  # (M, V)
    return logits if vocab is None else logits[:, vocab]


def _topk_hits(logits: torch.Tensor, cand: torch.Tensor | None, gold: torch.Tensor
               ) -> tuple[int, int]:
    """(top-1 hits, top-5 hits) of logits (M, C) over candidate ids (C,) (None: all ids)."""
    top = logits.topk(min(5, logits.shape[-1]), dim=-1).indices  # (M, 5)
    if cand is not None:
        top = cand[top]
    return int((top[:, 0] == gold).sum()), int((top == gold[:, None]).any(-1).sum())


@dataclass(frozen=True)
class _Probe:
    """What every language's pass shares: the masking protocol and the logits' columns."""

    tokenizer: PreTrainedTokenizerBase
    special: set[int]
    mask_prob: float
    seed: int
    batch_size: int
    max_length: int
    mask_inputs: bool
    vocab: torch.Tensor | None  # (C,) ids the logits cover (None: all)
    where: torch.Tensor  # (V,) id -> column of the logits, -1 outside ``vocab``
    runtime: Runtime


def _masked_batch(probe: _Probe, chunk: Sequence[Sequence[int]], sents: Sequence[str],
                  lang: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded ids (B, T) (masked unless ``mask_inputs`` is off), attention (B, T) and the
    selected positions (B, T) of one batch; positions drawn per (seed, language, text)."""
    ids, att = pad_batch(chunk, probe.tokenizer.pad_token_id or 0)  # (B, T)
    select = torch.zeros_like(ids, dtype=torch.bool)
    for b, seq in enumerate(chunk):
        rng = random.Random(f"{probe.seed}:{lang}:{sents[b]}")
        for p in mask_positions(seq, probe.special, probe.mask_prob, rng):
            select[b, p] = True
    return ids, att, select


def _language_row(model: nn.Module, probe: _Probe, lang: str, texts: Sequence[str],
                  eval_sentences: int, lang_vocab: torch.Tensor | None) -> dict[str, Any]:
    """Top-1 / top-5 hits of one language (and within its own ids when ``lang_vocab``)."""
    sents = list(dict.fromkeys(texts))[:eval_sentences]
    enc = probe.tokenizer(sents, truncation=True, max_length=probe.max_length)["input_ids"]
    lang_ids = cols = None
    if lang_vocab is not None:
        lang_ids = torch.as_tensor(lang_vocab, dtype=torch.long)
        lang_ids = lang_ids[probe.where[lang_ids] >= 0]  # ids that can score at all
        cols = probe.where[lang_ids]  # (C_l,) columns of the logits
    hits = [0, 0, 0, 0]
    total = 0
    device = probe.runtime.device
    for start in range(0, len(enc), probe.batch_size):
        chunk = enc[start:start + probe.batch_size]
        ids, att, select = _masked_batch(probe, chunk, sents[start:], lang)
        if not select.any():
            continue
        gold = ids[select]  # (M,)
        if probe.mask_inputs:
            ids = ids.masked_fill(select, probe.tokenizer.mask_token_id)
        vocab = None if probe.vocab is None else probe.vocab.to(device)
        with probe.runtime.autocast():
            logits = _masked_logits(model, ids.to(device), att.to(device), select.to(device),
                                    lang, vocab).float().cpu()  # (M, C)
        h1, h5 = _topk_hits(logits, probe.vocab, gold)
        hits[0] += h1
        hits[1] += h5
        if cols is not None and len(cols):
            h1, h5 = _topk_hits(logits[:, cols], lang_ids, gold)
            hits[2] += h1
            hits[3] += h5
        total += len(gold)
    row: dict[str, Any] = {"top1": hits[0] / total if total else float("nan"),
                           "top5": hits[1] / total if total else float("nan"),
                           "masked": total, "sentences": len(sents)}
    if cols is not None:
        row["top1_in_language"] = hits[2] / total if total else float("nan")
        row["top5_in_language"] = hits[3] / total if total else float("nan")
    return row


@torch.no_grad()
def fill_mask_accuracy(model: nn.Module, tokenizer: PreTrainedTokenizerBase,
                       texts_by_lang: Mapping[str, Sequence[str]], mask_prob: float = 0.15,
                       eval_sentences: int = 200, seed: int = 0, batch_size: int = 32,
                       max_length: int = 64, vocabulary: torch.Tensor | None = None,
                       language_vocabulary: Mapping[str, torch.Tensor] | None = None,
                       mask_inputs: bool = True,
                       runtime: Runtime | None = None) -> dict[str, Any]:
    """Top-1 / top-5 accuracy of predicting masked tokens, per language, over the full vocabulary.

    Protocol: the first ``eval_sentences`` (deduplicated) sentences of each language; in each,
    round(mask_prob * n) (at least one) non-special tokens, chosen by a generator seeded with
    (seed, language, text), are replaced by the mask token together, and each is scored against
    the original id. Works on any masked LM (BERT ``cls``, XLM-R ``lm_head``, or plain
    ``.logits``) and on :class:`~salt.mlm.centring.CentredMaskedLM` (told the language).

    ``vocabulary``: ids outside it are known never to win (a pruned head's excluded ids): a
    speed-up with the same result. ``language_vocabulary`` (language -> ids) adds
    ``top1_in_language`` / ``top5_in_language``: the prediction restricted to that language's
    ids, as a restricted code-switcher predicts. ``mask_inputs=False`` leaves the chosen tokens
    in place (the metric of a prototype head, which reads unmasked tokens: self-recovery).
    ``runtime`` (default :func:`salt.runtime.decide`) places the model and autocasts.
    """
    if tokenizer.mask_token_id is None:
        raise MLMHeadError("the tokenizer has no mask token")
    runtime = runtime or decide()
    runtime.place(model)
    vocab = None if vocabulary is None else torch.as_tensor(vocabulary, dtype=torch.long).cpu()
    n_vocab = max(len(tokenizer), int(vocab.max()) + 1 if vocab is not None else 0)
    where = torch.full((n_vocab,), -1, dtype=torch.long)  # id -> column of the logits
    where[vocab if vocab is not None else torch.arange(n_vocab)] = torch.arange(
        len(vocab) if vocab is not None else n_vocab)
    probe = _Probe(tokenizer, special_ids(tokenizer), mask_prob, seed, batch_size, max_length,
                   mask_inputs, vocab, where, runtime)
    was_training = model.training
    model.eval()
    per_lang = {lang: _language_row(model, probe, lang, texts, eval_sentences,
                                    (language_vocabulary or {}).get(lang))
                for lang, texts in texts_by_lang.items()}
    model.train(was_training)
    return _summary(per_lang, mask_prob, eval_sentences, seed, max_length, mask_inputs,
                    language_vocabulary is not None)


def _summary(per_lang: dict[str, dict[str, Any]], mask_prob: float, eval_sentences: int,
             seed: int, max_length: int, mask_inputs: bool, in_language: bool
             ) -> dict[str, Any]:
    """Means over the languages that had a masked token, and the protocol."""
    scored = [v for v in per_lang.values() if v["masked"]]

    def mean(key: str) -> float:
        vals = [v[key] for v in scored if key in v]
        return sum(vals) / len(vals) if vals else float("nan")

    out = {
        "per_language": per_lang,
        "mean_top1": mean("top1"),
        "mean_top5": mean("top5"),
        "protocol": {"mask_prob": mask_prob, "eval_sentences": eval_sentences, "seed": seed,
                     "max_length": max_length, "vocabulary": "full (model logits)",
                     "inputs": "masked" if mask_inputs else "unmasked (self-recovery)"},
    }
    if in_language:
        out["mean_top1_in_language"] = mean("top1_in_language")
        out["mean_top5_in_language"] = mean("top5_in_language")
        out["protocol"]["language_vocabulary"] = "ids seen in the language's training text"
    return out
