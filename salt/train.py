"""Fine-tuning for both systems on ``transformers.Trainer``.

``baseline`` is the Trainer on the English pairs. ``salt`` is a Trainer subclass whose only
additions are the pair collator's item index and the mixed-embedding loss: each instance's input
word embeddings are mixed with one of its code-switched copies (``salt.mixup``), with r drawn per
instance per step; every other setting is identical. The copy choice and r derive from (seed,
step, process), so a run resumed from a Trainer checkpoint reproduces an uninterrupted one and
each process of a multi-process run draws its own.

English dev is evaluated with ``salt.evaluate.predict`` every ``eval_every`` steps and at the end
(accuracy and predicted-class histogram in ``train.json``); a run whose selected model predicts
(nearly) one class, or no better than the majority share, stops with :class:`NothingLearned`.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import ProgressCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from salt.classifier import POOLINGS, build_classifier
from salt.distributed import process_state, rank_stream
from salt.encoding import Encoded, pad_batch
from salt.evaluate import histogram, predict
from salt.mixup import MixupConfig, mixed_input_embeddings, sample_r, step_generator
from salt.runtime import Runtime, decide

__all__ = ["NothingLearned", "TrainConfig", "TrainItem", "TrainingDiverged", "collate_pairs",
           "items_from_codeswitch", "items_from_encoded", "load_trained", "mixed_input_embeddings",
           "salt_loss", "sample_r", "step_generator", "train"]


class TrainingDiverged(RuntimeError):
    """Loss became NaN or infinite; the last good checkpoint is kept."""


class NothingLearned(RuntimeError):
    """The selected model predicts (nearly) one class on English dev, or no better than the
    majority share: the run must not become a result."""


ATTENTION = ("auto", "eager", "sdpa")


def attention_for(setting: str, device: torch.device) -> str:
    """The attention implementation ``train.attention`` resolves to on ``device``."""
    if setting != "auto":
        return setting
    return "eager" if device.type == "cpu" else "sdpa"


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning settings shared by both systems (only ``system`` and ``seed`` differ between
    runs); every other field is a ``train.<profile>`` key of params.yaml."""

    system: str = "baseline"  # baseline | salt
    seed: int = 0
    epochs: float = 2.0
    batch_size: int = 16  # per process; a step consumes batch_size x processes items
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0  # 0: no clipping
    freeze_word_embeddings: bool = True  # the mixup still flows through them; saves optimizer work
    freeze_layers: int = 0  # bottom encoder layers kept frozen (CPU speed knob)
    group_by_length: int = 0  # >0: batches of similar length within runs of that many batches
    selection: str = "last"  # last | best_en_dev (English dev only, never target languages)
    eval_every: int = 0  # steps between English-dev evaluations (0: once per epoch) and at the end
    checkpoint_every: int = 50  # steps between resumable Trainer checkpoints
    precision: str = "fp32"  # bf16 | fp16 | fp32, resolved by salt.runtime.decide
    # attention kernels while training: auto = eager on CPU (torch's CPU flash-attention backward
    # is slower than the eager matmuls: benchmarks/ train_attention), sdpa elsewhere
    attention: str = "auto"  # auto | eager | sdpa
    loss_terms: tuple[str, ...] = ("mixed",)  # salt only: mixed and/or clean
    mixup: MixupConfig = field(default_factory=MixupConfig)
    gate_max_class_share: float | None = 0.95  # fail if this share of dev predictions is one class
    gate_min_margin: float | None = 0.01  # fail if dev accuracy < majority share + this

    def __post_init__(self) -> None:
        if self.system not in ("baseline", "salt"):
            raise ValueError(f"train.system: unknown {self.system!r}; use baseline|salt")
        if self.selection not in ("last", "best_en_dev"):
            raise ValueError(f"train.selection: unknown {self.selection!r}; use last|best_en_dev")
        if self.attention not in ATTENTION:
            raise ValueError(f"train.attention: unknown {self.attention!r}; use "
                             + "|".join(ATTENTION))
        if self.precision not in ("bf16", "fp16", "fp32"):
            raise ValueError(f"train.precision: {self.precision!r}; use bf16|fp16|fp32 (resolve "
                             "'auto' with salt.runtime.decide first)")
        terms = tuple(self.loss_terms)
        if not terms or not set(terms) <= {"mixed", "clean"}:
            raise ValueError(f"train.loss_terms: {self.loss_terms!r}; use a subset of mixed, clean")
        object.__setattr__(self, "loss_terms", terms)
        if isinstance(self.mixup, dict):
            object.__setattr__(self, "mixup", MixupConfig(**self.mixup))
        if self.batch_size < 1 or self.epochs <= 0 or self.checkpoint_every < 1:
            raise ValueError("train.batch_size, train.epochs and train.checkpoint_every must be "
                             "positive")


@dataclass
class TrainItem:
    """One training instance: source ids, its code-switched copies (token-aligned), label."""

    input_ids: list[int]
    token_type_ids: list[int] | None
    label: int
    cs_copies: list[list[int]] = field(default_factory=list)


def items_from_encoded(encoded: Sequence[Encoded]) -> list[TrainItem]:
    return [TrainItem(e.input_ids, e.token_type_ids, e.label) for e in encoded]


def items_from_codeswitch(records: Sequence[dict], encoded: Sequence[Encoded]) -> list[TrainItem]:
    """Attach code-switched copies to the encoded source pairs, checking alignment by uid."""
    by_uid: dict[str, list[list[int]]] = {}
    for rec in records:
        by_uid.setdefault(rec["uid"], []).append(rec["cs_input_ids"])
    items = []
    for e in encoded:
        copies = by_uid.get(e.uid)
        if not copies:
            raise ValueError(f"no code-switched copy for training item {e.uid}")
        for c in copies:
            if len(c) != len(e.input_ids):
                raise ValueError(f"{e.uid}: code-switched copy has {len(c)} tokens, source "
                                 f"{len(e.input_ids)} (pairs must be token-aligned)")
        items.append(TrainItem(e.input_ids, e.token_type_ids, e.label, copies))
    return items


def _batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
             group_by_length: int = 0) -> list[list[int]]:
    """One epoch's batches of item indices, a fixed function of (seed, epoch).

    ``group_by_length`` > 0 sorts each run of that many consecutive batches of the shuffled
    order by length (longest first) before cutting batches, so a batch pads less; the batch
    order is then shuffled again (the one short batch, if any, stays last).
    """
    g = torch.Generator().manual_seed(seed * 10_007 + epoch)
    order = torch.randperm(len(lengths), generator=g).tolist()
    if group_by_length > 0:
        span = batch_size * group_by_length
        order = [i for k in range(0, len(order), span)
                 for i in sorted(order[k : k + span], key=lambda i: (-lengths[i], i))]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if group_by_length > 0:
        full = [b for b in batches if len(b) == batch_size]
        short = [b for b in batches if len(b) < batch_size]
        batches = [full[i] for i in torch.randperm(len(full), generator=g).tolist()] + short
    return batches


class LengthGroupedEpochSampler(torch.utils.data.Sampler):
    """Item order of :func:`_batches` for the epoch set by the Trainer (``set_epoch``); the
    same on every process, which accelerate then shards batch by batch."""

    def __init__(self, lengths: Sequence[int], global_batch: int, seed: int, group_by_length: int):
        self.lengths, self.global_batch = list(lengths), global_batch
        self.seed, self.group_by_length, self.epoch = seed, group_by_length, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        for b in _batches(self.lengths, self.global_batch, self.seed, self.epoch,
                          self.group_by_length):
            yield from b


def pick_copies(items: Sequence[TrainItem], width: int, pad_id: int,
                generator: torch.Generator) -> torch.Tensor:
    """One code-switched copy per item, drawn with ``generator``, padded to ``width``: (B, T)."""
    picks = [int(torch.randint(len(it.cs_copies), (1,), generator=generator)) for it in items]
    rows = [it.cs_copies[k] for it, k in zip(items, picks, strict=True)]
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return ids


def collate_pairs(items: Sequence[TrainItem], pad_id: int, generator: torch.Generator | None,
                  indices: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
    """Pad a batch: ``input_ids``, ``attention_mask`` (B, T), ``labels`` (B,), ``token_type_ids``
    when present, ``item_index`` (B,: ``indices`` or positions in ``items``) and, with a
    ``generator``, ``cs_input_ids`` (B, T): one code-switched copy per instance."""
    ids, mask = pad_batch([it.input_ids for it in items], pad_id)  # (B, T)
    batch = {"input_ids": ids, "attention_mask": mask,
             "labels": torch.tensor([it.label for it in items]),
             "item_index": torch.tensor(list(indices) if indices is not None
                                        else range(len(items)), dtype=torch.long)}
    if items[0].token_type_ids is not None:
        batch["token_type_ids"] = pad_batch([it.token_type_ids for it in items], 0)[0]
    if generator is not None:
        batch["cs_input_ids"] = pick_copies(items, ids.shape[1], pad_id, generator)
    return batch


class _Collator:
    """The Trainer's collator: the dataset yields item indices; the baseline drops the index."""

    def __init__(self, items: Sequence[TrainItem], pad_id: int, keep_index: bool):
        self.items, self.pad_id, self.keep_index = items, pad_id, keep_index

    def __call__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        batch = collate_pairs([self.items[i] for i in indices], self.pad_id, None, indices)
        if not self.keep_index:
            batch.pop("item_index")
        return batch


class _Indices(torch.utils.data.Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def salt_loss(model, embedding: torch.nn.Embedding, batch: dict, config: TrainConfig,
              r: torch.Tensor) -> torch.Tensor:
    """Loss of one SALT step: the mixed instance (and the clean one if asked), labels unchanged.

    ``model`` may be wrapped for distribution; ``embedding`` is its input word embedding layer.
    """
    extra = {k: batch[k] for k in ("attention_mask", "token_type_ids") if k in batch}
    loss = torch.zeros((), device=batch["input_ids"].device)
    if "mixed" in config.loss_terms:
        h = mixed_input_embeddings(embedding, batch["input_ids"], batch["cs_input_ids"], r)  # (B, T, H)
        loss = loss + model(inputs_embeds=h, labels=batch["labels"], **extra).loss
    if "clean" in config.loss_terms:
        loss = loss + model(input_ids=batch["input_ids"], labels=batch["labels"], **extra).loss
    return loss / len(config.loss_terms)


class PairTrainer(Trainer):
    """The Trainer, with the project's seeded length-grouped order when ``group_by_length`` > 0
    (Trainer's own grouping draws from the global RNG: not resumable, not equal across ranks)."""

    def __init__(self, *args, lengths: Sequence[int] = (), salt_config: TrainConfig, **kwargs):
        super().__init__(*args, **kwargs)
        self.lengths, self.salt_config = lengths, salt_config

    def _get_train_sampler(self, train_dataset=None):
        cfg = self.salt_config
        if cfg.group_by_length <= 0:
            return super()._get_train_sampler(train_dataset)
        return LengthGroupedEpochSampler(self.lengths, cfg.batch_size * self.args.world_size,
                                         cfg.seed, cfg.group_by_length)


class SaltTrainer(PairTrainer):
    """SALT: the mixed-embedding loss; copy choice and r from (seed, step, process)."""

    def __init__(self, *args, items: Sequence[TrainItem], pad_id: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.items, self.pad_id = items, pad_id

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        cfg, step = self.salt_config, self.state.global_step
        index = inputs.pop("item_index").tolist()
        ids = inputs["input_ids"]  # (B, T)
        copies = step_generator(cfg.seed, step, rank_stream(0))
        inputs["cs_input_ids"] = pick_copies([self.items[i] for i in index], ids.shape[1],
                                             self.pad_id, copies).to(ids.device)
        raw = self.accelerator.unwrap_model(model)
        r = sample_r(len(index), ids.shape[1], raw.config.hidden_size, cfg.mixup,
                     step_generator(cfg.seed, step, rank_stream(1)))  # (B, 1|T, H)
        loss = salt_loss(model, raw.get_input_embeddings(), inputs, cfg, r.to(ids.device))
        return (loss, None) if return_outputs else loss


class _Interrupted(Exception):
    """Raised by the test hook ``stop_after`` to simulate a crash."""


class _Progress(ProgressCallback):
    """The Trainer's progress bar showing the loss instead of printing every log line."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs and "loss" in logs:
            self.training_bar.set_postfix(loss=f"{logs['loss']:.3f}")


class _Watch(TrainerCallback):
    """English dev every ``eval_every`` steps and at the end, best weights, NaN stop, test stop."""

    def __init__(self, run: _Run):
        self.run = run

    def on_step_end(self, args, state, control, model=None, **kwargs):
        run, step = self.run, state.global_step
        if run.dev and (step % run.eval_every == 0 or step == state.max_steps):
            run.evaluate_dev(model, state)
        if run.stop_after is not None and run.stop_after <= step < state.max_steps:
            raise _Interrupted(step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise TrainingDiverged(
                f"loss {loss} at step {state.global_step} ({self.run.name}); last good "
                f"checkpoint kept in {self.run.ckpt_root}")

    def on_save(self, args, state, control, **kwargs):
        best = self.run.out / "best.safetensors"
        if state.is_world_process_zero and best.is_file():
            shutil.copy2(best, self.run.ckpt_root / f"checkpoint-{state.global_step}" / best.name)


@dataclass
class _Run:
    name: str
    out: Path
    ckpt_root: Path
    config: TrainConfig
    dev: Sequence[TrainItem]
    pad_id: int
    num_labels: int
    eval_every: int
    runtime: Runtime
    stop_after: int | None
    best: dict = field(default_factory=lambda: {"en_dev_accuracy": -1.0, "step": -1})

    def evaluate_dev(self, model, state) -> None:
        dev = [Encoded(str(i), it.input_ids, it.token_type_ids, it.label)
               for i, it in enumerate(self.dev)]
        pred = predict(model, dev, self.pad_id, 64, self.runtime)
        acc = sum(int(p == it.label) for p, it in zip(pred, self.dev, strict=True)) / len(dev)
        record = {"step": state.global_step, "en_dev_accuracy": acc,
                  "histogram": histogram(pred, self.num_labels)}
        state.log_history.append(record)
        if self.config.selection == "best_en_dev" and acc > self.best["en_dev_accuracy"]:
            self.best = dict(record)  # on every process (the log names it); one writes the file
            if state.is_world_process_zero:
                save_file(_trainable_state(model), self.out / "best.safetensors")


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.named_parameters()
            if v.requires_grad}


def _freeze(model: torch.nn.Module, config: TrainConfig) -> None:
    base = model.base_model
    if config.freeze_word_embeddings:
        base.embeddings.word_embeddings.weight.requires_grad_(False)
    for layer in base.encoder.layer[: config.freeze_layers]:
        for p in layer.parameters():
            p.requires_grad_(False)


def _fingerprint(model_dir: str | Path, items: Sequence[TrainItem], config: TrainConfig,
                 num_labels: int, pooling: str, processes: int) -> str:
    """What a checkpoint must match to be resumed: config, base model config, data, layout."""
    h = hashlib.sha256(json.dumps([asdict(config), num_labels, pooling, processes],
                                  sort_keys=True, default=str).encode())
    h.update((Path(model_dir) / "config.json").read_bytes())
    for it in items:
        h.update(json.dumps([it.input_ids, it.token_type_ids, it.label, it.cs_copies]).encode())
    return h.hexdigest()[:16]


def _gate(config: TrainConfig, record: dict, name: str) -> dict:
    """Check the selected model's English-dev record; raise :class:`NothingLearned` on failure."""
    hist = record["histogram"]
    total = sum(hist)
    share = max(hist) / total
    majority = record["majority_share"]
    acc = record["en_dev_accuracy"]
    result = {"run": True, "en_dev_accuracy": acc, "majority_share": majority,
              "top_class_share": share, "histogram": hist,
              "max_class_share": config.gate_max_class_share, "min_margin": config.gate_min_margin}
    reasons = []
    if config.gate_max_class_share is not None and share >= config.gate_max_class_share:
        reasons.append(f"{share:.1%} of dev predictions are class {hist.index(max(hist))} "
                       f"(limit {config.gate_max_class_share:.0%})")
    if config.gate_min_margin is not None and acc < majority + config.gate_min_margin:
        reasons.append(f"dev accuracy {acc:.4f} is not {config.gate_min_margin:.3f} above the "
                       f"majority share {majority:.4f}")
    result["passed"] = not reasons
    if reasons:
        raise NothingLearned(f"{name} learned nothing (step {record['step']}): "
                             + "; ".join(reasons) + f"; English dev accuracy {acc:.4f}, majority "
                             f"share {majority:.4f}, predicted-class histogram {hist}")
    return result


def train(model_dir: str | Path, items: Sequence[TrainItem], out_dir: str | Path,
          config: TrainConfig, num_labels: int, dev_items: Sequence[TrainItem] | None = (),
          pad_id: int = 0, stop_after: int | None = None, *, pooling: str = "cls",
          runtime: Runtime | None = None, run_name: str | None = None) -> dict:
    """Fine-tune from ``model_dir``; write the selected trainable weights and a log to ``out_dir``.

    ``out_dir/checkpoints`` holds the Trainer's resumable checkpoints; a run finding one made
    with the same settings continues from it (removed once the run finishes). ``stop_after``
    simulates an interruption after that many steps (tests). ``dev_items`` (English dev) are
    evaluated during training and gate the result (:class:`NothingLearned`).
    Returns the training log (also written to ``out_dir/train.json``).
    """
    out, ckpt_root = Path(out_dir), Path(out_dir) / "checkpoints"
    name = run_name or out.name
    dev = list(dev_items or ())
    if pooling not in POOLINGS:
        raise ValueError(f"model pooling {pooling!r} is not one of {POOLINGS}")
    if config.system == "salt" and any(not it.cs_copies for it in items):
        raise ValueError("system 'salt' needs every training item to carry code-switched copies")
    if config.selection == "best_en_dev" and not dev:
        raise ValueError("train.selection=best_en_dev needs English dev items")
    process_state()  # before the first PartialState(): CPU processes under torchrun join
    runtime = runtime or decide(config.precision)
    if runtime.precision != config.precision:
        raise ValueError(f"train.precision {config.precision!r} but the runtime decided "
                         f"{runtime.precision!r}")
    out.mkdir(parents=True, exist_ok=True)
    nproc, rank = runtime.num_processes, runtime.process_index
    fingerprint = _fingerprint(model_dir, items, config, num_labels, pooling, nproc)
    stamp = ckpt_root / "fingerprint.txt"
    if stamp.is_file() and stamp.read_text().strip() != fingerprint:
        print(f"train: checkpoints in {ckpt_root} were made with other settings; starting afresh")
        if rank == 0:
            shutil.rmtree(ckpt_root)
    runtime_barrier()
    resume = get_last_checkpoint(str(ckpt_root)) if ckpt_root.is_dir() else None
    if rank == 0:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint)
    torch.manual_seed(config.seed)  # the new head's initialisation
    model = build_classifier(model_dir, num_labels, pooling)
    model.base_model.set_attn_implementation(attention_for(config.attention, runtime.device))
    _freeze(model, config)
    per_epoch = math.ceil(len(items) / (config.batch_size * nproc))
    total = max(1, round(per_epoch * config.epochs))
    eval_every = config.eval_every or per_epoch
    seen: dict = {}

    def record_runtime(module, args, kwargs):  # what the first training forward ran in
        if module.training and not seen:
            dev_type = next(module.parameters()).device.type
            on = torch.is_autocast_enabled(dev_type)
            dtype = torch.get_autocast_dtype(dev_type)
            seen.update({"device": str(next(module.parameters()).device),
                         "attention": model.base_model.config._attn_implementation,
                         "weights_dtype": str(next(module.parameters()).dtype).removeprefix("torch."),
                         "autocast": {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "other")
                         if on else "fp32"})

    # on the encoder: accelerate's autocast wraps the model's forward, inside the module call
    inner = getattr(model.base_model, "encoder", model.base_model)
    hook = inner.register_forward_pre_hook(record_runtime, with_kwargs=True)
    args = TrainingArguments(
        output_dir=str(ckpt_root), per_device_train_batch_size=config.batch_size,
        max_steps=total, learning_rate=config.lr, weight_decay=config.weight_decay,
        warmup_steps=int(config.warmup_ratio * total), lr_scheduler_type="linear",
        max_grad_norm=config.max_grad_norm, optim="adamw_torch_fused",
        seed=config.seed + 100_003 * rank,  # dropout differs across processes
        data_seed=config.seed,  # the data order does not
        bf16=config.precision == "bf16", fp16=config.precision == "fp16",
        use_cpu=runtime.device.type == "cpu", logging_steps=1, logging_nan_inf_filter=False,
        save_strategy="steps", save_steps=config.checkpoint_every, save_total_limit=1,
        eval_strategy="no", report_to="none", remove_unused_columns=False,
        dataloader_num_workers=0, average_tokens_across_devices=False,
        disable_tqdm=rank != 0, log_level="warning")
    run = _Run(name, out, ckpt_root, config, dev, pad_id, num_labels, eval_every, runtime,
               stop_after)
    common = {"model": model, "args": args, "train_dataset": _Indices(len(items)),
              "data_collator": _Collator(items, pad_id, keep_index=config.system == "salt"),
              "callbacks": [_Watch(run)], "lengths": [len(it.input_ids) for it in items],
              "salt_config": config}
    if config.system == "salt":
        trainer = SaltTrainer(items=items, pad_id=pad_id, **common)
    else:
        trainer = PairTrainer(**common)
    trainer.remove_callback(ProgressCallback)
    if rank == 0:
        trainer.add_callback(_Progress())
    if resume is not None:
        state = json.loads((Path(resume) / "trainer_state.json").read_text())
        devs = [e for e in state["log_history"] if "en_dev_accuracy" in e]
        if config.selection == "best_en_dev" and devs:
            run.best = max(devs, key=lambda e: (e["en_dev_accuracy"], -e["step"]))
            if rank == 0:
                shutil.copy2(Path(resume) / "best.safetensors", out / "best.safetensors")
    try:
        trainer.train(resume_from_checkpoint=resume)
    except _Interrupted as stop:
        return {"interrupted_at": int(stop.args[0])}
    finally:
        hook.remove()
    history = trainer.state.log_history
    raw = trainer.accelerator.unwrap_model(trainer.model)
    counts = [0] * num_labels
    for it in dev:
        counts[it.label] += 1
    majority = max(counts) / len(dev) if dev else None
    dev_log = [{**e, "majority_share": majority} for e in history if "en_dev_accuracy" in e]
    log = {"loss": [round(e["loss"], 6) for e in history if "loss" in e], "dev": dev_log,
           "resumed_from": int(Path(resume).name.split("-")[-1]) if resume else None,
           "fingerprint": fingerprint, "steps": trainer.state.global_step,
           "steps_per_epoch": per_epoch, "train_items": len(items), "processes": nproc,
           "wall_time_s": round(sum(e.get("train_runtime", 0.0) for e in history), 2),
           "config": asdict(config), "pooling": pooling, "runtime": dict(seen), "selected": "last"}
    if config.selection == "best_en_dev":
        log["selected"] = next(e for e in dev_log if e["step"] == run.best["step"])
    selected = log["selected"] if config.selection == "best_en_dev" else (dev_log or [None])[-1]
    gate_off = config.gate_max_class_share is None and config.gate_min_margin is None
    if selected is None or gate_off:
        log["gate"] = {"run": False, "reason": "gate disabled in train params" if gate_off
                       else "no English dev items given"}
    if rank == 0:
        if config.selection == "best_en_dev":
            (out / "best.safetensors").replace(out / "model.safetensors")
        else:
            save_file(_trainable_state(raw), out / "model.safetensors")
    try:
        if "gate" not in log:
            log["gate"] = _gate(config, selected, name)
    except NothingLearned as err:
        log["gate"] = {"run": True, "passed": False, "error": str(err)}
        raise
    finally:
        if rank == 0:
            (out / "train.json").write_text(json.dumps(log, indent=1))
            if "passed" in log["gate"] and not log["gate"]["passed"]:
                (out / "model.safetensors").unlink(missing_ok=True)
    runtime_barrier()
    if rank == 0:
        shutil.rmtree(ckpt_root, ignore_errors=True)
    return log


def runtime_barrier() -> None:
    """Wait for every process (a no-op in one process)."""
    process_state().wait_for_everyone()


def load_trained(model_dir: str | Path, run_dir: str | Path, num_labels: int):
    """Base model + the run's trained weights (pooling as recorded in ``train.json``); refuses
    weights that do not fit the base."""
    log_path = Path(run_dir) / "train.json"
    if not log_path.is_file():
        raise FileNotFoundError(f"{log_path}: no training log (the run did not finish)")
    pooling = json.loads(log_path.read_text())["pooling"]
    model = build_classifier(model_dir, num_labels, pooling)
    state = load_file(Path(run_dir) / "model.safetensors")
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"{run_dir}/model.safetensors has keys the base model lacks: "
                         f"{result.unexpected_keys[:5]}")
    trained = set(state)
    missing_trainable = [k for k in result.missing_keys if k in trained]
    if missing_trainable:
        raise ValueError(f"{run_dir}: weights missing for {missing_trainable[:5]}")
    model.eval()
    return model
