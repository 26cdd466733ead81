"""Section 1: the code-switcher's fast path vs its one-mask-per-forward definition."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from benchmarks.common import CS_THRESHOLD, TASK, Figure, Setup, figure, log, train_rows


def _cs_key(records: Sequence[dict]) -> list:
    """What must agree between the two paths (probabilities compared separately)."""
    return [(r["uid"], r["copy"], r["lang"], r["cs_input_ids"],
             [s[:3] + s[4:] for s in r["substitutions"]]) for r in records]


def bench_codeswitch(s: Setup) -> list[Figure]:
    """Sentences/s of ``code_switch`` (fast path) vs ``code_switch_reference`` (definition)."""
    from salt import codeswitch
    from salt.data import load_local
    from salt.encoding import encode_pairs
    from salt.models import load_masked_lm
    from salt.runtime import decide
    from salt.tasks import get_task
    from salt.vocab import build_vocabularies

    spec = get_task(TASK)
    langs = list(spec.target_languages)[: s.size.cs_languages]
    texts = {}
    for lang in ["en", *langs]:
        rows = load_local(TASK, "dev", lang)[: s.size.vocab_rows]
        texts[lang] = [t for ex in rows for t in (ex.text_a, ex.text_b)]
    rule = ({"min_count": 2, "source_top_k": 150} if s.spec == "tiny"
            else {"min_count": 2, "source_top_k": 3000})
    vocabs = build_vocabularies(s.tokenizer, texts, **rule)
    langs = [lang for lang in langs if len(vocabs.ids(lang))]
    torch.manual_seed(0)  # the head of a model without one is initialised: make it repeatable
    mlm = load_masked_lm(s.mlm_dir or s.model_dir).eval()
    encoded = encode_pairs(s.tokenizer, train_rows(s.size.cs_sentences), s.size.max_length)
    # the head decides the input: masked (SALT's definition) unless a trained prototype head
    # in --mlm-dir says it reads unmasked states
    mode = codeswitch.input_mode_for(s.mlm_dir) if s.mlm_dir else "masked"
    cfg = codeswitch.CodeSwitchConfig(threshold=CS_THRESHOLD, normalize="target", languages=tuple(langs),
                              max_ratio=0.3, batch_size=128, seed=0, input=mode)
    fp32 = decide("fp32", device="cpu")  # the definition is fp32: compare like with like
    log(f"code-switch ({mode}): {len(encoded)} sentences into {len(langs)} languages, warm-up")
    codeswitch.code_switch_reference(mlm, s.tokenizer, encoded[:1], vocabs, cfg, runtime=fp32)
    codeswitch.code_switch(mlm, s.tokenizer, encoded[:1], vocabs, cfg, progress=False, runtime=fp32)
    fast, ref, ratios, identical, max_diff = [], [], [], True, 0.0
    subs = positions = 0
    for r in range(s.repeats):
        order = ("ref", "fast") if r % 2 == 0 else ("fast", "ref")
        out, secs = {}, {}
        for which in order:
            t0 = time.perf_counter()
            if which == "ref":
                out[which] = codeswitch.code_switch_reference(mlm, s.tokenizer, encoded, vocabs, cfg,
                                                      runtime=fp32)
            else:
                out[which] = codeswitch.code_switch(mlm, s.tokenizer, encoded, vocabs, cfg,
                                            progress=False, runtime=fp32)
            secs[which] = time.perf_counter() - t0
        fast.append(len(encoded) / secs["fast"])
        ref.append(len(encoded) / secs["ref"])
        ratios.append(secs["ref"] / secs["fast"])
        identical &= _cs_key(out["ref"]) == _cs_key(out["fast"])
        for a, b in zip(out["ref"], out["fast"], strict=True):
            for x, y in zip(a["substitutions"], b["substitutions"], strict=False):
                max_diff = max(max_diff, abs(x[3] - y[3]))
        subs = sum(len(rec["substitutions"]) for rec in out["ref"])
        positions = sum(len(rec["candidates"]) for rec in out["ref"])
        log(f"code-switch repeat {r + 1}: reference {ref[-1]:.2f}/s, fast {fast[-1]:.2f}/s "
            f"({ratios[-1]:.1f}x), identical={identical}")
    details = {"sentences": len(encoded), "languages": langs, "candidate_positions": positions,
               "substitutions": subs, "identical_substitutions": identical,
               "max_probability_diff": max_diff, "threshold": CS_THRESHOLD,
               "max_ratio": cfg.max_ratio, "batch_size": cfg.batch_size, "input": mode,
               "mlm": str(s.mlm_dir) if s.mlm_dir else "model folder (head initialised, seed 0)"}
    note = "target needs the ratio and identical substitutions"
    return [figure("codeswitch_fast", fast, "sentences/s", ratios, vs="codeswitch_reference",
                   note=note, extra_ok=identical, **details),
            figure("codeswitch_reference", ref, "sentences/s", **details)]
