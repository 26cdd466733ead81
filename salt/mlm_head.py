"""Train a masked-LM head (optionally with the top encoder layers) on unlabeled target text.

Why: SALT's code-switcher asks the model's own MLM head for substitutes. The e5-small proxy has
no MLM head (and fill-mask through the tied embeddings alone is noise), so one is trained here on
monolingual text only (the dev splits' sentences, labels discarded): no dictionary, no parallel
data. Sources that already have a head (mBERT, ``tiny``) may skip training;
:func:`fill_mask_accuracy` measures any masked LM so every source reports the same figure.

How the work is bounded (counted in sentences and steps, never in seconds, so the output is
the same on any machine; the encoder forward is the cost on a 2-core CPU):

0. The encoder is cut at ``head_layer`` (default 6 of e5's 12): the head reads that layer and
   the saved masked LM keeps only those layers (cheaper to encode and to code-switch with).
1. *Encode once.* The frozen bottom ``L - k`` layers (``k = train_top_layers``) run once, under
   ``no_grad`` (bf16 where the CPU supports it), over masked copies of the training sentences,
   taken round-robin across languages so a sentence budget (``encode_sentences``) that cuts
   the list short keeps it balanced; ``mlm_head.json["budget"]`` records limit, used and
   whether it cut work short. For ``k = 0``
   only the final hidden states at masked positions are kept; for ``k > 0`` the layer-``L-k``
   states of whole sentences. Masks are static (one draw per sentence, all ``<mask>``, as the
   code-switcher uses them).
2. *Train for epochs over that cache*: head (transform + tied decoder restricted to the kept
   vocabulary, logits only at masked rows) and the top ``k`` layers, for ``max_steps``.
   With ``softmax_scope="language"`` (default) each row's softmax runs over the
   ids seen in its own language's text: what a code-switcher restricted to one language asks,
   and several times cheaper than all kept ids.

``objective="prototype"`` (not SALT's mask-and-predict; off by default): no training. One
unmasked pass stores each kept id's mean (centred) contextual state; the saved head scores an
*unmasked* token's state by cosine against every id's prototype (untied decoder), so restricted
to a target language it returns the nearest target-language ids: dictionary-free translations.
On e5-small it gave 40-51% MUSE-translation substitutions (fr/de/es) where masked heads gave
1-7%. Its inputs must not be masked (``mlm_head.json`` says ``"input": "unmasked"``).

Centring (language-neutral head input; ``centre``):

- ``"project"`` (default): remove from every hidden state its component in the span of the
  language-mean differences ``{mu_L - mean(mu)}``. Afterwards all languages share one mean, and
  the projection is one linear map that needs no language at inference, so it is folded into
  the saved head (``transform.dense.weight <- W P``): ``AutoModelForMaskedLM`` computes exactly
  what was trained, for every language.
- ``"mean"``: subtract the language's own mean. This needs the language at inference; the saved
  model has the *source* language's mean folded into ``transform.dense.bias`` (so the
  code-switcher, which masks English sentences and calls ``model.base_model`` then ``model.cls``,
  works unchanged), and :class:`CentredMaskedLM` applies the right mean for other languages.
- ``"none"``.

The saved folder (``save_pretrained`` layout + tokenizer) loads with
``AutoModelForMaskedLM.from_pretrained``; ids outside the kept vocabulary get decoder bias
:data:`EXCLUDED_BIAS`, so a full-vocabulary softmax never picks them. ``mlm_head.json`` holds
the config, steps, wall time, loss curve and held-out fill-mask accuracy per language (over
the full vocabulary and within the language's own ids; for a prototype head, self-recovery of
unmasked tokens).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModelForMaskedLM, PreTrainedModel, PreTrainedTokenizerBase

from salt.encoding import pad_batch

REPORT_FILE = "mlm_head.json"
CENTRING_FILE = "mlm_head_centring.pt"
CHECKPOINT_DIR = "checkpoint"
EXCLUDED_BIAS = -1.0e4  # decoder bias of ids outside the kept vocabulary: never the argmax
CENTRE_MODES = ("none", "project", "mean")
# config fields that may change between a run and its resumption (they do not change the math)
_RESUMABLE_CHANGES = ("max_steps", "checkpoint_every", "log_every",
                      "eval_sentences", "progress", "keep_checkpoint")


class MLMHeadError(ValueError):
    """Bad configuration, input text or checkpoint; the message says which and why."""


@dataclass
class MLMHeadConfig:
    """Settings of MLM-head training; every field is recorded in ``mlm_head.json``."""

    languages: tuple[str, ...] | None = None  # None: every language in texts_by_lang
    source_language: str = "en"  # its mean is folded into the saved head when centre="mean"
    encode_sentences: int | None = None  # training sentences encoded (round-robin over
    # languages; None: all): the stage's budget, counted in sentences, never in seconds
    max_steps: int = 1000  # optimizer steps of the masked objective
    batch_size: int = 32  # sentences per step when top layers are adapted
    head_batch_size: int = 512  # masked rows per step when only the head trains
    encode_batch_size: int = 64  # sentences per no-grad forward in the encode phase
    lr: float = 2e-3  # AdamW learning rate of the head (transform + kept decoder bias)
    layer_lr: float = 1e-4  # learning rate of the adapted top encoder layers
    weight_decay: float = 0.01
    warmup_steps: int = 50  # linear warm-up, then constant
    mask_prob: float = 0.15  # share of non-special tokens masked per sentence (at least one)
    train_top_layers: int = 0  # 0: head only; k: also adapt the top k encoder layers
    head_layer: int | None = 6  # the head reads layer min(j, depth) and the saved masked LM
    # keeps only those layers (None: last layer). On e5-small layer 6 beat 12: more lexical,
    # better aligned across languages, and half the encode cost

    objective: str = "masked"  # masked: train a fill-mask head (SALT's definition).
    # prototype: no training; each kept id's decoder row is its mean centred contextual state
    # over its occurrences (unmasked), so the head maps an UNMASKED token to its nearest ids in
    # any language: a dictionary-free translation head whose inputs must not be masked
    prototype_scale: float = 0.1  # prototype head: transform.dense = scale * P (near-linear gelu)
    prototype_temperature: float = 0.05  # prototype head: logit = cosine / temperature
    softmax_scope: str = "language"  # language: softmax over the ids seen in the row's own
    # language (what a restricted code-switcher asks; cheaper); all: over every kept id
    prune_vocab: bool = True  # decoder over ids seen in the training text only
    centre: str = "project"  # none | project | mean (see the module docstring)
    ema_momentum: float = 0.99  # running language means while top layers change (k > 0)
    held_out_fraction: float = 0.1  # sentences (by text hash) kept out for fill-mask accuracy
    max_length: int = 64  # tokens per sentence, specials included
    max_sentences_per_language: int | None = None  # cap on training sentences per language
    seed: int = 0
    bf16: bool | None = None  # bf16 autocast on CPU; None: when the CPU supports it
    checkpoint_every: int = 200  # steps between resumable checkpoints (0: only at the end)
    log_every: int = 20  # steps per point of the loss curve
    eval_sentences: int = 200  # held-out sentences per language for fill-mask accuracy
    save_cache: bool = True  # keep the encode-phase cache in the checkpoint (resume skips it)
    keep_checkpoint: bool = False  # keep out_dir/checkpoint after a finished run (it can be
    # hundreds of MB: the cache); a finished run needs it no more
    progress: bool = True  # tqdm progress bars

    def __post_init__(self) -> None:
        if self.languages is not None:
            self.languages = tuple(self.languages)
        if self.objective not in ("masked", "prototype"):
            raise MLMHeadError(f"objective={self.objective!r}; use 'masked' or 'prototype'")
        if self.softmax_scope not in ("language", "all"):
            raise MLMHeadError(f"softmax_scope={self.softmax_scope!r}; use 'language' or 'all'")
        if self.centre not in CENTRE_MODES:
            raise MLMHeadError(f"centre={self.centre!r}; choose one of {CENTRE_MODES}")
        if not 0.0 < self.mask_prob < 1.0:
            raise MLMHeadError(f"mask_prob={self.mask_prob} must lie in (0, 1)")
        if not 0.0 <= self.held_out_fraction < 1.0:
            raise MLMHeadError(f"held_out_fraction={self.held_out_fraction} must lie in [0, 1)")
        if self.head_layer is not None and self.head_layer < 1:
            raise MLMHeadError(f"head_layer={self.head_layer} must be >= 1 (or None)")
        if self.train_top_layers < 0:
            raise MLMHeadError(f"train_top_layers={self.train_top_layers} must be >= 0")
        if self.max_steps < 1:
            raise MLMHeadError(f"max_steps={self.max_steps} must be >= 1")
        if self.encode_sentences is not None and self.encode_sentences < 1:
            raise MLMHeadError(f"encode_sentences={self.encode_sentences} must be >= 1 "
                               "(or None: all)")


# ----------------------------------------------------------------------------- small helpers


def bf16_supported() -> bool:
    """Whether bf16 autocast is worth using on this CPU (native AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported())
    except Exception:  # private API: absent on some builds
        return False


def _autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def _digest(obj: Any) -> str:
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


def _special_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    for i, tok in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(tok, "special", False):
            ids.add(int(i))
    return ids


def _mask_positions(ids: Sequence[int], special: set[int], prob: float,
                    rng: random.Random) -> list[int]:
    """round(prob * n) (at least one) distinct non-special positions of a sentence."""
    cands = [i for i, t in enumerate(ids) if t not in special]
    if not cands:
        return []
    k = max(1, round(prob * len(cands)))
    return sorted(rng.sample(cands, k))


def mlm_head_module(model: nn.Module) -> nn.Module | None:
    """The module mapping hidden rows (M, H) to vocabulary logits (M, V), when it is known:
    ``cls`` (BERT) or ``lm_head`` (RoBERTa / XLM-R); None otherwise."""
    for name in ("cls", "lm_head"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Module):
            return head
    return None


def unlabeled_texts(languages: Sequence[str], tasks: Sequence[str] = ("xnli", "pawsx"),
                    split: str = "dev", root: str | Path | None = None) -> dict[str, list[str]]:
    """Sentences (text_a and text_b, labels discarded, deduplicated) of the local split of every
    task that has the language; raises when a language has no file in any task."""
    from salt.data import load_local
    from salt.tasks import get_task

    out: dict[str, list[str]] = {}
    for lang in languages:
        texts: list[str] = []
        for task in tasks:
            if lang in get_task(task).languages:
                for ex in load_local(task, split, lang, root):
                    texts.extend((ex.text_a, ex.text_b))
        if not texts:
            raise MLMHeadError(f"language {lang!r} is in none of the tasks {list(tasks)}")
        out[lang] = list(dict.fromkeys(texts))
    return out


# ----------------------------------------------------------------------------- centring


def mean_difference_basis(means: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
    """Orthonormal basis Q (H, r) of span{mu_L - mean(mu)} for language means (L, H); r <= L-1.
    ``h - (h @ Q) @ Q.T`` gives every language the same mean and needs no language label."""
    diffs = (means - means.mean(0, keepdim=True)).double().T  # (H, L)
    u, s, _ = torch.linalg.svd(diffs, full_matrices=False)  # u (H, L)
    keep = s > tol * max(float(s.max()), 1e-30) if len(s) else s.bool()
    return u[:, keep].float()  # (H, r)


class Centring:
    """Training-time centring of head inputs (see the module docstring), with its fold-in."""

    def __init__(self, mode: str, languages: Sequence[str], source_language: str,
                 means: torch.Tensor | None = None):
        self.mode = mode
        self.languages = list(languages)
        self.source_language = source_language
        self.means = means  # (L, H) float32, None until estimated
        self.basis: torch.Tensor | None = None  # (H, r) for "project"
        if means is not None:
            self.set_means(means)

    def set_means(self, means: torch.Tensor) -> None:
        self.means = means.detach().float()
        if self.mode == "project":
            self.basis = mean_difference_basis(self.means)

    def apply(self, rows: torch.Tensor, lang_idx: torch.Tensor) -> torch.Tensor:
        """rows (M, H), lang_idx (M,) -> centred rows (M, H)."""
        if self.mode == "none" or self.means is None:
            return rows
        if self.mode == "mean":
            return rows - self.means.to(rows.dtype)[lang_idx]
        q = self.basis.to(rows.dtype)  # (H, r)
        return rows - (rows @ q) @ q.T

    def fold_into(self, head: nn.Module) -> None:
        """Bake the centring into a BERT head's ``transform.dense`` (in place)."""
        if self.mode == "none" or self.means is None:
            return
        dense = head.predictions.transform.dense
        with torch.no_grad():
            if self.mode == "project":
                q = self.basis.to(dense.weight.dtype)  # (H, r)
                dense.weight -= (dense.weight @ q) @ q.T  # W P with P = I - Q Q^T
            else:
                src = self.means[self.languages.index(self.source_language)]
                dense.bias -= dense.weight @ src.to(dense.weight.dtype)

    def state(self) -> dict[str, Any]:
        return {"mode": self.mode, "languages": self.languages,
                "source_language": self.source_language, "means": self.means}


class CentredMaskedLM(nn.Module):
    """A saved ``centre="mean"`` model plus its language means: the head input of language L
    becomes ``h - mu_L`` (the saved head already subtracts the source mean, so this adds
    ``mu_src - mu_L``). Needed only for non-source languages; ``masked_logits`` is what
    :func:`fill_mask_accuracy` calls."""

    def __init__(self, model: PreTrainedModel, means: Mapping[str, torch.Tensor],
                 source_language: str):
        super().__init__()
        self.model = model
        self.means = {k: v.float() for k, v in means.items()}
        self.source_language = source_language
        self.train(model.training)  # a fresh Module is in training mode: follow the model's

    @classmethod
    def from_pretrained(cls, path: str | Path) -> nn.Module:
        """The folder's masked LM, wrapped when it was trained with ``centre="mean"``."""
        model = AutoModelForMaskedLM.from_pretrained(str(path))
        stats = Path(path) / CENTRING_FILE
        if not stats.is_file():
            return model
        state = torch.load(stats, weights_only=True)
        if state["mode"] != "mean":
            return model
        means = dict(zip(state["languages"], state["means"], strict=True))
        return cls(model, means, state["source_language"])

    def masked_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      select: torch.Tensor, lang: str | None,
                      vocab: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids, attention_mask, select (B, T) -> logits (M, V) (or (M, C) over ``vocab``)
        at the selected positions, centred with the language's mean."""
        hidden = self.model.base_model(input_ids=input_ids,
                                       attention_mask=attention_mask).last_hidden_state
        rows = hidden[select]  # (M, H)
        if lang is not None and lang != self.source_language:
            if lang not in self.means:
                raise MLMHeadError(f"no centring mean for language {lang!r}")
            rows = rows + (self.means[self.source_language] - self.means[lang]).to(rows.dtype)
        return head_logits_over(mlm_head_module(self.model), rows, vocab)


# ----------------------------------------------------------------------------- fill-mask metric


def head_logits_over(head: nn.Module, rows: torch.Tensor,
                     ids: torch.Tensor | None = None) -> torch.Tensor:
    """Logits of a masked-LM head for hidden rows (M, H), over ``ids`` (C,) only when given:
    (M, C), else (M, V). A BERT head's decoder is restricted before the product (cheap)."""
    pred = getattr(head, "predictions", None)
    if ids is not None and pred is not None and hasattr(pred, "transform"):
        t = pred.transform(rows)  # (M, H)
        return t @ pred.decoder.weight[ids].to(t.dtype).T + pred.bias[ids]  # (M, C)
    logits = head(rows)  # (M, V)
    return logits if ids is None else logits[:, ids]


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


@torch.no_grad()
def fill_mask_accuracy(model: nn.Module, tokenizer: PreTrainedTokenizerBase,
                       texts_by_lang: Mapping[str, Sequence[str]], mask_prob: float = 0.15,
                       eval_sentences: int = 200, seed: int = 0, batch_size: int = 32,
                       max_length: int = 64, bf16: bool = False,
                       vocabulary: torch.Tensor | None = None,
                       language_vocabulary: Mapping[str, torch.Tensor] | None = None,
                       mask_inputs: bool = True) -> dict[str, Any]:
    """Top-1 / top-5 accuracy of predicting masked tokens, per language, over the full vocabulary.

    Protocol: the first ``eval_sentences`` (deduplicated) sentences of each language; in each,
    round(mask_prob * n) (at least one) non-special tokens, chosen by a generator seeded with
    (seed, language, text), are replaced by the mask token together, and each is scored against
    the original id. Works on any masked LM (BERT ``cls``, XLM-R ``lm_head``, or plain
    ``.logits``) and on :class:`CentredMaskedLM` (which is told the language).

    ``vocabulary``: ids outside it are known never to win (a pruned head's excluded ids): a
    speed-up with the same result. ``language_vocabulary`` (language -> ids) adds
    ``top1_in_language`` / ``top5_in_language``: the prediction restricted to that language's
    ids, as a restricted code-switcher predicts. ``mask_inputs=False`` leaves the chosen tokens
    in place (the metric of a prototype head, which reads unmasked tokens: self-recovery).
    """
    special = _special_ids(tokenizer)
    mask_id = tokenizer.mask_token_id
    if mask_id is None:
        raise MLMHeadError("the tokenizer has no mask token")
    vocab = None if vocabulary is None else torch.as_tensor(vocabulary, dtype=torch.long)
    n_vocab = max(len(tokenizer), int(vocab.max()) + 1 if vocab is not None else 0)
    where = torch.full((n_vocab,), -1, dtype=torch.long)  # id -> column of the logits
    where[vocab if vocab is not None else torch.arange(n_vocab)] = torch.arange(
        len(vocab) if vocab is not None else n_vocab)
    was_training = model.training
    model.eval()
    per_lang: dict[str, dict[str, float | int]] = {}
    for lang, texts in texts_by_lang.items():
        sents = list(dict.fromkeys(texts))[:eval_sentences]
        enc = tokenizer(sents, truncation=True, max_length=max_length)["input_ids"]
        lang_ids = cols = None
        if language_vocabulary is not None and lang in language_vocabulary:
            lang_ids = torch.as_tensor(language_vocabulary[lang], dtype=torch.long)
            lang_ids = lang_ids[where[lang_ids] >= 0]  # ids that can score at all
            cols = where[lang_ids]  # (C_l,) columns of the logits
        hits = [0, 0, 0, 0]
        total = 0
        for start in range(0, len(enc), batch_size):
            chunk = enc[start:start + batch_size]
            ids, att = pad_batch(chunk, tokenizer.pad_token_id or 0)  # (B, T)
            select = torch.zeros_like(ids, dtype=torch.bool)
            for b, seq in enumerate(chunk):
                rng = random.Random(f"{seed}:{lang}:{sents[start + b]}")
                for p in _mask_positions(seq, special, mask_prob, rng):
                    select[b, p] = True
            if not select.any():
                continue
            gold = ids[select]  # (M,)
            if mask_inputs:
                ids = ids.masked_fill(select, mask_id)
            with _autocast(bf16):
                logits = _masked_logits(model, ids, att, select, lang, vocab).float()  # (M, C)
            h1, h5 = _topk_hits(logits, vocab, gold)
            hits[0] += h1
            hits[1] += h5
            if cols is not None and len(cols):
                h1, h5 = _topk_hits(logits[:, cols], lang_ids, gold)
                hits[2] += h1
                hits[3] += h5
            total += len(gold)
        row: dict[str, float | int] = {
            "top1": hits[0] / total if total else float("nan"),
            "top5": hits[1] / total if total else float("nan"),
            "masked": total, "sentences": len(sents)}
        if cols is not None:
            row["top1_in_language"] = hits[2] / total if total else float("nan")
            row["top5_in_language"] = hits[3] / total if total else float("nan")
        per_lang[lang] = row
    model.train(was_training)
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
    if language_vocabulary is not None:
        out["mean_top1_in_language"] = mean("top1_in_language")
        out["mean_top5_in_language"] = mean("top5_in_language")
        out["protocol"]["language_vocabulary"] = "ids seen in the language's training text"
    return out


# ----------------------------------------------------------------------------- the trainer


def _bert_parts(model: PreTrainedModel) -> tuple[nn.Module, nn.Module, nn.ModuleList]:
    """(bert, cls head, encoder layers) of a BertForMaskedLM-shaped model."""
    bert = getattr(model, "bert", None)
    head = getattr(model, "cls", None)
    if bert is None or head is None or not hasattr(head, "predictions"):
        raise MLMHeadError("MLM-head training supports BERT masked LMs; "
                           f"got {type(model).__name__}")
    return bert, head, bert.encoder.layer


def _bidirectional_mask(bert: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor):
    """The attention mask the encoder layers expect, built exactly as ``BertModel`` does."""
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(config=bert.config, inputs_embeds=hidden,
                                     attention_mask=attention_mask)


def run_layers(bert: nn.Module, layers: Sequence[nn.Module], hidden: torch.Tensor,
               attention_mask: torch.Tensor) -> torch.Tensor:
    """hidden (B, T, H) through ``layers`` with padding mask (B, T) -> (B, T, H)."""
    mask = _bidirectional_mask(bert, hidden, attention_mask)
    for layer in layers:
        out = layer(hidden, mask)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def bottom_states(bert: nn.Module, ids: torch.Tensor, attention_mask: torch.Tensor,
                  n_layers: int) -> torch.Tensor:
    """Output (B, T, H) of the embeddings and the first ``n_layers`` encoder layers."""
    hidden = bert.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
    return run_layers(bert, bert.encoder.layer[:n_layers], hidden, attention_mask)


class MLMHeadTrainer:
    """Encode-once, then train the head (and top layers) for ``max_steps``; resumable.

    ``prepare()`` loads the model, splits and tokenises the text, picks the kept vocabulary
    and fills (or reloads) the cache; ``train()`` runs the steps; ``export()`` returns the
    model with the trained head, centring folded in and excluded ids' bias set very negative.
    """

    def __init__(self, model_dir: str | Path, texts_by_lang: Mapping[str, Sequence[str]],
                 out_dir: str | Path, config: MLMHeadConfig | None = None,
                 on_step: Callable[[int, float], None] | None = None):
        self.cfg = config or MLMHeadConfig()
        self.model_dir = Path(model_dir)
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / CHECKPOINT_DIR
        self.on_step = on_step
        langs = self.cfg.languages or tuple(texts_by_lang)
        missing = [lang for lang in langs if not texts_by_lang.get(lang)]
        if missing:
            raise MLMHeadError(f"no text for language(s) {missing}")
        if len(set(langs)) != len(langs):
            raise MLMHeadError(f"duplicate language in {list(langs)}")
        self.languages = list(langs)
        self.texts = {lang: list(texts_by_lang[lang]) for lang in self.languages}
        self.bf16 = bf16_supported() if self.cfg.bf16 is None else bool(self.cfg.bf16)
        self.centring = Centring(self.cfg.centre, self.languages, self.cfg.source_language)
        if self.cfg.centre == "mean" and self.cfg.source_language not in self.languages:
            raise MLMHeadError(f"centre='mean' needs the source language "
                               f"{self.cfg.source_language!r} among the languages")

    # -- keys that guard the cache and the checkpoint against a changed setup
    def _data_key(self) -> str:
        keep = ("objective", "languages", "mask_prob", "seed", "max_length", "train_top_layers", "head_layer",
                "held_out_fraction", "prune_vocab", "max_sentences_per_language", "bf16",
                "encode_sentences")
        cfg = {k: v for k, v in asdict(self.cfg).items() if k in keep}
        return _digest({"cfg": cfg, "languages": self.languages, "bf16": self.bf16,
                        "model": str(self.model_dir.resolve()), "texts": _digest(self.texts)})

    def _resume_key(self) -> str:
        cfg = {k: v for k, v in asdict(self.cfg).items() if k not in _RESUMABLE_CHANGES}
        return _digest({"cfg": cfg, "data": self._data_key()})

    # -- preparation
    def prepare(self) -> None:
        from salt.models import load_tokenizer

        cfg = self.cfg
        self.t_start = time.perf_counter()  # for the recorded wall time only
        torch.manual_seed(cfg.seed)  # the e5 head is missing from its folder: seeded init
        self.tokenizer = load_tokenizer(self.model_dir)
        self.model = AutoModelForMaskedLM.from_pretrained(str(self.model_dir))
        self.model.eval()
        self.bert, self.head, layers = _bert_parts(self.model)
        self.head_layer = len(layers) if cfg.head_layer is None else min(cfg.head_layer,
                                                                          len(layers))
        del layers[self.head_layer:]  # the saved masked LM stops at the head's layer
        self.model.config.num_hidden_layers = self.head_layer
        n_layers = len(layers)
        if cfg.train_top_layers > n_layers:
            raise MLMHeadError(f"train_top_layers={cfg.train_top_layers} but the model has "
                               f"{n_layers} layers")
        self.split_at = n_layers - cfg.train_top_layers
        self.top_layers = nn.ModuleList(layers[self.split_at:])
        for p in self.model.parameters():
            p.requires_grad_(False)
        if self.tokenizer.mask_token_id is None:
            raise MLMHeadError(f"{self.model_dir}: the tokenizer has no mask token")

        train, held = split_held_out(self.texts, cfg.held_out_fraction)
        self.held_out = held
        self.special = _special_ids(self.tokenizer)
        rng = random.Random(cfg.seed)
        self.train_ids: dict[str, list[list[int]]] = {}
        counts: Counter[int] = Counter()
        seen_by_lang: dict[str, set[int]] = {}
        for lang in self.languages:
            sents = train[lang]
            rng.shuffle(sents)
            if cfg.max_sentences_per_language:
                sents = sents[: cfg.max_sentences_per_language]
            ids = self.tokenizer(sents, truncation=True, max_length=cfg.max_length)["input_ids"]
            self.train_ids[lang] = ids
            seen = Counter(t for seq in ids for t in seq if t not in self.special)
            counts.update(seen)
            seen_by_lang[lang] = set(seen)
        vocab = self.model.config.vocab_size
        everything = [i for i in range(vocab) if i not in self.special]
        kept = sorted(counts) if cfg.prune_vocab else everything
        self.kept = torch.tensor(kept, dtype=torch.long)  # (K,)
        self.kept_counts = torch.tensor([counts.get(i, 0) for i in kept], dtype=torch.float)
        self.index_of = torch.full((vocab,), -1, dtype=torch.long)
        self.index_of[self.kept] = torch.arange(len(kept))
        # per language: positions in the kept list of the ids seen in its training text, and
        # the map kept index -> position among them (-1 elsewhere), for the language softmax
        self.lang_kept: list[torch.Tensor] = []
        self.lang_local: list[torch.Tensor] = []
        for lang in self.languages:
            pos = self.index_of[torch.tensor(sorted(seen_by_lang[lang]), dtype=torch.long)]
            local = torch.full((len(kept),), -1, dtype=torch.long)
            local[pos] = torch.arange(len(pos))
            self.lang_kept.append(pos)
            self.lang_local.append(local)
        self.store_dtype = torch.bfloat16 if self.bf16 else torch.float32  # cache dtype
        emb = self.bert.embeddings.word_embeddings.weight.detach()[self.kept]  # (K, H), frozen
        self.kept_emb = emb.to(self.store_dtype)

        # trainable parameters: the head's transform, the kept decoder bias, the top layers
        self.transform = self.head.predictions.transform
        freq = (self.kept_counts + 1.0) / (self.kept_counts.sum() + len(kept))
        self.bias_kept = nn.Parameter(freq.log())  # (K,) log-unigram prior as the start
        for p in self.transform.parameters():
            p.requires_grad_(True)
        for p in self.top_layers.parameters():
            p.requires_grad_(True)
        groups = [{"params": [*self.transform.parameters(), self.bias_kept], "lr": cfg.lr}]
        if cfg.train_top_layers:
            groups.append({"params": list(self.top_layers.parameters()), "lr": cfg.layer_lr})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
        base_lrs = [g["lr"] for g in groups]
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            [lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps))] * len(base_lrs))

        self.step = 0
        self.losses: list[list[float]] = []
        self.resumed_from: int | None = None
        self._load_or_encode()
        self._load_checkpoint()

    def _interleaved(self) -> list[tuple[int, int]]:
        """(language index, sentence index) round-robin over languages: a balanced order."""
        order = []
        longest = max(len(v) for v in self.train_ids.values())
        for j in range(longest):
            for li, lang in enumerate(self.languages):
                if j < len(self.train_ids[lang]):
                    order.append((li, j))
        return order

    def _budgeted_order(self) -> tuple[list[tuple[int, int]], dict[str, Any]]:
        """The balanced order cut to ``encode_sentences``, and the budget record."""
        order = self._interleaved()
        limit = self.cfg.encode_sentences
        used = order if limit is None else order[:limit]
        return used, {"stage": "mlm", "kind": "sentences", "limit": limit, "used": len(used),
                      "cut_short": len(used) < len(order)}

    def _length_sorted_batches(self, order: Sequence[tuple[int, int]], desc: str):
        """Batches of (language index, sentence index), sorted by length within chunks of 16
        batches to cut padding; a deterministic function of the order."""
        size = self.cfg.encode_batch_size
        chunk = size * 16
        bar = tqdm(total=len(order), desc=desc, unit="sent", disable=not self.cfg.progress,
                   mininterval=5)
        for c0 in range(0, len(order), chunk):
            part = sorted(order[c0:c0 + chunk],
                          key=lambda o: len(self.train_ids[self.languages[o[0]]][o[1]]))
            for b0 in range(0, len(part), size):
                items = part[b0:b0 + size]
                yield items
                bar.update(len(items))
        bar.close()

    def _load_or_encode(self) -> None:
        cfg = self.cfg
        path = self.ckpt_dir / "cache.pt"
        key = self._data_key()
        if path.is_file():
            cache = torch.load(path, weights_only=True)
            if cache.get("key") == key:
                self.cache = cache
                return
        order, budget = self._budgeted_order()
        if cfg.objective == "prototype":
            self.cache = self._encode_prototypes(order)
        else:
            self.cache = self._encode(order)
        self.cache["budget"] = budget
        self.cache["key"] = key
        if cfg.save_cache:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(self.cache, tmp)
            os.replace(tmp, path)

    @torch.no_grad()
    def _encode_prototypes(self, order: Sequence[tuple[int, int]]) -> dict[str, Any]:
        """Unmasked forward of the sentences of ``order``: per kept id
        the sum of its hidden states (K, H) and its count per language (K, L); per language
        the sum of all its token states (L, H)."""
        pad_id = self.tokenizer.pad_token_id or 0
        n_lang, hsize = len(self.languages), self.model.config.hidden_size
        sums = torch.zeros(len(self.kept), hsize)  # (K, H)
        counts = torch.zeros(len(self.kept), n_lang)  # (K, L)
        lang_sums = torch.zeros(n_lang, hsize, dtype=torch.float64)  # (L, H)
        n_per_lang = [0] * n_lang
        for items in self._length_sorted_batches(order, "prototype encode"):
            seqs = [self.train_ids[self.languages[li]][j] for li, j in items]
            ids, att = pad_batch(seqs, pad_id)  # (B, T)
            real = att.bool() & ~torch.isin(ids, torch.tensor(sorted(self.special)))
            with _autocast(self.bf16):
                hidden = bottom_states(self.bert, ids, att, self.split_at)  # (B, T, H)
            rows = hidden[real].float()  # (N, H)
            col = self.index_of[ids[real]]  # (N,) kept index
            langs = torch.tensor([li for li, _ in items])[:, None].expand_as(ids)[real]
            sums.index_add_(0, col, rows)
            counts.index_put_((col, langs), torch.ones(len(col)), accumulate=True)
            lang_sums.index_add_(0, langs, rows.double())
            for li, _ in items:
                n_per_lang[li] += 1
        return {"encode_s": time.perf_counter() - self.t_start,
                "sentences": dict(zip(self.languages, n_per_lang, strict=True)),
                "sums": sums, "counts": counts,
                "lang_sums": lang_sums.float()}

    def _prototype_export(self, model: PreTrainedModel) -> None:
        """Turn ``model``'s head (in place) into the prototype head: transform = LN(gelu(s P
        (h - mu))) with mu the source mean ("mean"), the mean of language means ("project") or
        0; decoder untied, row t = the same transform of id t's centred prototype, normalised
        and divided by temperature * sqrt(H); ids never seen get :data:`EXCLUDED_BIAS`."""
        cfg = self.cfg
        cache = self.cache
        counts = cache["counts"]  # (K, L)
        tokens = counts.sum(0).clamp(min=1)  # (L,)
        means = cache["lang_sums"] / tokens[:, None]  # (L, H) language means of token states
        hsize = means.shape[1]
        total = counts.sum(1)  # (K,)
        seen = total > 0
        if cfg.centre == "mean":  # each occurrence minus its language's mean
            protos = (cache["sums"] - counts @ means) / total.clamp(min=1)[:, None]  # (K, H)
            offset = means[self.languages.index(cfg.source_language)]
        else:
            protos = cache["sums"] / total.clamp(min=1)[:, None]
            offset = means.mean(0) if cfg.centre == "project" else torch.zeros(hsize)
            protos = protos - offset
        proj = torch.eye(hsize)
        if cfg.centre == "project":
            q = mean_difference_basis(means)  # (H, r)
            proj = proj - q @ q.T
        _, head, _ = _bert_parts(model)
        tf = head.predictions.transform
        with torch.no_grad():
            tf.dense.weight.copy_(cfg.prototype_scale * proj)
            tf.dense.bias.zero_()
            tf.LayerNorm.weight.fill_(1.0)
            tf.LayerNorm.bias.zero_()
            feats = F.normalize(tf(protos), dim=-1)  # (K, H) transform of centred prototypes
            tf.dense.bias.copy_(-cfg.prototype_scale * (proj @ offset))  # queries: h - offset
            model.config.tie_word_embeddings = False
            vocab = model.config.vocab_size
            decoder = nn.Linear(hsize, vocab)
            decoder.weight.zero_()
            decoder.weight[self.kept[seen]] = feats[seen] / (
                cfg.prototype_temperature * math.sqrt(hsize))
            decoder.bias.fill_(EXCLUDED_BIAS)
            decoder.bias[self.kept[seen]] = 0.0
            head.predictions.decoder = decoder
            # untied, transformers ties the two biases no more: save both, equal but separate
            head.predictions.bias = nn.Parameter(decoder.bias.detach().clone())
        self.prototype_ids = self.kept[seen]

    @torch.no_grad()
    def _encode(self, order: Sequence[tuple[int, int]]) -> dict[str, Any]:
        """Run the frozen bottom once over masked copies of the sentences of ``order``; see the
        module docstring for what is kept."""
        cfg = self.cfg
        mask_id = self.tokenizer.mask_token_id
        pad_id = self.tokenizer.pad_token_id or 0
        rows, targets, row_lang = [], [], []  # k = 0
        batches: list[dict[str, torch.Tensor]] = []  # k > 0
        n_per_lang = [0] * len(self.languages)
        for items in self._length_sorted_batches(order, "mlm-head encode"):
            seqs = [self.train_ids[self.languages[li]][j] for li, j in items]
            ids, att = pad_batch(seqs, pad_id)  # (B, T)
            select = torch.zeros_like(ids, dtype=torch.bool)
            for b, ((li, j), seq) in enumerate(zip(items, seqs, strict=True)):
                rng = random.Random(f"{cfg.seed}:{self.languages[li]}:{j}")
                for p in _mask_positions(seq, self.special, cfg.mask_prob, rng):
                    select[b, p] = True
            gold = self.index_of[ids[select]]  # (M,) kept-vocabulary index
            lang_of_sent = torch.tensor([li for li, _ in items])  # (B,)
            lang_rows = lang_of_sent[:, None].expand_as(ids)[select]  # (M,)
            ids = ids.masked_fill(select, mask_id)
            with _autocast(self.bf16):
                hidden = bottom_states(self.bert, ids, att, self.split_at)  # (B, T, H)
            if cfg.train_top_layers == 0:
                rows.append(hidden[select].to(self.store_dtype))  # (M, H)
                targets.append(gold)
                row_lang.append(lang_rows)
            else:
                batches.append({"states": hidden.to(self.store_dtype), "attention": att,
                                "select": select, "targets": gold, "langs": lang_rows})
            for li, _ in items:
                n_per_lang[li] += 1
        cache: dict[str, Any] = {
            "encode_s": time.perf_counter() - self.t_start,
            "sentences": dict(zip(self.languages, n_per_lang, strict=True)),
        }
        if cfg.train_top_layers == 0:
            cache.update(rows=torch.cat(rows), targets=torch.cat(targets),
                         langs=torch.cat(row_lang))
        else:
            cache["batches"] = batches
        return cache

    # -- language means for centring
    @torch.no_grad()
    def _exact_means(self, max_batches: int = 64) -> torch.Tensor:
        """Per-language mean (L, H) of the head's input at masked positions (the last layer's
        output, top layers in eval mode), over the cache (a prefix of it when k > 0)."""
        n_lang, hsize = len(self.languages), self.model.config.hidden_size
        sums = torch.zeros(n_lang, hsize, dtype=torch.float64)
        counts = torch.zeros(n_lang, dtype=torch.float64)
        for rows, langs in self._final_rows(max_batches):
            sums.index_add_(0, langs, rows.double())
            counts += torch.bincount(langs, minlength=n_lang).double()
        counts = counts.clamp(min=1)
        return (sums / counts[:, None]).float()

    def _final_rows(self, max_batches: int):
        if self.cfg.train_top_layers == 0:
            yield self.cache["rows"].float(), self.cache["langs"]
            return
        self.top_layers.eval()
        for batch in self.cache["batches"][:max_batches]:
            with _autocast(self.bf16):
                hidden = run_layers(self.bert, self.top_layers, batch["states"].float(),
                                    batch["attention"])
            yield hidden[batch["select"]].float(), batch["langs"]

    # -- one step's data (stateless in the step number, so a resumed run sees the same)
    def _steps_per_epoch(self) -> int:
        if self.cfg.train_top_layers == 0:
            return max(1, len(self.cache["targets"]) // self.cfg.head_batch_size)
        return len(self.cache["batches"])

    def _perm(self, epoch: int, n: int) -> torch.Tensor:
        if getattr(self, "_perm_epoch", None) != epoch:
            gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
            self._perm_cache = torch.randperm(n, generator=gen)
            self._perm_epoch = epoch
        return self._perm_cache

    def _step_inputs(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(head input rows (M, H), kept-index targets (M,), language index (M,)) of a step."""
        per_epoch = self._steps_per_epoch()
        epoch, k = divmod(step, per_epoch)
        if self.cfg.train_top_layers == 0:
            n = len(self.cache["targets"])
            bs = min(self.cfg.head_batch_size, n)
            idx = self._perm(epoch, n)[k * bs:(k + 1) * bs]
            return (self.cache["rows"][idx].float(), self.cache["targets"][idx],
                    self.cache["langs"][idx])
        batch = self.cache["batches"][int(self._perm(epoch, per_epoch)[k])]
        hidden = run_layers(self.bert, self.top_layers, batch["states"].float(),
                            batch["attention"])  # (B, T, H)
        return hidden[batch["select"]], batch["targets"], batch["langs"]

    def head_logits(self, rows: torch.Tensor, lang_idx: torch.Tensor) -> torch.Tensor:
        """Training-time head: centre, transform, tied decoder over kept ids. (M, H) -> (M, K)."""
        rows = self.centring.apply(rows, lang_idx)
        t = self.transform(rows)  # (M, H)
        return t @ self.kept_emb.to(t.dtype).T + self.bias_kept  # (M, K)

    def _loss(self, rows: torch.Tensor, targets: torch.Tensor,
              langs: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of rows (M, H) against kept-index targets (M,): over all kept ids,
        or (``softmax_scope="language"``) over the ids of each row's own language."""
        if self.cfg.softmax_scope == "all":
            return F.cross_entropy(self.head_logits(rows, langs).float(), targets)
        t = self.transform(self.centring.apply(rows, langs))  # (M, H)
        total = t.new_zeros((), dtype=torch.float32)
        for li in langs.unique().tolist():
            sel = langs == li
            cand = self.lang_kept[li]  # (K_l,)
            logits = t[sel] @ self.kept_emb[cand].to(t.dtype).T + self.bias_kept[cand]  # (M_l, K_l)
            total = total + F.cross_entropy(logits.float(), self.lang_local[li][targets[sel]],
                                            reduction="sum")
        return total / len(targets)

    def _update_running_means(self, rows: torch.Tensor, langs: torch.Tensor) -> None:
        if self.cfg.centre == "none" or self.cfg.train_top_layers == 0:
            return
        m = self.cfg.ema_momentum
        means = self.centring.means.clone()
        for li in langs.unique().tolist():
            sel = langs == li
            means[li] = m * means[li] + (1 - m) * rows[sel].detach().float().mean(0)
        self.centring.set_means(means)

    # -- checkpoints
    def _checkpoint_state(self) -> dict[str, Any]:
        return {
            "key": self._resume_key(), "step": self.step,
            "transform": self.transform.state_dict(), "bias_kept": self.bias_kept.detach(),
            "top_layers": self.top_layers.state_dict() if self.cfg.train_top_layers else {},
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "rng": torch.get_rng_state(), "losses": self.losses,
            "means": self.centring.means,
        }

    def save_checkpoint(self) -> None:
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        path = self.ckpt_dir / "state.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(self._checkpoint_state(), tmp)
        os.replace(tmp, path)

    def _load_checkpoint(self) -> None:
        path = self.ckpt_dir / "state.pt"
        if not path.is_file():
            if self.cfg.centre != "none" and self.cfg.objective == "masked":
                self.centring.set_means(self._exact_means())
            return
        state = torch.load(path, weights_only=True)
        if state["key"] != self._resume_key():
            raise MLMHeadError(f"{path}: checkpoint of a different configuration or data; "
                               f"delete {self.ckpt_dir} to start afresh")
        self.transform.load_state_dict(state["transform"])
        with torch.no_grad():
            self.bias_kept.copy_(state["bias_kept"])
        if self.cfg.train_top_layers:
            self.top_layers.load_state_dict(state["top_layers"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        self.losses = [list(x) for x in state["losses"]]
        if state["means"] is not None:
            self.centring.set_means(state["means"])
        self.step = int(state["step"])
        self.resumed_from = self.step

    # -- training
    def train(self) -> str:
        """Run steps until ``max_steps``; return what stopped it."""
        cfg = self.cfg
        if cfg.objective == "prototype":
            return "prototype (no training)"
        self.top_layers.train(cfg.train_top_layers > 0)
        self.transform.train()
        bar = tqdm(total=cfg.max_steps, initial=self.step, desc="mlm-head train", unit="step",
                   disable=not cfg.progress, mininterval=5)
        window: list[float] = []
        stopped = "max_steps"
        while self.step < cfg.max_steps:
            with _autocast(self.bf16):
                rows, targets, langs = self._step_inputs(self.step)
                self._update_running_means(rows, langs)
                loss = self._loss(rows, targets, langs)
            if not torch.isfinite(loss):
                raise MLMHeadError(f"loss became {float(loss)} at step {self.step}; "
                                   "lower lr / layer_lr")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            value = loss.item()
            window.append(value)
            if len(window) >= cfg.log_every:
                self.losses.append([self.step, sum(window) / len(window)])
                window = []
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}", refresh=False)
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.save_checkpoint()
            if self.on_step is not None:
                self.on_step(self.step, value)
        bar.close()
        if window:
            self.losses.append([self.step, sum(window) / len(window)])
        self.save_checkpoint()
        self.top_layers.eval()
        self.transform.eval()
        return stopped

    def export(self) -> PreTrainedModel:
        """A copy of the masked LM with the trained head: centring folded in, the kept ids'
        bias trained and every other id's bias :data:`EXCLUDED_BIAS`."""
        model = copy.deepcopy(self.model)
        model.eval()
        if self.cfg.objective == "prototype":
            self._prototype_export(model)
            for p in model.parameters():
                p.requires_grad_(False)
            return model
        _, head, _ = _bert_parts(model)
        self.centring.fold_into(head)
        with torch.no_grad():
            bias = torch.full_like(head.predictions.bias, EXCLUDED_BIAS)  # (V,)
            bias[self.kept] = self.bias_kept.detach().to(bias.dtype)
            head.predictions.bias.copy_(bias)
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def run(self) -> dict[str, Any]:
        """prepare, train, export; write the folder and ``mlm_head.json``; return the report.
        The exported model stays on ``self.exported``."""
        cfg = self.cfg
        self.prepare()
        encode_s = float(self.cache["encode_s"])
        stopped = self.train()
        wall_s = time.perf_counter() - self.t_start
        model = self.exported = self.export()
        proto = cfg.objective == "prototype"
        if proto and cfg.centre != "none":  # token-state language means, for the wrapper
            counts = self.cache["counts"].sum(0).clamp(min=1)  # (L,)
            self.centring.set_means(self.cache["lang_sums"] / counts[:, None])
        out = self.out_dir
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out, safe_serialization=True)
        self.tokenizer.save_pretrained(out)
        if cfg.centre != "none":
            torch.save(self.centring.state(), out / CENTRING_FILE)

        evaluated: nn.Module = model
        if cfg.centre == "mean":
            means = dict(zip(self.languages, self.centring.means, strict=True))
            evaluated = CentredMaskedLM(model, means, cfg.source_language)
        t_eval = time.perf_counter()
        held = {lang: v for lang, v in self.held_out.items() if v}
        lang_vocab = {lang: self.kept[self.lang_kept[li]]
                      for li, lang in enumerate(self.languages)}
        fill = fill_mask_accuracy(evaluated, self.tokenizer, held, mask_prob=cfg.mask_prob,
                                  eval_sentences=cfg.eval_sentences, seed=cfg.seed,
                                  max_length=cfg.max_length, bf16=self.bf16,
                                  vocabulary=self.kept, language_vocabulary=lang_vocab,
                                  mask_inputs=not proto)
        model.eval()
        cache = self.cache
        basis = self.centring.basis
        report = {
            "trained": True,
            "config": asdict(cfg),
            "languages": self.languages,
            "bf16": self.bf16,
            "head_layer_used": self.head_layer,
            "steps": self.step,
            "stopped_by": stopped,
            "resumed_from_step": self.resumed_from,
            "wall_s": round(wall_s, 2),
            "encode_s": round(encode_s, 2),
            "eval_s": round(time.perf_counter() - t_eval, 2),
            "encoded_sentences": cache["sentences"],
            "encoded_all": not cache["budget"]["cut_short"],
            "available_sentences": len(self._interleaved()),
            "budget": cache["budget"],
            "input": "unmasked" if proto else "masked",
            "masked_rows": None if proto else int(
                len(cache["targets"]) if "targets" in cache
                else sum(len(b["targets"]) for b in cache["batches"])),
            "prototype_ids": len(self.prototype_ids) if proto else None,
            "kept_vocabulary": len(self.kept),
            "held_out_sentences": {lang: len(v) for lang, v in self.held_out.items()},
            "loss_curve": self.losses,
            "final_loss": self.losses[-1][1] if self.losses else None,
            "centring": {"mode": cfg.centre,
                         "folded": {"none": None, "project": "all languages",
                                    "mean": cfg.source_language}[cfg.centre],
                         "rank": int(basis.shape[1]) if basis is not None else None},
            "fill_mask": fill,
        }
        (out / REPORT_FILE).write_text(json.dumps(report, indent=2, default=float) + "\n")
        if not cfg.keep_checkpoint:
            shutil.rmtree(self.ckpt_dir, ignore_errors=True)
        return report


def train_mlm_head(model_dir: str | Path, texts_by_lang: Mapping[str, Sequence[str]],
                   out_dir: str | Path, config: MLMHeadConfig | None = None,
                   on_step: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train an MLM head on ``texts_by_lang`` (sentences per language, unlabeled) and write a
    ``save_pretrained`` folder (model + tokenizer + ``mlm_head.json``) to ``out_dir``.

    Resumes from ``out_dir/checkpoint`` when it holds a run of the same configuration and data.
    ``on_step(step, loss)`` is called after every step. Returns the report also written to
    ``mlm_head.json``.
    """
    trainer = MLMHeadTrainer(model_dir, texts_by_lang, out_dir, config, on_step=on_step)
    return trainer.run()


__all__ = [
    "CENTRE_MODES", "EXCLUDED_BIAS", "CentredMaskedLM", "Centring", "MLMHeadConfig",
    "MLMHeadError", "MLMHeadTrainer", "bf16_supported", "fill_mask_accuracy",
    "head_logits_over", "mean_difference_basis", "mlm_head_module", "split_held_out", "train_mlm_head",
    "unlabeled_texts",
]
