"""One MLM-head run end to end: train (or build the prototype head), save the folder, measure
fill-mask accuracy, write ``mlm_head.json``."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from salt.mlm.centring import CentredMaskedLM
from salt.mlm.config import CENTRING_FILE, REPORT_FILE, MLMHeadConfig
from salt.mlm.probe import fill_mask_accuracy
from salt.mlm.prototype import language_means
from salt.mlm.trainer import MLMHeadTrainer
from salt.runtime import Runtime, observed

RUN_TIMES = ("wall_s", "encode_s", "eval_s")  # the report's only run-specific fields


def _save(trainer: MLMHeadTrainer, model: nn.Module) -> None:
    out = trainer.out_dir
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    trainer.tokenizer.save_pretrained(out)
    if trainer.cfg.centre != "none":
        torch.save(trainer.centring.state(), out / CENTRING_FILE)


def _fill_mask(trainer: MLMHeadTrainer, model: nn.Module) -> dict[str, Any]:
    """Held-out fill-mask accuracy of the exported head (self-recovery for a prototype head)."""
    cfg = trainer.cfg
    evaluated: nn.Module = model
    if cfg.centre == "mean":
        means = dict(zip(trainer.languages, trainer.centring.means, strict=True))
        evaluated = CentredMaskedLM(model, means, cfg.source_language)
    held = {lang: v for lang, v in trainer.held_out.items() if v}
    lang_vocab = {lang: trainer.vocab.language_ids(li)
                  for li, lang in enumerate(trainer.languages)}
    fill = fill_mask_accuracy(evaluated, trainer.tokenizer, held, mask_prob=cfg.mask_prob,
                              eval_sentences=cfg.eval_sentences, seed=cfg.seed,
                              max_length=cfg.max_length, vocabulary=trainer.kept,
                              language_vocabulary=lang_vocab,
                              mask_inputs=cfg.objective != "prototype", runtime=trainer.runtime)
    model.cpu().eval()
    return fill


def _report(trainer: MLMHeadTrainer, stopped: str, times: dict[str, float],
            fill: dict[str, Any]) -> dict[str, Any]:
    cfg, cache = trainer.cfg, trainer.cache
    proto = cfg.objective == "prototype"
    basis = trainer.centring.basis
    return {
        "trained": True,
        "config": asdict(cfg),
        "languages": trainer.languages,
        "runtime": observed(trainer.model, trainer.runtime),
        "head_layer_used": trainer.head_layer,
        "steps": trainer.step,
        "stopped_by": stopped,
        "resumed_from_step": trainer.resumed_from,
        **{k: round(v, 2) for k, v in times.items()},
        "encoded_sentences": cache["sentences"],
        "encoded_all": not cache["budget"]["cut_short"],
        "available_sentences": cache["available_sentences"],
        "budget": cache["budget"],
        "input": "unmasked" if proto else "masked",
        "masked_rows": None if proto else int(
            len(cache["targets"]) if "targets" in cache
            else sum(len(b["targets"]) for b in cache["batches"])),
        "prototype_ids": len(trainer.prototype_ids) if proto else None,
        "kept_vocabulary": len(trainer.kept),
        "held_out_sentences": {lang: len(v) for lang, v in trainer.held_out.items()},
        "loss_curve": trainer.losses,
        "final_loss": trainer.losses[-1][1] if trainer.losses else None,
        "centring": {"mode": cfg.centre,
                     "folded": {"none": None, "project": "all languages",
                                "mean": cfg.source_language}[cfg.centre],
                     "rank": int(basis.shape[1]) if basis is not None else None},
        "fill_mask": fill,
    }


def run_trainer(trainer: MLMHeadTrainer) -> dict[str, Any]:
    """prepare, train, export; write the folder and ``mlm_head.json``; return the report.
    The exported model stays on ``trainer.exported``."""
    started = time.perf_counter()  # run times are recorded, never used as a limit
    trainer.prepare()
    stopped = trainer.train()
    wall_s = time.perf_counter() - started
    model = trainer.exported = trainer.export()
    if trainer.cfg.objective == "prototype" and trainer.cfg.centre != "none":
        trainer.centring.set_means(language_means(trainer.cache))  # for the wrapper
    _save(trainer, model)
    t_eval = time.perf_counter()
    fill = _fill_mask(trainer, model)
    times = {"wall_s": wall_s, "encode_s": float(trainer.cache["encode_s"]),
             "eval_s": time.perf_counter() - t_eval}
    report = _report(trainer, stopped, times, fill)
    (trainer.out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2, default=float) + "\n")
    if not trainer.cfg.keep_checkpoint:
        shutil.rmtree(trainer.ckpt_dir, ignore_errors=True)
    return report


def train_mlm_head(model_dir: str | Path, texts_by_lang: Mapping[str, Sequence[str]],
                   out_dir: str | Path, config: MLMHeadConfig | None = None,
                   on_step: Callable[[int, float], None] | None = None,
                   runtime: Runtime | None = None) -> dict[str, Any]:
    """Train an MLM head on ``texts_by_lang`` (sentences per language, unlabeled) and write a
    ``save_pretrained`` folder (model + tokenizer + ``mlm_head.json``) to ``out_dir``.

    Resumes from ``out_dir/checkpoint`` when it holds a run of the same configuration and data.
    ``on_step(step, loss)`` is called after every step; ``runtime`` (default
    :func:`salt.runtime.decide`) places the model and autocasts. Returns the report also
    written to ``mlm_head.json``; apart from :data:`RUN_TIMES` it is the same on any machine.
    """
    return run_trainer(MLMHeadTrainer(model_dir, texts_by_lang, out_dir, config,
                                      on_step=on_step, runtime=runtime))
