"""Section 2: ``salt.train.train`` vs ``transformers.Trainer``; SALT step vs baseline step."""

from __future__ import annotations

import contextlib
import io
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from benchmarks.common import NUM_LABELS, Figure, Setup, figure, log, median3, train_rows


def _synthetic_copy(ids: Sequence[int], specials: set[int], pool: Sequence[int]) -> list[int]:
    """A token-aligned stand-in for a code-switched copy (every third token replaced): the
    step's cost does not depend on which ids it holds."""
    return [t if (i % 3 or t in specials) else pool[(i * 7 + t) % len(pool)]
            for i, t in enumerate(ids)]


def _freeze_like_ours(model: torch.nn.Module, freeze_layers: int) -> None:
    """The parameters ``salt.train`` freezes (word embeddings, bottom layers), for Trainer."""
    base = model.base_model
    base.embeddings.word_embeddings.weight.requires_grad_(False)
    for layer in base.encoder.layer[:freeze_layers]:
        for p in layer.parameters():
            p.requires_grad_(False)


def bench_train(s: Setup) -> tuple[list[Figure], dict]:
    """Examples/s of ``salt.train.train`` vs ``transformers.Trainer``; SALT vs baseline step."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from salt.encoding import encode_pairs
    from salt.models import load_classifier
    from salt.train import TrainConfig, TrainItem, attention_for, items_from_encoded, train

    size = s.size
    n_items = size.train_steps * size.batch_size
    encoded = encode_pairs(s.tokenizer, train_rows(n_items), size.max_length)
    base_items = items_from_encoded(encoded)
    specials = set(s.tokenizer.all_special_ids)
    pool = sorted(set(range(len(s.tokenizer))) - specials)[100:1100] or [0]
    salt_items = [TrainItem(it.input_ids, it.token_type_ids, it.label,
                            [_synthetic_copy(it.input_ids, specials, pool)]) for it in base_items]
    lengths = [len(it.input_ids) for it in base_items]
    common = {"seed": 0, "epochs": 1.0, "batch_size": size.batch_size, "lr": 5e-5,
              "weight_decay": 0.01, "warmup_ratio": 0.1, "max_grad_norm": 1.0,
              "freeze_word_embeddings": True, "freeze_layers": 0, "selection": "last",
              "checkpoint_every": size.train_steps + 1,
              "precision": "bf16" if s.bf16 else "fp32",
              "gate_max_class_share": None, "gate_min_margin": None}  # timing only
    details: dict[str, Any] = {"steps": size.train_steps, "batch_size": size.batch_size,
                               "examples": n_items, "max_length": size.max_length,
                               "mean_tokens": statistics.fmean(lengths), "bf16": s.bf16,
                               "frozen": "word embeddings"}
    runs = iter(range(10**6))

    cpu = torch.device("cpu")
    knobs = proxy_speed_settings()
    details["proxy_speed_settings"] = knobs

    def ours(system: str, items: Sequence[TrainItem], **over: Any) -> tuple[float, float]:
        out = s.tmp / f"train-{next(runs)}"
        t0 = time.perf_counter()
        result = train(s.model_dir, items, out, TrainConfig(system=system, **{**common, **over}),
                       NUM_LABELS, pad_id=s.pad_id)
        wall = time.perf_counter() - t0
        shutil.rmtree(out, ignore_errors=True)
        return wall, float(result["wall_time_s"])

    def hf(items: Sequence[TrainItem]) -> tuple[float, float]:
        out = s.tmp / f"trainer-{next(runs)}"
        data = [{"input_ids": it.input_ids, "labels": it.label,
                 **({"token_type_ids": it.token_type_ids} if it.token_type_ids else {})}
                for it in items]
        t0 = time.perf_counter()
        model = load_classifier(s.model_dir, NUM_LABELS)
        _freeze_like_ours(model, common["freeze_layers"])
        args = TrainingArguments(
            output_dir=str(out), per_device_train_batch_size=size.batch_size,
            max_steps=len(items) // size.batch_size, learning_rate=common["lr"],
            weight_decay=common["weight_decay"], warmup_steps=common["warmup_ratio"],
            lr_scheduler_type="linear", max_grad_norm=common["max_grad_norm"], bf16=s.bf16,
            use_cpu=True, save_strategy="no", eval_strategy="no", logging_strategy="no",
            report_to=[], dataloader_num_workers=0, dataloader_pin_memory=False, seed=0,
            disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=data,
                          data_collator=DataCollatorWithPadding(s.tokenizer),
                          processing_class=s.tokenizer)
        with contextlib.redirect_stdout(io.StringIO()):  # Trainer prints its final metrics
            metrics = trainer.train().metrics
        wall = time.perf_counter() - t0
        shutil.rmtree(out, ignore_errors=True)
        details["trainer_optim"] = str(getattr(args.optim, "value", args.optim))
        return wall, float(metrics["train_runtime"])

    log("train: warm-up (1 step each, untimed)")
    ours("baseline", base_items[: size.batch_size])
    ours("salt", salt_items[: size.batch_size])
    hf(base_items[: size.batch_size])
    walls: dict[str, list[float]] = {"ours": [], "hf": [], "salt": [], "proxy": [], "sdpa": []}
    loops: dict[str, list[float]] = {k: [] for k in walls}
    arms: dict[str, Callable[[], tuple[float, float]]] = {
        "ours": lambda: ours("baseline", base_items), "hf": lambda: hf(base_items),
        "salt": lambda: ours("salt", salt_items),
        "proxy": lambda: ours("baseline", base_items, **knobs),
        "sdpa": lambda: ours("baseline", base_items, attention="sdpa")}
    names = list(arms)
    for r in range(s.repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            wall, loop = arms[name]()
            walls[name].append(wall)
            loops[name].append(loop)
        log(f"train repeat {r + 1}: ours {n_items / walls['ours'][-1]:.1f} ex/s, Trainer "
            f"{n_items / walls['hf'][-1]:.1f} ex/s, salt {n_items / walls['salt'][-1]:.1f} ex/s, "
            f"proxy settings {n_items / walls['proxy'][-1]:.1f} ex/s, sdpa attention "
            f"{n_items / walls['sdpa'][-1]:.1f} ex/s")
    eps = {k: [n_items / w for w in v] for k, v in walls.items()}
    ms = {k: [1000 * w / n_items for w in v] for k, v in walls.items()}
    loop_eps = {k: median3([n_items / w for w in v])[0] for k, v in loops.items()}
    timed = ("whole call, model loading and the final write included: train() vs load + "
             "Trainer(...) + trainer.train()")
    figs = [
        figure("train_ours", eps["ours"], "examples/s",
               [h / o for o, h in zip(walls["ours"], walls["hf"], strict=True)],
               vs="train_hf_trainer", note=timed,
               loop_examples_per_s=loop_eps["ours"], **details),
        figure("train_hf_trainer", eps["hf"], "examples/s", note=timed,
               loop_examples_per_s=loop_eps["hf"], **details),
        figure("train_baseline_step", ms["ours"], "ms/example", **details),
        figure("train_salt_step", ms["salt"], "ms/example",
               [sa / o for o, sa in zip(walls["ours"], walls["salt"], strict=True)],
               vs="train_baseline_step",
               note="salt/baseline time per example (one mixed forward, loss_terms=mixed); "
                    "code-switched copies are synthetic, same length as the source",
               loop_examples_per_s=loop_eps["salt"], **details),
        figure("train_proxy_settings", eps["proxy"], "examples/s",
               [o / p for o, p in zip(walls["ours"], walls["proxy"], strict=True)],
               vs="train_ours",
               note="the same loop and work with the proxy profile's speed settings "
                    f"({knobs}) vs none (all layers trained, no length grouping: the loop's "
                    "settings when the proxy was first sized)",
               loop_examples_per_s=loop_eps["proxy"], **details),
        figure("train_attention", eps["ours"], "examples/s",
               [sd / o for o, sd in zip(walls["ours"], walls["sdpa"], strict=True)],
               vs="train_attention_sdpa",
               note=f"the same loop and work with train.attention auto ({attention_for('auto', cpu)}"
                    " on this CPU) vs sdpa (the loop's attention before the setting existed)",
               loop_examples_per_s=loop_eps["ours"], **details),
        figure("train_attention_sdpa", eps["sdpa"], "examples/s",
               loop_examples_per_s=loop_eps["sdpa"], **details),
    ]
    return figs, {"lengths": lengths, "loops": loops["ours"], "proxy_loops": loops["proxy"]}


def proxy_speed_settings() -> dict[str, int]:
    """The training speed settings of params.yaml's proxy profile (frozen bottom layers,
    length grouping), so the benchmark times what the default run does."""
    import yaml

    from salt.data import repository_root

    params = yaml.safe_load((repository_root() / "params.yaml").read_text())
    proxy = params["train"]["proxy"]
    return {"freeze_layers": proxy["freeze_layers"], "group_by_length": proxy["group_by_length"]}
