"""Stage ``mlm``: train an MLM head where the model source lacks one (``salt.mlm_head``) and
measure fill-mask accuracy either way; ``work/mlm/mlm.json`` points at the masked LM to use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Interval, Lt
from pydantic import BaseModel

from salt import mlm_head, runtime
from salt.config import STRICT, ConfigError, Params, build, dataclass_schema
from salt.models import ModelSourceError
from salt.stages.common import Precision, quiet_transformers
from salt.workdir import Paths, dump, unlabeled_texts

GROUP = "mlm"
READS = ("profile", "tasks", "mlm")
ERRORS = (mlm_head.MLMHeadError, ModelSourceError, runtime.PrecisionError)

# What may be left out of a trained head's settings: how the work is carried out, not its result.
OPERATIONAL = ("languages", "source_language", "encode_batch_size", "checkpoint_every",
               "log_every", "save_cache", "keep_checkpoint", "progress")
Probability = Interval(ge=0.0, le=1.0)
TRAINED = dataclass_schema(
    mlm_head.MLMHeadConfig,
    optional=OPERATIONAL,
    limits={"encode_sentences": Ge(1), "max_steps": Ge(1),
            "batch_size": Ge(1), "head_batch_size": Ge(1), "lr": Ge(0), "layer_lr": Ge(0),
            "weight_decay": Ge(0), "warmup_steps": Ge(0), "mask_prob": Interval(gt=0, lt=1),
            "train_top_layers": Ge(0), "head_layer": Ge(1), "prototype_scale": Gt(0),
            "prototype_temperature": Gt(0), "ema_momentum": Probability,
            "held_out_fraction": (Ge(0), Lt(1)), "max_length": Ge(8),
            "max_sentences_per_language": Ge(1), "seed": Ge(0), "eval_sentences": Ge(1)},
    extra_fields={"train": (Literal[True], ...), "precision": (Precision, ...)})


class Probe(BaseModel):
    """``mlm.<profile>`` with ``train: false``: the source's own head, measured only."""

    model_config = STRICT
    train: Literal[False]
    precision: Precision
    eval_sentences: Annotated[int, Ge(1)]
    mask_prob: Annotated[float, Interval(gt=0, lt=1)]
    max_length: Annotated[int, Ge(8)]
    seed: Annotated[int, Ge(0)]


@dataclass(frozen=True)
class Config:
    tasks: tuple[str, ...]
    precision: str
    head: mlm_head.MLMHeadConfig | None  # None: measure the source's own head (a Probe)
    probe: Probe | None


def check(params: Params, profile: str) -> Config:
    entry = params.entry(GROUP, profile)
    where = f"{GROUP}.{profile}"
    if not isinstance(entry.get("train"), bool):
        raise ConfigError(f"{params.path}: {where}.train: value {entry.get('train')!r} refused; "
                          "allowed: true (train a head) or false (measure the source's head)")
    if not entry["train"]:
        probe = params.settings(GROUP, Probe, profile)
        return Config(params.tasks, probe.precision, None, probe)
    settings = params.settings(GROUP, TRAINED, profile)
    head = build(mlm_head.MLMHeadConfig, settings, where, params.path)
    return Config(params.tasks, settings.precision, head, None)


def configure(params: Params, args=None) -> Config:
    return check(params, params.profile)


def run(config: Config, paths: Paths) -> None:
    from salt.models import load_masked_lm, load_tokenizer

    quiet_transformers()
    rt = runtime.decide(config.precision)
    base = paths.model_dir()
    texts = unlabeled_texts(paths, config.tasks)
    report: dict[str, Any]
    if config.head is not None:
        model_dir = paths.mlm / "model"
        report = mlm_head.train_mlm_head(base, texts, model_dir, config.head, runtime=rt)
    else:
        model_dir = base
        probe = config.probe
        model = rt.place(load_masked_lm(base))
        fill = mlm_head.fill_mask_accuracy(
            model, load_tokenizer(base), texts, mask_prob=probe.mask_prob,
            eval_sentences=probe.eval_sentences, seed=probe.seed, max_length=probe.max_length,
            runtime=rt)
        report = {"trained": False, "fill_mask": fill, "runtime": runtime.observed(model, rt)}
    dump(paths.mlm / "mlm.json", {"model_dir": paths.rel(model_dir), **report})
    print(f"mlm: {paths.rel(model_dir)}")
