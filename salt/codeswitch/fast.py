"""The fast path: batched sequences, encoder once per sequence, head on candidate rows only."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch

from salt.codeswitch.assemble import Predictions, SwitchContext, best
from salt.codeswitch.planning import mask_groups
from salt.codeswitch.scorer import MaskedLMScorer, restricted_probs
from salt.runtime import Runtime


def _full_lse(scorer: MaskedLMScorer, feats: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary log-normaliser per row: (M, F) -> (M,)."""
    return scorer.log_normaliser(feats)


def fast_predictions(scorer: MaskedLMScorer, ctx: SwitchContext, idx: Sequence[int],
                      runtime: Runtime) -> Predictions:
    """Batched sequences, encoder once per sequence, head on the candidate rows only. A job
    (example, positions) is one sequence: a copy with those positions masked ("masked"), or
    the unmodified sentence with all its candidates read off one pass ("unmasked")."""
    cfg = ctx.cfg
    dev = runtime.device
    masked = cfg.input == "masked"
    if masked:
        jobs = [(i, g) for i in idx for g in mask_groups(ctx.cands[i], cfg.multi_mask_stride)]
    else:
        jobs = [(i, tuple(ctx.cands[i])) for i in idx if ctx.cands[i]]
    jobs.sort(key=lambda j: (len(ctx.encoded[j[0]].input_ids), j[0], j[1][0]))
    lang_ids = {lang: ids.to(dev) for lang, ids in ctx.lang_ids.items()}
    preds: Predictions = {}
    for b in range(0, len(jobs), cfg.batch_size):
        batch = jobs[b : b + cfg.batch_size]
        width = max(len(ctx.encoded[i].input_ids) for i, _ in batch)
        ids = torch.full((len(batch), width), ctx.pad_id, dtype=torch.long)  # (B, T)
        att = torch.zeros((len(batch), width), dtype=torch.long)  # (B, T)
        has_types = ctx.encoded[batch[0][0]].token_type_ids is not None
        types = torch.zeros((len(batch), width), dtype=torch.long) if has_types else None
        rows_b, rows_t, rows_i = [], [], []
        for r, (i, group) in enumerate(batch):
            e = ctx.encoded[i]
            n = len(e.input_ids)
            ids[r, :n] = torch.as_tensor(e.input_ids)
            att[r, :n] = 1
            if types is not None:
                types[r, :n] = torch.as_tensor(e.token_type_ids)
            for p in group:
                if masked:
                    ids[r, p] = ctx.mask_id
                rows_b.append(r)
                rows_t.append(p)
                rows_i.append(i)
        with runtime.autocast():
            hidden = scorer.encode(ids.to(dev), att.to(dev),
                                   None if types is None else types.to(dev))  # (B, T, H)
        rows = hidden[torch.tensor(rows_b, device=dev), torch.tensor(rows_t, device=dev)]  # (M, H)
        rows = rows.float()
        by_lang: dict[str, list[int]] = defaultdict(list)
        for m, i in enumerate(rows_i):
            for lang in ctx.needed(i):
                by_lang[lang].append(m)
        shared: tuple[torch.Tensor, torch.Tensor | None] | None = None  # languages w/o offset
        for lang, ms in by_lang.items():
            sel = torch.tensor(ms, device=dev)
            if lang in scorer.row_offsets:
                feats = scorer.features(rows[sel], lang)  # (m, F)
                lse = _full_lse(scorer, feats) if cfg.normalize == "full" else None  # (m,)
            else:
                if shared is None:
                    f = scorer.features(rows)  # (M, F): once for every language
                    shared = (f, _full_lse(scorer, f) if cfg.normalize == "full" else None)
                feats = shared[0][sel]
                lse = None if shared[1] is None else shared[1][sel]
            lids = lang_ids[lang]
            probs = restricted_probs(scorer.logits(feats, lids), cfg.normalize, lse)  # (m, |V_L|)
            excl = None
            if lang == ctx.source_lang and cfg.synonyms:
                excl = torch.tensor([ctx.encoded[rows_i[m]].input_ids[rows_t[m]] for m in ms],
                                    device=dev)
            new, prob, renorm = best(probs, lids, excl)
            for k, m in enumerate(ms):
                preds[(rows_i[m], rows_t[m], lang)] = (int(new[k]), float(prob[k]),
                                                       float(renorm[k]))
    return preds
