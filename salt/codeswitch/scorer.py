"""A masked LM split into encoder and head, so the head runs on gathered rows only and its
decoder over the requested ids only; and the restricted probabilities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from salt.codeswitch.config import (
    CodeSwitchError,
)
from salt.mlm.config import EXCLUDED_BIAS


class _Stop(Exception):
    """Raised by a hook to stop the head before its full-vocabulary decoder."""


class MaskedLMScorer:
    """A masked LM split into encoder and head, so the head runs on gathered rows only and its
    decoder only over the requested ids. Works for heads whose last step is the output-embedding
    Linear (BERT, XLM-R); otherwise it falls back to full logits (checked at construction).
    Subclass and override ``encode`` / ``features`` / ``logits`` for other models (e.g. a head
    over a pruned vocabulary that needs an id map).

    ``row_offsets[lang]`` (H,) is added to a candidate's hidden state before the head when
    predicting into ``lang`` (language-mean centring, ``salt.mlm`` ``centre="mean"``:
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
        # Ids a pruned head excludes (decoder bias EXCLUDED_BIAS, ``salt.mlm``) hold exp(-1e4)
        # of the mass, 0 in float32: the full-vocabulary normaliser sums the live ids only
        # (e5's prototype head keeps ~1/4 of XLM-R's 250k ids, so "full" costs ~1/4).
        self.live: torch.Tensor | None = None
        bias = self.decoder.bias if self.split else None
        if bias is not None:
            live = torch.nonzero(bias > EXCLUDED_BIAS / 2).flatten()
            if len(live) < len(bias):
                self.live = live

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

    def log_normaliser(self, feats: torch.Tensor) -> torch.Tensor:
        """Full-vocabulary log-normaliser per row, (M, F) -> (M,), over the live ids."""
        return torch.logsumexp(self.logits(feats, self.live).float(), dim=-1)


def restricted_probs(logits_sub: torch.Tensor, normalize: str,
                     full_lse: torch.Tensor | None = None) -> torch.Tensor:
    """Probabilities over a sub-vocabulary (M, |V_L|): renormalised over it ("target") or the
    full-vocabulary softmax restricted to it ("full", needs the full log-normaliser (M,))."""
    logits_sub = logits_sub.float()
    if normalize == "target":
        return torch.softmax(logits_sub, dim=-1)
    assert full_lse is not None
    return torch.exp(logits_sub - full_lse.float()[:, None])
