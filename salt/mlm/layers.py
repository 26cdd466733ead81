"""Pieces of a BERT masked LM the MLM-head code runs separately: the head module, the encoder
layers from a cached state, the bottom layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from transformers import PreTrainedModel

from salt.mlm.config import MLMHeadError


def mlm_head_module(model: nn.Module) -> nn.Module | None:
    """The module mapping hidden rows (M, H) to vocabulary logits (M, V), when it is known:
    ``cls`` (BERT) or ``lm_head`` (RoBERTa / XLM-R); None otherwise."""
    for name in ("cls", "lm_head"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Module):
            return head
    return None


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


def bert_parts(model: PreTrainedModel) -> tuple[nn.Module, nn.Module, nn.ModuleList]:
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
