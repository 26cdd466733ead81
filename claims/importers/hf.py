"""Hugging Face example-script outputs (``run_xnli.py`` style): ``all_results.json`` (or
``eval_results.json`` / ``predict_results.json``) and ``predict_results*.txt``.

Those scripts evaluate one language per output folder and never write the language, the seed or
the base model into the metrics, so language comes from ``--language`` or the folder name, seed
from ``--seed``. ``eval_*`` numbers are on the validation (dev) split and ``predict_*`` on the test
split, as those scripts load them; ``*_samples`` gives the item count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import (
    Draft,
    ImportOptions,
    LanguageNumbers,
    SourceError,
    as_fraction,
    check_system,
    get_spec,
    read_json,
)
from .xtreme import gold_revision, read_labels, score

METRIC_FILES = ("all_results.json", "eval_results.json", "predict_results.json")
PHASE_SPLIT = {"predict": "test", "eval": "dev"}


def _is_run_dir(folder: Path) -> bool:
    return any((folder / f).is_file() for f in METRIC_FILES) or any(folder.glob("predict_results*.txt"))


def _run_dirs(src: Path, opts: ImportOptions, langs: tuple[str, ...]) -> list[tuple[str, Path]]:
    if src.is_file():
        if opts.language is None:
            raise SourceError(f"{src}: the file does not say its language; pass --language")
        return [(opts.language, src)]
    if not src.is_dir():
        raise SourceError(f"{src}: not found")
    if _is_run_dir(src):
        lang = opts.language or (src.name if src.name in langs else None)
        if lang is None:
            raise SourceError(f"{src}: the outputs do not say their language; pass --language "
                              "or name the folder after it")
        return [(lang, src)]
    if opts.language is not None:
        raise SourceError(f"{src}: --language names the language of one run folder, but this "
                          "folder holds one sub-folder per language")
    subs = [d for d in sorted(src.iterdir()) if d.is_dir() and _is_run_dir(d)]
    if not subs:
        raise SourceError(f"{src}: no {' / '.join(METRIC_FILES)} or predict_results*.txt found")
    bad = [d.name for d in subs if d.name not in langs]
    if bad:
        raise SourceError(f"{src}: sub-folders {bad} are not task languages; one folder per "
                          "evaluation language is expected")
    return [(d.name, d) for d in subs]


def _metrics(files: list[Path]) -> tuple[dict[str, Any], list[Path]]:
    """Merged metric keys and the files they came from (all_results.json wins when present)."""
    json_files = [p for p in files if p.suffix == ".json"]
    if any(p.name == "all_results.json" for p in json_files):
        json_files = [p for p in json_files if p.name == "all_results.json"]
    merged: dict[str, Any] = {}
    for path in json_files:
        obj = read_json(path)
        if not isinstance(obj, dict):
            raise SourceError(f"{path}: top level must be an object of metrics")
        merged.update(obj)
    return merged, json_files


def read(src: Path, opts: ImportOptions) -> list[tuple[Draft, list[Path]]]:
    spec = get_spec(opts.task, f"{src} (hf outputs do not name the task)")
    system = check_system(opts.system, str(src))
    wanted = {"test": "predict", "dev": "eval"}.get(opts.split or "")
    numbers: dict[str, LanguageNumbers] = {}
    preds: dict[str, Any] = {}
    used: list[Path] = []
    sizes: dict[str, int | None] = {}
    split_of: set[str] = set()
    model = None
    versions = None
    for lang, folder in _run_dirs(src, opts, spec.languages):
        files = [folder] if folder.is_file() else \
            [folder / f for f in METRIC_FILES if (folder / f).is_file()] + \
            sorted(folder.glob("predict_results*.txt"))
        metrics, json_used = _metrics(files)
        txts = [p for p in files if p.suffix == ".txt"]
        phases = [p for p in ("predict", "eval") if f"{p}_accuracy" in metrics]
        if txts:
            phases = ["predict"] + [p for p in phases if p != "predict"]
        phase = wanted or (phases[0] if phases else None)
        if phase is None or phase not in phases:
            raise SourceError(f"{folder}: no {'/'.join(f'{p}_accuracy' for p in PHASE_SPLIT)} "
                              f"key{' for --split ' + opts.split if opts.split else ''} in "
                              f"{[p.name for p in files]}")
        split = PHASE_SPLIT[phase]
        split_of.add(split)
        if phase == "predict" and txts:
            if len(txts) > 1:
                raise SourceError(f"{folder}: several prediction files {[p.name for p in txts]}; "
                                  "pass one file")
            predicted = read_labels(txts[0], spec, header="index\tprediction")
            preds[lang], numbers[lang] = score(spec, split, lang, predicted, str(txts[0]),
                                               opts.data_dir)
            if "predict_accuracy" in metrics:
                stated = as_fraction(metrics["predict_accuracy"], f"{folder}: predict_accuracy")
                if abs(stated - numbers[lang].accuracy) > 1e-6:
                    raise SourceError(f"{txts[0]}: scores {numbers[lang].accuracy:.6f} against the "
                                      f"gold labels but predict_accuracy says {stated:.6f}")
            used.append(txts[0])
        else:
            acc = as_fraction(metrics[f"{phase}_accuracy"], f"{folder}: key {phase}_accuracy")
            n = metrics.get(f"{phase}_samples")
            numbers[lang] = LanguageNumbers(acc, n if isinstance(n, int) else None,
                                            f"{phase}_samples" if isinstance(n, int) else None)
        used.extend(json_used)
        if isinstance(metrics.get("train_samples"), int):
            sizes["train"] = metrics["train_samples"]
        cfg = folder / "config.json" if folder.is_dir() else None
        if cfg is not None and cfg.is_file():
            conf = read_json(cfg)
            name = conf.get("_name_or_path") if isinstance(conf, dict) else None
            if isinstance(name, str) and name and not Path(name).is_absolute():
                model = name
            if isinstance(conf, dict) and isinstance(conf.get("transformers_version"), str):
                versions = {"transformers": conf["transformers_version"]}
            used.append(cfg)
    if len(split_of) > 1:
        raise SourceError(f"{src}: languages mix test (predict_*) and dev (eval_*) numbers; "
                          "pass --split")
    split = split_of.pop()
    draft = Draft(spec.name, system, opts.seed, numbers, preds or None, split=split,
                  split_from=f"{'predict' if split == 'test' else 'eval'}_* keys (run_xnli loads "
                             f"the {'test' if split == 'test' else 'validation'} split)",
                  model=model, sizes=sizes, versions=versions)
    if preds and len(preds) != len(numbers):
        raise SourceError(f"{src}: some languages have predict_results*.txt and some do not; "
                          "import them separately")
    if preds:
        rev = gold_revision(spec.name, split, list(preds), opts.data_dir)
        draft.data_source, draft.data_revision = f"local:{rev}", rev
    return [(draft, used)]
