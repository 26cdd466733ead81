"""Zero-shot evaluation per language and the metrics file (schema in ``salt.schema``)."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean

import torch
from tqdm.auto import tqdm

from salt.distributed import shard_and_gather
from salt.encoding import Encoded, length_buckets, pad_batch
from salt.runtime import Runtime, decide, observed
from salt.schema import SCHEMA_VERSION, Metrics, validate_metrics
from salt.tasks import TaskSpec


def _runtime(runtime: Runtime | None) -> Runtime:
    if runtime is None:
        return decide()
    if not isinstance(runtime, Runtime):
        raise TypeError(f"runtime must be a salt.runtime.Runtime or None, got {runtime!r} "
                        "(the bf16 flag was replaced by the runtime decision)")
    return runtime


def _predict_local(model, items: Sequence[Encoded], pad_id: int, batch_size: int,
                   runtime: Runtime, trace: dict | None, desc: str | None) -> list[int]:
    preds = [0] * len(items)
    device = next(model.parameters()).device
    buckets = length_buckets([len(it.input_ids) for it in items], batch_size)
    with torch.inference_mode(), runtime.autocast():
        for idx in tqdm(buckets, desc=desc, disable=desc is None, leave=False):
            ids, mask = pad_batch([items[i].input_ids for i in idx], pad_id)  # (B, T)
            kwargs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
            if items[idx[0]].token_type_ids is not None:
                kwargs["token_type_ids"] = pad_batch(
                    [items[i].token_type_ids for i in idx], 0)[0].to(device)
            logits = model(**kwargs).logits  # (B, num_labels)
            if trace is not None and "logits_dtype" not in trace:
                trace.update(_ran_in(model, runtime, logits, device))
            for i, p in zip(idx, logits.argmax(-1).tolist(), strict=True):
                preds[i] = p
    return preds


def _ran_in(model, runtime: Runtime, logits: torch.Tensor, device: torch.device) -> dict:
    """What one forward pass ran in, read back inside the autocast context."""
    names = {torch.bfloat16: "bf16", torch.float16: "fp16"}
    on = torch.is_autocast_enabled(device.type)
    return {**observed(model, runtime),
            "autocast": names.get(torch.get_autocast_dtype(device.type), "other") if on else "fp32",
            "logits_dtype": str(logits.dtype).removeprefix("torch.")}


def predict(model, items: Sequence[Encoded], pad_id: int, batch_size: int = 64,
            runtime: Runtime | None = None, desc: str | None = None,
            trace: dict | None = None) -> list[int]:
    """Predicted label ids in input order: the project's one classification predict loop.

    Batches are grouped by length to cut padding. The model is placed on ``runtime``'s device
    and run under its autocast; under several processes the items are sharded across them and
    the predictions gathered (every process gets all of them). ``trace``, when given, receives
    what the model ran in (``observed`` plus the autocast dtype read inside the loop).
    """
    runtime = _runtime(runtime)
    was_training = model.training
    runtime.place(model)
    model.eval()
    try:
        preds = shard_and_gather(
            items, lambda part: _predict_local(model, part, pad_id, batch_size, runtime, trace,
                                               desc))
    finally:
        model.train(was_training)
    return preds


def histogram(predicted: Sequence[int], num_labels: int) -> list[int]:
    """Count of each predicted class id, 0 .. num_labels - 1."""
    counts = [0] * num_labels
    for p in predicted:
        counts[p] += 1
    return counts


def evaluate_languages(model, spec: TaskSpec, test: dict[str, Sequence[Encoded]], pad_id: int,
                       batch_size: int = 64, runtime: Runtime | None = None,
                       trace: dict | None = None):
    """Per-language results and item-level predictions for every language of ``test``.

    ``trace`` (optional dict) receives what the model ran in, for the provenance's ``runtime``.
    """
    runtime = _runtime(runtime)
    languages, predictions = {}, {}
    for lang in spec.languages:
        if lang not in test:
            continue
        items = test[lang]
        pred = predict(model, items, pad_id, batch_size, runtime, desc=f"eval {spec.name}-{lang}",
                       trace=trace)
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
