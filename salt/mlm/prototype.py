"""The prototype head (``objective="prototype"``): no training; each kept id's decoder row is
its mean centred contextual state, so an UNMASKED token's state scores nearest ids in any
language (dictionary-free translations; its inputs must not be masked)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from salt.mlm.centring import mean_difference_basis
from salt.mlm.config import EXCLUDED_BIAS, MLMHeadConfig
from salt.mlm.layers import bert_parts


def language_means(cache: dict[str, Any]) -> torch.Tensor:
    """(L, H) mean token state per language, from the prototype cache."""
    tokens = cache["counts"].sum(0).clamp(min=1)  # (L,)
    return cache["lang_sums"] / tokens[:, None]


def _centred_prototypes(cache: dict[str, Any], languages: Sequence[str], cfg: MLMHeadConfig
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(prototypes (K, H) centred, query offset (H,), projection (H, H)) for ``cfg.centre``."""
    counts = cache["counts"]  # (K, L)
    means = language_means(cache)  # (L, H)
    hsize = means.shape[1]
    total = counts.sum(1).clamp(min=1)[:, None]  # (K, 1)
    if cfg.centre == "mean":  # each occurrence minus its language's mean
        protos = (cache["sums"] - counts @ means) / total
        offset = means[list(languages).index(cfg.source_language)]
    else:
        offset = means.mean(0) if cfg.centre == "project" else torch.zeros(hsize)
        protos = cache["sums"] / total - offset
    proj = torch.eye(hsize)
    if cfg.centre == "project":
        q = mean_difference_basis(means)  # (H, r)
        proj = proj - q @ q.T
    return protos, offset, proj


@torch.no_grad()
def make_prototype_head(model: PreTrainedModel, cache: dict[str, Any], kept: torch.Tensor,
                        languages: Sequence[str], cfg: MLMHeadConfig) -> torch.Tensor:
    """Turn ``model``'s head (in place, on the CPU) into the prototype head: transform =
    LN(gelu(s P (h - mu))) with mu the source mean ("mean"), the mean of language means
    ("project") or 0; decoder untied, row t = the same transform of id t's centred prototype,
    normalised and divided by temperature * sqrt(H); ids never seen get :data:`EXCLUDED_BIAS`.
    Returns the ids that got a prototype."""
    protos, offset, proj = _centred_prototypes(cache, languages, cfg)
    hsize = proj.shape[0]
    seen = cache["counts"].sum(1) > 0  # (K,)
    _, head, _ = bert_parts(model)
    tf = head.predictions.transform
    tf.dense.weight.copy_(cfg.prototype_scale * proj)
    tf.dense.bias.zero_()
    tf.LayerNorm.weight.fill_(1.0)
    tf.LayerNorm.bias.zero_()
    feats = F.normalize(tf(protos), dim=-1)  # (K, H) transform of centred prototypes
    tf.dense.bias.copy_(-cfg.prototype_scale * (proj @ offset))  # queries: h - offset
    model.config.tie_word_embeddings = False
    decoder = nn.Linear(hsize, model.config.vocab_size)
    decoder.weight.zero_()
    decoder.weight[kept[seen]] = feats[seen] / (cfg.prototype_temperature * math.sqrt(hsize))
    decoder.bias.fill_(EXCLUDED_BIAS)
    decoder.bias[kept[seen]] = 0.0
    head.predictions.decoder = decoder
    # untied, transformers ties the two biases no more: save both, equal but separate
    head.predictions.bias = nn.Parameter(decoder.bias.detach().clone())
    return kept[seen]
