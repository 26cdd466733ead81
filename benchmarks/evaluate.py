"""Section 3: ``evaluate_languages`` (length-bucketed) vs a plain batched loop."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch

from benchmarks.common import NUM_LABELS, TASK, Figure, Setup, cpu_autocast, figure, log


def plain_predict(model, items, pad_id: int, batch_size: int, bf16: bool) -> list[int]:
    """The naive loop: file order, fixed batch size, padding to each batch's longest pair."""
    from salt.encoding import pad_batch

    model.eval()
    preds: list[int] = []
    with torch.inference_mode(), cpu_autocast(bf16):
        for i in range(0, len(items), batch_size):
            chunk = items[i : i + batch_size]
            ids, mask = pad_batch([it.input_ids for it in chunk], pad_id)  # (B, T)
            kw = {"input_ids": ids, "attention_mask": mask}
            if chunk[0].token_type_ids is not None:
                kw["token_type_ids"] = pad_batch([it.token_type_ids for it in chunk], 0)[0]
            preds.extend(model(**kw).logits.argmax(-1).tolist())
    return preds


def padding_waste(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Padded positions / all positions computed, for batches of indices into ``lengths``."""
    total = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return (total - sum(lengths[i] for b in batches for i in b)) / total if total else 0.0


def bench_eval(s: Setup) -> tuple[list[Figure], dict]:
    """Pairs/s of ``evaluate_languages`` (bucketed) vs a plain loop over the same test items."""
    from salt.data import load_local, parallel_subset
    from salt.encoding import encode_pairs, length_buckets
    from salt.evaluate import evaluate_languages
    from salt.runtime import decide

    rt = decide("bf16" if s.bf16 else "fp32", device="cpu")
    from salt.models import load_classifier
    from salt.tasks import get_task

    size, spec = s.size, get_task(TASK)
    langs = list(spec.languages)[: size.eval_languages]
    rows = parallel_subset({lang: load_local(TASK, "test", lang) for lang in langs},
                           size.eval_per_language, 0)
    test = {lang: encode_pairs(s.tokenizer, rows[lang], size.max_length) for lang in langs}
    n_pairs = sum(len(v) for v in test.values())
    torch.manual_seed(0)
    model = load_classifier(s.model_dir, NUM_LABELS).eval()
    bs = size.eval_batch_size
    waste_b, waste_p, all_lengths = [], [], []
    for items in test.values():
        lengths = [len(it.input_ids) for it in items]
        all_lengths.extend(lengths)
        waste_b.append((lengths, length_buckets(lengths, bs)))
        waste_p.append((lengths, [list(range(i, min(i + bs, len(items))))
                                  for i in range(0, len(items), bs)]))

    def pooled(groups) -> float:
        offset, lens, batches = 0, [], []
        for lengths, bl in groups:
            lens.extend(lengths)
            batches.extend([[offset + i for i in b] for b in bl])
            offset += len(lengths)
        return padding_waste(lens, batches)

    log(f"eval: {n_pairs} pairs in {len(langs)} languages, warm-up")
    warm = {langs[0]: test[langs[0]][:bs]}
    evaluate_languages(model, spec, warm, s.pad_id, bs, runtime=rt)
    plain_predict(model, warm[langs[0]], s.pad_id, bs, s.bf16)
    ours, plain, ratios, agree = [], [], [], 1.0
    for r in range(s.repeats):
        secs: dict[str, float] = {}
        for which in (("ours", "plain") if r % 2 == 0 else ("plain", "ours")):
            t0 = time.perf_counter()
            if which == "ours":
                _, predictions = evaluate_languages(model, spec, test, s.pad_id, bs, runtime=rt)
            else:
                naive = {lang: plain_predict(model, v, s.pad_id, bs, s.bf16)
                         for lang, v in test.items()}
            secs[which] = time.perf_counter() - t0
        ours.append(n_pairs / secs["ours"])
        plain.append(n_pairs / secs["plain"])
        ratios.append(secs["plain"] / secs["ours"])
        same = sum(int(a == b) for lang in langs
                   for a, b in zip(predictions[lang]["predicted"], naive[lang], strict=True))
        agree = min(agree, same / n_pairs)
        log(f"eval repeat {r + 1}: bucketed {ours[-1]:.1f} pairs/s, plain {plain[-1]:.1f} "
            f"pairs/s ({ratios[-1]:.2f}x)")
    details = {"pairs": n_pairs, "languages": langs, "batch_size": bs, "bf16": s.bf16,
               "mean_tokens": statistics.fmean(all_lengths),
               "prediction_agreement": agree}
    wb, wp = pooled(waste_b), pooled(waste_p)
    figs = [
        figure("eval_ours", ours, "pairs/s", ratios, vs="eval_plain_loop",
               note=f"evaluate_languages over all languages; model {s.spec}",
               padding_waste=wb, **details),
        figure("eval_plain_loop", plain, "pairs/s", padding_waste=wp, **details),
        figure("eval_padding_waste_ours", [wb], "fraction",
               note="padded tokens / all tokens computed, length-bucketed batches"),
        figure("eval_padding_waste_plain", [wp], "fraction",
               note="padded tokens / all tokens computed, file-order batches"),
    ]
    return figs, {"lengths": all_lengths, "model": model, "rates": ours}
