"""Stage ``train``: fine-tune one task x system x seed on English (``salt.train``); ``salt``
also reads the task's code-switched copies. Both systems share every setting but ``system``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge, Gt, Interval

from salt import runtime
from salt import train as training
from salt.codeswitch import CodeSwitchError
from salt.config import ConfigError, Params, build, dataclass_schema
from salt.models import ModelSourceError
from salt.stages import model as model_stage
from salt.stages.common import Precision, quiet_transformers
from salt.workdir import Paths, read_examples

GROUP = "train"
READS = ("profile", "tasks", "model", "train")
ERRORS = (training.TrainingDiverged, training.NothingLearned, CodeSwitchError, ModelSourceError,
          runtime.PrecisionError)
SYSTEMS = ("baseline", "salt")

SETTINGS = dataclass_schema(
    training.TrainConfig,
    set_by_stage=("system", "seed", "precision"),
    limits={"epochs": Gt(0), "batch_size": Ge(1), "lr": Gt(0), "weight_decay": Ge(0),
            "warmup_ratio": Interval(ge=0.0, le=1.0), "max_grad_norm": Ge(0),
            "freeze_layers": Ge(0), "group_by_length": Ge(0), "eval_every": Ge(0),
            "checkpoint_every": Ge(1), "mixup.alpha": Gt(0), "mixup.beta": Gt(0),
            "gate_max_class_share": Interval(ge=0.0, le=1.0), "gate_min_margin": Ge(0)},
    extra_fields={"precision": (Precision, ...),
                  # seeds per arm the statistics need; fewer in 'seeds' stops the run
                  "min_seeds": (Annotated[int, Ge(1)], ...)})


@dataclass(frozen=True)
class Config:
    task: str
    precision: str
    max_length: int
    pooling: str  # model.<profile>.pooling
    method: training.TrainConfig  # system and seed of this run included


def _method(params: Params, profile: str, system: str, seed: int):
    settings = params.settings(GROUP, SETTINGS, profile)
    stage_values = {"system": system, "seed": seed, "precision": "fp32"}  # precision: run()
    method = build(training.TrainConfig, settings, f"{GROUP}.{profile}", params.path,
                   **stage_values)
    return settings, method


def check(params: Params, profile: str) -> training.TrainConfig:
    settings, method = _method(params, profile, "baseline", 0)
    if profile == params.profile and len(params.seeds) < settings.min_seeds:
        raise ConfigError(f"{params.path}: profile {profile!r} needs at least "
                          f"{settings.min_seeds} seeds per arm (train.{profile}.min_seeds), "
                          f"'seeds' has {len(params.seeds)} (e.g. -S 'seeds=[0,1,2,3,4]')")
    return method


def configure(params: Params, args) -> Config:
    if args.task not in params.tasks:
        raise ConfigError(f"--task {args.task!r} is not in params 'tasks' {list(params.tasks)}")
    check(params, params.profile)
    settings, method = _method(params, params.profile, args.system, args.seed)
    model = params.settings("model", model_stage.Settings)
    return Config(args.task, settings.precision, model.max_length, model.pooling, method)


def items(config: Config, paths: Paths, tok):
    """Training items (with code-switched copies for ``salt``) and English dev items."""
    from salt.codeswitch import read_jsonl
    from salt.encoding import encode_pairs

    task = config.task
    train = encode_pairs(tok, read_examples(paths.prepared(task, "train-en")), config.max_length)
    dev = encode_pairs(tok, read_examples(paths.prepared(task, "dev-en")), config.max_length)
    if config.method.system == "salt":
        rows = training.items_from_codeswitch(read_jsonl(paths.codeswitch(task)), train)
    else:
        rows = training.items_from_encoded(train)
    return rows, training.items_from_encoded(dev)


def run(config: Config, paths: Paths) -> None:
    from salt.models import load_tokenizer
    from salt.tasks import get_task

    quiet_transformers()
    rt = runtime.decide(config.precision)
    method = dataclasses.replace(config.method, precision=rt.precision)
    base = paths.model_dir()
    tok = load_tokenizer(base)
    train_items, dev_items = items(config, paths, tok)
    out = paths.run(config.task, method.system, method.seed)
    log = training.train(base, train_items, out, method, len(get_task(config.task).labels),
                         dev_items=dev_items, pad_id=tok.pad_token_id, pooling=config.pooling,
                         runtime=rt, run_name=f"{config.task}-{method.system}-{method.seed}")
    print(f"train {config.task} {method.system} seed {method.seed}: {log['steps']} steps, "
          f"{log['wall_time_s']} s -> {paths.rel(out)}")
