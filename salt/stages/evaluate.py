"""Stage ``evaluate``: zero-shot accuracy of one trained run on every language's test set, and
the metrics file (``salt.schema``) with item-level predictions and full provenance. The only
stage that writes results; it records every group of the profile (``Params.shared``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from annotated_types import Ge
from pydantic import BaseModel

from salt import runtime
from salt.config import GROUPS, STRICT, ConfigError, Params
from salt.distributed import process_state
from salt.models import ModelSourceError
from salt.schema import SchemaError
from salt.stages import model as model_stage
from salt.stages.common import Precision, quiet_transformers
from salt.workdir import Paths, dump, read_examples, read_manifest

GROUP = "evaluate"
READS = ("profile", "tasks", *GROUPS)  # all: provenance records every group and their hash
ERRORS = (ModelSourceError, SchemaError, runtime.PrecisionError)


class Settings(BaseModel):
    """``evaluate.<profile>``."""

    model_config = STRICT
    batch_size: Annotated[int, Ge(1)]
    precision: Precision


@dataclass(frozen=True)
class Config:
    task: str
    system: str
    seed: int
    settings: Settings
    model: model_stage.Settings
    profile: str
    recorded: dict[str, Any]  # Params.shared(): what provenance copies
    params_hash: str


def check(params: Params, profile: str) -> Settings:
    return params.settings(GROUP, Settings, profile)


def configure(params: Params, args) -> Config:
    if args.task not in params.tasks:
        raise ConfigError(f"--task {args.task!r} is not in params 'tasks' {list(params.tasks)}")
    return Config(args.task, args.system, args.seed, check(params, params.profile),
                  params.settings("model", model_stage.Settings), params.profile,
                  params.shared(), params.hash)


def dictionary_shares(stats: dict) -> dict[str, float]:
    """Share of substitutions that are dictionary translations, per language and pooled
    ("overall") over languages that have a dictionary. Evaluation only."""
    shares, hits, total = {}, 0, 0
    for lang, st in stats.get("per_language", {}).items():
        d = st.get("dictionary")
        if isinstance(d, dict) and d.get("substitutions"):
            shares[lang] = d["translations"] / d["substitutions"]
            hits, total = hits + d["translations"], total + d["substitutions"]
    if total:
        shares["overall"] = hits / total
    return shares


def _extra(config: Config, paths: Paths, train_log: dict) -> dict[str, Any]:
    extra: dict[str, Any] = {"train": {k: train_log[k] for k in ("steps", "wall_time_s",
                                                                 "selected")}}
    extra["train"]["dev_history"] = train_log.get("dev")  # English dev accuracy + class histogram
    mlm_json = paths.mlm / "mlm.json"
    if mlm_json.is_file():
        head = json.loads(mlm_json.read_text())
        cfg_head = head.get("config", {})
        extra["mlm_head"] = {
            "trained": head.get("trained"),
            "objective": cfg_head.get("objective", "pretrained masked LM head"),
            "input": head.get("input", "masked"),
            "head_layer": cfg_head.get("head_layer"),
            "centring": head.get("centring"),
            "note": ("input 'unmasked': fill-mask figures measure recovery of the unmasked "
                     "token, not masked prediction" if head.get("input") == "unmasked" else ""),
        }
        extra["fill_mask"] = head.get("fill_mask")
        if head.get("budget"):  # a budget that cut the head's text short shows in every file
            extra["budgets"] = [head["budget"]]
    stats_path = paths.codeswitch_stats(config.task)
    if config.system == "salt" and stats_path.is_file():
        stats = json.loads(stats_path.read_text())
        extra["codeswitch"] = {k: v for k, v in stats.items() if k not in ("config", "runtime")}
        extra["codeswitch"]["dict_translation_share"] = dictionary_shares(stats)
    return extra


def _device(observed: dict[str, str]) -> str:
    name = observed.get("device_name")
    return observed["device"] + (f" ({name})" if name else "")


def run(config: Config, paths: Paths) -> None:
    from salt import provenance
    from salt.encoding import encode_pairs
    from salt.evaluate import build_metrics, evaluate_languages
    from salt.models import load_tokenizer
    from salt.tasks import get_task
    from salt.train import load_trained

    quiet_transformers()
    started = time.perf_counter()
    task, spec = config.task, get_task(config.task)
    rt = runtime.decide(config.settings.precision)
    base = paths.model_dir()
    tok = load_tokenizer(base)
    run_dir = paths.run(task, config.system, config.seed)
    model = rt.place(load_trained(base, run_dir, len(spec.labels)))
    manifest = read_manifest(paths)
    sizes = manifest["sizes"][task]
    test = {lang: encode_pairs(tok, read_examples(paths.prepared(task, f"test-{lang}")),
                               config.model.max_length)
            for lang in sizes["languages"]}
    trace: dict[str, Any] = {}  # what the model ran in, read back inside the predict loop
    languages, predictions = evaluate_languages(model, spec, test, tok.pad_token_id,
                                                config.settings.batch_size, runtime=rt,
                                                trace=trace)
    if not process_state().is_main_process:
        return  # every process holds the gathered predictions; the main one writes them
    ran = {k: trace[k] for k in ("device", "weights_dtype", "autocast", "device_name")
           if k in trace}
    train_log = json.loads((run_dir / "train.json").read_text())
    name = f"{task}-{config.system}-{config.seed}"
    out = paths.results / "metrics" / f"{name}.json"
    prov = {
        "profile": config.profile,
        "model": config.model.source,
        "sizes": {k: v for k, v in sizes.items() if isinstance(v, int)},
        "seeds": {"train": config.seed, "subset": manifest["subset_seed"],
                  "codeswitch": config.recorded["codeswitch"]["seed"]},
        "git_commit": provenance.git_commit(Path(__file__).resolve().parents[2]),
        "params_hash": config.params_hash,
        "params": config.recorded,
        "versions": provenance.versions(),
        "device": _device(ran),
        "runtime": ran,
        "split": "test",
        "origin": {"kind": "pipeline", "format": None,
                   "source": paths.rel(out), "sha256": None},
        "data_source": manifest["data_source"],
        "data_revision": manifest["revision"],
        "wall_time_s": round(train_log["wall_time_s"] + time.perf_counter() - started, 2),
        "created_utc": provenance.utc_now(),
    }
    metrics = build_metrics(spec, config.system, config.seed, languages, predictions, prov,
                            _extra(config, paths, train_log))
    dump(out, metrics)
    summary = {"accuracy": {lang: round(r["accuracy"], 4) for lang, r in languages.items()},
               "average": {k: (round(v, 4) if v is not None else None)
                           for k, v in metrics["averages"].items()}}
    dump(paths.results / "summary" / f"{name}.json", summary)
    _write_plot_rows(paths.results / "plots" / f"{name}.csv", task, config.system, config.seed,
                     languages)
    print(f"evaluate {name}: average {metrics['averages']['all']:.4f} "
          f"(without en {metrics['averages']['without_en']:.4f})")


def _write_plot_rows(path: Path, task: str, system: str, seed: int, languages: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["language,accuracy,task,system,seed"]
    lines += [f"{lang},{r['accuracy']:.6f},{task},{system},{seed}" for lang, r in languages.items()]
    path.write_text("\n".join(lines) + "\n")
