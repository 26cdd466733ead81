"""Sequence-classification models whose head fits the encoder.

``cls``: the Auto class head (first token + the checkpoint's pooler, e.g. mBERT's trained
pooler). ``mean``: mean of the last hidden states over real tokens, then dropout and a linear
layer; for encoders trained for mean pooling and shipped without a pooler (multilingual-e5), where
a first-token head would start from a random dense+tanh pooler on a token the encoder never
trained to summarise the pair.

Both accept ``inputs_embeds`` (the mixup feeds mixed word embeddings) and return an output with
``loss`` (when ``labels`` are given) and ``logits`` (B, num_labels).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModel, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from salt.models import load_classifier

POOLINGS = ("cls", "mean")


class MeanPoolClassifier(torch.nn.Module):
    """Encoder + masked mean pooling + dropout + linear head."""

    accepts_loss_kwargs = False  # a per-batch mean loss: Trainer must not rescale it

    def __init__(self, encoder: PreTrainedModel, num_labels: int):
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.num_labels = num_labels
        p = self.config.classifier_dropout
        self.dropout = torch.nn.Dropout(self.config.hidden_dropout_prob if p is None else p)
        self.classifier = torch.nn.Linear(self.config.hidden_size, num_labels)
        std = self.config.initializer_range
        torch.nn.init.normal_(self.classifier.weight, std=std)
        torch.nn.init.zeros_(self.classifier.bias)

    @property
    def base_model(self) -> PreTrainedModel:
        return self.encoder

    @property
    def device(self) -> torch.device:
        return self.classifier.weight.device

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.encoder.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids, inputs_embeds=inputs_embeds)
        h = out.last_hidden_state  # (B, T, H)
        if attention_mask is None:
            attention_mask = torch.ones(h.shape[:2], dtype=torch.long, device=h.device)
        mask = attention_mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        pooled = (h * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
        logits = self.classifier(self.dropout(pooled))  # (B, num_labels)
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def build_classifier(model_dir: str | Path, num_labels: int, pooling: str) -> torch.nn.Module:
    """A fresh classifier on the pretrained encoder in ``model_dir`` with the given pooling."""
    if pooling not in POOLINGS:
        raise ValueError(f"model pooling {pooling!r} is not one of {POOLINGS}")
    if pooling == "cls":
        return load_classifier(model_dir, num_labels)
    encoder = AutoModel.from_pretrained(str(model_dir), add_pooling_layer=False,
                                        trust_remote_code=False)
    return MeanPoolClassifier(encoder, num_labels)
