"""Zero-shot evaluation per language and the metrics file (schema in ``salt.schema``)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from statistics import fmean

import torch
from tqdm.auto import tqdm

from salt.encoding import Encoded, length_buckets, pad_batch
from salt.schema import SCHEMA_VERSION, Metrics, validate_metrics
from salt.tasks import TaskSpec


def predict(model, items: Sequence[Encoded], pad_id: int, batch_size: int = 64,
            bf16: bool = False, desc: str | None = None) -> list[int]:
    """Predicted label ids in input order; batches grouped by length to cut padding."""
    model.eval()
    preds = [0] * len(items)
    device = next(model.parameters()).device
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if bf16
                else contextlib.nullcontext())
    buckets = length_buckets([len(it.input_ids) for it in items], batch_size)
    with torch.inference_mode(), autocast:
        for idx in tqdm(buckets, desc=desc, disable=desc is None, leave=False):
            ids, mask = pad_batch([items[i].input_ids for i in idx], pad_id)  # (B, T)
            kwargs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
            if items[idx[0]].token_type_ids is not None:
                kwargs["token_type_ids"] = pad_batch(
                    [items[i].token_type_ids for i in idx], 0)[0].to(device)
            logits = model(**kwargs).logits  # (B, num_labels)
            for i, p in zip(idx, logits.argmax(-1).tolist(), strict=True):
                preds[i] = p
    return preds


def evaluate_languages(model, spec: TaskSpec, test: dict[str, Sequence[Encoded]], pad_id: int,
                       batch_size: int = 64, bf16: bool = False):
    """Per-language results and item-level predictions for every language of ``test``."""
    languages, predictions = {}, {}
    for lang in spec.languages:
        if lang not in test:
            continue
        items = test[lang]
        pred = predict(model, items, pad_id, batch_size, bf16, desc=f"eval {spec.name}-{lang}")
        gold = [it.label for it in items]
        correct = sum(int(p == g) for p, g in zip(pred, gold, strict=True))
        languages[lang] = {"correct": correct, "total": len(items),
                           "accuracy": correct / len(items)}
        predictions[lang] = {"uids": [it.uid for it in items], "labels": gold, "predicted": pred}
    return languages, predictions


def averages(spec: TaskSpec, languages: dict[str, dict]) -> dict:
    """Macro averages: all languages, without English, under-resourced group (None if empty)."""
    acc = {lang: r["accuracy"] for lang, r in languages.items()}
    low = [acc[lang] for lang in spec.under_resourced if lang in acc]
    return {
        "all": fmean(acc.values()),
        "without_en": fmean(v for k, v in acc.items() if k != spec.source_language),
        "under_resourced": fmean(low) if low else None,
    }


def build_metrics(spec: TaskSpec, system: str, seed: int, languages: dict, predictions: dict,
                  provenance: dict, extra: dict | None = None) -> Metrics:
    """Assemble and validate one metrics file's content."""
    obj = {
        "schema_version": SCHEMA_VERSION,
        "task": spec.name,
        "system": system,
        "seed": seed,
        "languages": languages,
        "averages": averages(spec, languages),
        "predictions": predictions,
        "provenance": provenance,
        "extra": extra or {},
    }
    return validate_metrics(obj, f"<metrics {spec.name}-{system}-{seed}>")
