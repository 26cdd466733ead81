"""Fine-tuning for both systems through one loop (Hugging Face Accelerate).

``baseline`` trains on the English pairs. ``salt`` trains on the same pairs with each instance's
input word embeddings mixed with a code-switched copy (``salt.mixup``); every other setting is
identical. Step-level randomness (shuffling, copy choice, r) derives from (seed, step), so a run
resumed from a checkpoint reproduces an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from salt.encoding import Encoded, pad_batch
from salt.mixup import MixupConfig, mixed_input_embeddings, sample_r, step_generator
from salt.models import load_classifier


class TrainingDiverged(RuntimeError):
    """Loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    """Fine-tuning settings shared by both systems (only ``system`` differs between arms)."""

    system: str = "baseline"  # baseline | salt
    seed: int = 0
    epochs: float = 2.0
    batch_size: int = 16
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    freeze_word_embeddings: bool = True  # the mixup still flows through them; saves optimizer work
    freeze_layers: int = 0  # bottom encoder layers kept frozen (CPU speed knob)
    group_by_length: int = 0  # >0: batches of similar length within runs of that many batches
    selection: str = "last"  # last | best_en_dev (English dev only, never target languages)
    eval_every: int = 0  # steps between English-dev evaluations for best_en_dev (0: per epoch)
    checkpoint_every: int = 50  # steps between resumable checkpoints
    bf16: bool = False  # autocast to bfloat16 (CPU with native bf16 or GPU)
    loss_terms: tuple[str, ...] = ("mixed",)  # salt only: mixed and/or clean
    mixup: MixupConfig = field(default_factory=MixupConfig)

    def __post_init__(self) -> None:
        if self.system not in ("baseline", "salt"):
            raise ValueError(f"train.system: unknown {self.system!r}; use baseline|salt")
        if self.selection not in ("last", "best_en_dev"):
            raise ValueError(f"train.selection: unknown {self.selection!r}; use last|best_en_dev")
        if not set(self.loss_terms) <= {"mixed", "clean"} or not self.loss_terms:
            raise ValueError(f"train.loss_terms: {self.loss_terms!r}; use a subset of mixed, clean")
        if isinstance(self.mixup, dict):
            self.mixup = MixupConfig(**self.mixup)
        self.loss_terms = tuple(self.loss_terms)


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
    order is then shuffled again. 0 keeps plain random batches.
    """
    g = torch.Generator().manual_seed(seed * 10_007 + epoch)
    order = torch.randperm(len(lengths), generator=g).tolist()
    if group_by_length > 0:
        span = batch_size * group_by_length
        order = [i for k in range(0, len(order), span)
                 for i in sorted(order[k : k + span], key=lambda i: (-lengths[i], i))]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if group_by_length > 0:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
    return batches


def _collate(items: Sequence[TrainItem], pad_id: int, step_gen: torch.Generator | None):
    """Pad a batch; for SALT also pick one copy per instance with the step's generator."""
    ids, mask = pad_batch([it.input_ids for it in items], pad_id)  # (B, T)
    batch = {"input_ids": ids, "attention_mask": mask,
             "labels": torch.tensor([it.label for it in items])}
    if items[0].token_type_ids is not None:
        batch["token_type_ids"] = pad_batch([it.token_type_ids for it in items], 0)[0]
    if step_gen is not None:
        picks = [int(torch.randint(len(it.cs_copies), (1,), generator=step_gen))
                 for it in items]
        batch["cs_input_ids"] = pad_batch(
            [it.cs_copies[k] for it, k in zip(items, picks, strict=True)], pad_id)[0]
    return batch


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


def salt_loss(model, embedding: torch.nn.Embedding, batch: dict, config: TrainConfig,
              r: torch.Tensor) -> torch.Tensor:
    """Loss of one SALT step: the mixed instance (and the clean one if asked), labels unchanged.

    ``model`` may be wrapped for distribution; ``embedding`` is its input word embedding layer.
    """
    extra = {k: batch[k] for k in ("attention_mask", "token_type_ids") if k in batch}
    loss = torch.zeros(())
    if "mixed" in config.loss_terms:
        h = mixed_input_embeddings(embedding, batch["input_ids"], batch["cs_input_ids"], r)  # (B, T, H)
        loss = loss + model(inputs_embeds=h, labels=batch["labels"], **extra).loss
    if "clean" in config.loss_terms:
        loss = loss + model(input_ids=batch["input_ids"], labels=batch["labels"], **extra).loss
    return loss / len(config.loss_terms)


def accuracy(model, items: Sequence[TrainItem], pad_id: int, batch_size: int = 64) -> float:
    """Plain accuracy on labelled items (English dev for model selection)."""
    was_training = model.training
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(items), batch_size):
            b = _collate(items[i : i + batch_size], pad_id, None)
            labels = b.pop("labels")
            logits = model(**{k: v.to(model.device) for k, v in b.items()}).logits
            correct += int((logits.argmax(-1).cpu() == labels).sum())
    model.train(was_training)
    return correct / max(len(items), 1)


def _fingerprint(model_dir: str | Path, items: Sequence[TrainItem], config: TrainConfig,
                 num_labels: int) -> str:
    """What a checkpoint must match to be resumed: config, base model config, data."""
    h = hashlib.sha256(json.dumps([asdict(config), num_labels], sort_keys=True,
                                  default=str).encode())
    h.update((Path(model_dir) / "config.json").read_bytes())
    for it in items:
        h.update(json.dumps([it.input_ids, it.token_type_ids, it.label, it.cs_copies]).encode())
    return h.hexdigest()[:16]


def train(model_dir: str | Path, items: Sequence[TrainItem], out_dir: str | Path,
          config: TrainConfig, num_labels: int, dev_items: Sequence[TrainItem] = (),
          pad_id: int = 0, stop_after: int | None = None) -> dict:
    """Fine-tune from ``model_dir``; write the selected weights and a log to ``out_dir``.

    ``out_dir/checkpoint`` holds everything needed to resume (trainable weights, optimizer,
    scheduler, RNG state, step); a run finding it continues from there. ``stop_after`` ends the
    run after that many steps (to simulate an interruption in tests).
    Returns the training log (also written to ``out_dir/train.json``).
    """
    out, ckpt = Path(out_dir), Path(out_dir) / "checkpoint"
    out.mkdir(parents=True, exist_ok=True)
    if config.system == "salt" and any(not it.cs_copies for it in items):
        raise ValueError("system 'salt' needs every training item to carry code-switched copies")
    if config.selection == "best_en_dev" and not dev_items:
        raise ValueError("train.selection=best_en_dev needs English dev items")
    # cpu=True on machines without CUDA lets several CPU processes (torchrun) join over gloo.
    accelerator = Accelerator(mixed_precision="bf16" if config.bf16 else "no",
                              cpu=not torch.cuda.is_available())
    set_seed(config.seed)
    model = load_classifier(model_dir, num_labels)
    _freeze(model, config)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    # fused AdamW (one kernel over all parameters) where torch offers it for the device
    fused = accelerator.device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr,
                                  fused=fused)
    # batch_size is per process; one optimizer step consumes batch_size x processes items.
    per_epoch = math.ceil(len(items) / (config.batch_size * accelerator.num_processes))
    total = max(1, round(per_epoch * config.epochs))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
    fingerprint = _fingerprint(model_dir, items, config, num_labels)
    step, log = 0, {"loss": [], "dev": [], "resumed_from": None, "fingerprint": fingerprint}
    best = {"score": -1.0, "step": -1}
    if (ckpt / "log.json").is_file():
        old = json.loads((ckpt / "log.json").read_text()).get("fingerprint")
        if old != fingerprint:  # another config, model or data: never resume across them
            print(f"train: checkpoint in {ckpt} was made with other settings; starting afresh")
            shutil.rmtree(ckpt)
    if (ckpt / "state.pt").is_file():
        model.load_state_dict(load_file(ckpt / "trainable.safetensors"), strict=False)
        state = torch.load(ckpt / "state.pt", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        step = int(state["step"])
        log = json.loads((ckpt / "log.json").read_text())
        best = log.pop("best")
        log["resumed_from"] = step
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    raw = accelerator.unwrap_model(model)
    nproc, rank = accelerator.num_processes, accelerator.process_index
    eval_every = config.eval_every or per_epoch
    started = time.perf_counter()
    model.train()
    bar = tqdm(total=total, initial=step, desc=f"train {config.system} seed {config.seed}",
               disable=not accelerator.is_main_process)

    def save_checkpoint() -> None:
        if not accelerator.is_main_process:
            return
        tmp = out / "checkpoint.tmp"
        tmp.mkdir(exist_ok=True)
        save_file(_trainable_state(raw), tmp / "trainable.safetensors")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state(), "step": step}, tmp / "state.pt")
        (tmp / "log.json").write_text(json.dumps({**log, "best": best}))
        if ckpt.exists():
            for f in ckpt.iterdir():
                f.unlink()
            ckpt.rmdir()
        tmp.rename(ckpt)

    lengths = [len(it.input_ids) for it in items]
    epoch_batches = None
    while step < total:
        epoch, pos = divmod(step, per_epoch)
        if pos == 0 or epoch_batches is None:
            epoch_batches = _batches(lengths, config.batch_size * nproc, config.seed, epoch,
                                     config.group_by_length)
        batch_ids = epoch_batches[pos]
        batch_ids = batch_ids[rank::nproc] or batch_ids[:1]
        gen = step_generator(config.seed, step) if config.system == "salt" else None
        batch = _collate([items[i] for i in batch_ids], pad_id, gen)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        with accelerator.autocast():
            if config.system == "salt":
                hidden = raw.config.hidden_size
                r = sample_r(len(batch_ids), batch["input_ids"].shape[1], hidden, config.mixup,
                             step_generator(config.seed, step, stream=1))  # (B, 1|T, H)
                loss = salt_loss(model, raw.get_input_embeddings(), batch, config,
                                 r.to(accelerator.device))
            else:
                loss = model(**batch).loss
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"loss {loss.item()} at step {step} (seed {config.seed}, "
                                   f"{config.system}); last good checkpoint kept in {ckpt}")
        accelerator.backward(loss)
        if config.max_grad_norm:
            accelerator.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss_value = float(loss.detach())
        log["loss"].append(round(loss_value, 6))
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}")
        if config.selection == "best_en_dev" and (step % eval_every == 0 or step == total):
            score = accuracy(raw, dev_items, pad_id)
            log["dev"].append({"step": step, "en_dev_accuracy": score})
            if score > best["score"] and accelerator.is_main_process:
                best = {"score": score, "step": step}
                save_file(_trainable_state(raw), out / "best.safetensors")
        if step % config.checkpoint_every == 0 or step == total:
            save_checkpoint()
        if stop_after is not None and step >= stop_after and step < total:
            bar.close()
            return {"interrupted_at": step}
    bar.close()
    accelerator.wait_for_everyone()
    log.update({"steps": step, "steps_per_epoch": per_epoch, "train_items": len(items),
                "processes": nproc, "wall_time_s": round(time.perf_counter() - started, 2),
                "config": asdict(config), "selected": "last"})
    if accelerator.is_main_process:
        if config.selection == "best_en_dev":
            (out / "best.safetensors").replace(out / "model.safetensors")
            log["selected"] = best
        else:
            save_file(_trainable_state(raw), out / "model.safetensors")
        (out / "train.json").write_text(json.dumps(log, indent=1))
    return log


def load_trained(model_dir: str | Path, run_dir: str | Path, num_labels: int):
    """Base model + the run's trained weights; refuses weights that do not fit the base."""
    model = load_classifier(model_dir, num_labels)
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
