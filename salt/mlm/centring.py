"""Centring of head inputs (language-neutral rows) and its fold-in into a saved head; the
wrapper that applies a language's own mean at inference (``centre="mean"``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForMaskedLM, PreTrainedModel

from salt.mlm.config import CENTRING_FILE, MLMHeadError
from salt.mlm.layers import head_logits_over, mlm_head_module


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
            return rows - self.means.to(rows.device, rows.dtype)[lang_idx]
        q = self.basis.to(rows.device, rows.dtype)  # (H, r)
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
