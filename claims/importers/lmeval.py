"""lm-evaluation-harness results JSON: ``results`` with ``xnli_<lang>`` / ``paws_<lang>`` tasks,
``acc`` and ``acc_stderr`` (``acc,none`` in newer versions), plus ``config``, ``versions``,
``n-samples`` and ``configs`` where the version writes them.

The item count comes from ``n-samples`` when present, else from ``acc_stderr``: the harness
reports the sample standard error ``sqrt(acc (1 - acc) / (n - 1))``, so
``n = acc (1 - acc) / acc_stderr**2 + 1`` when that is an integer. The split comes from the task
config's ``test_split`` / ``validation_split`` (the harness scores the test split when a task has
one); never guessed.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .common import Draft, ImportOptions, LanguageNumbers, SourceError, as_fraction, check_system, read_json

TASK_RE = re.compile(r"^(xnli|paws)_([a-z]{2})$")
TASK_NAMES = {"xnli": "xnli", "paws": "pawsx"}
SEED_KEYS = ("random_seed", "numpy_seed", "torch_seed", "fewshot_seed")


def _metric(entry: dict[str, Any], name: str) -> Any:
    for key in (name, f"{name},none"):
        if key in entry:
            return entry[key]
    return None


def n_from_stderr(acc: float, stderr: Any) -> int | None:
    """The n for which the harness's sample standard error of ``acc`` is ``stderr``."""
    if not isinstance(stderr, int | float) or isinstance(stderr, bool) or stderr <= 0:
        return None
    n = acc * (1 - acc) / stderr**2 + 1
    k = round(n)
    if k < 2 or abs(n - k) > 0.05 or abs(round(acc * k) - acc * k) > 1e-4:
        return None
    return k


def _split(configs: Any, name: str) -> tuple[str | None, str | None]:
    conf = configs.get(name) if isinstance(configs, dict) else None
    if not isinstance(conf, dict):
        return None, None
    if conf.get("test_split"):
        return ("test" if conf["test_split"] == "test" else None), "configs.test_split"
    if conf.get("validation_split"):
        return ("dev" if conf["validation_split"] == "validation" else None), \
            "configs.validation_split"
    return None, None


def _model(config: dict[str, Any]) -> str | None:
    args = config.get("model_args")
    if isinstance(args, str):
        for part in args.split(","):
            key, _, value = part.partition("=")
            if key.strip() == "pretrained" and value.strip():
                return value.strip()
    if isinstance(args, dict) and isinstance(args.get("pretrained"), str):
        return args["pretrained"]
    return None


def read_file(path: Path, opts: ImportOptions) -> list[tuple[Draft, list[Path]]]:
    obj = read_json(path)
    if not isinstance(obj, dict) or not isinstance(obj.get("results"), dict):
        raise SourceError(f"{path}: missing key 'results' (not an lm-evaluation-harness file)")
    config = obj.get("config") if isinstance(obj.get("config"), dict) else {}
    samples = obj.get("n-samples") if isinstance(obj.get("n-samples"), dict) else {}
    system = check_system(opts.system, str(path))
    seeds = {k: config[k] for k in SEED_KEYS if isinstance(config.get(k), int)} or None
    seed = opts.seed if opts.seed is not None else config.get("random_seed")
    versions = {f"task {k}": str(v) for k, v in (obj.get("versions") or {}).items()
                if TASK_RE.match(k)}
    for key in ("lm_eval_version", "transformers_version", "git_hash"):
        if isinstance(obj.get(key), str):
            versions[key] = obj[key]
    params = {k: config[k] for k in ("model", "model_args", "num_fewshot", "batch_size", "limit",
                                     "device") if k in config} or None
    created = None
    if isinstance(obj.get("date"), int | float):
        created = datetime.fromtimestamp(obj["date"], timezone.utc).isoformat(timespec="seconds")
    per_task: dict[str, Draft] = {}
    ignored = []
    for name, entry in obj["results"].items():
        m = TASK_RE.match(name)
        if m is None:
            ignored.append(name)
            continue
        where = f"{path}: results.{name}"
        task, lang = TASK_NAMES[m.group(1)], m.group(2)
        if not isinstance(entry, dict) or _metric(entry, "acc") is None:
            raise SourceError(f"{where}: missing 'acc'")
        acc = as_fraction(_metric(entry, "acc"), f"{where}.acc")
        n, n_from = None, None
        count = samples.get(name)
        if isinstance(count, dict) and isinstance(count.get("effective"), int):
            n, n_from = count["effective"], f"n-samples.{name}.effective"
        elif (derived := n_from_stderr(acc, _metric(entry, "acc_stderr"))) is not None:
            n, n_from = derived, f"acc_stderr (n = acc(1-acc)/stderr^2 + 1 = {derived})"
        split, split_from = _split(obj.get("configs"), name)
        draft = per_task.get(task)
        if draft is None:
            draft = per_task[task] = Draft(
                task, system, seed, {}, None, split=split, split_from=split_from,
                model=_model(config), seeds=seeds, params=params, versions=versions or None,
                created_utc=created)
            if isinstance(config.get("limit"), int | float):
                draft.notes.append(f"config.limit={config['limit']}: the harness scored a subset")
        elif draft.split != split:
            raise SourceError(f"{where}: split {split} differs from other {task} languages "
                              f"({draft.split})")
        stderr = _metric(entry, "acc_stderr")
        if n is None and stderr is not None:
            draft.notes.append(f"{name}: acc_stderr {stderr} does not determine an integer n")
        draft.languages[lang] = LanguageNumbers(acc, n, n_from)
    if not per_task:
        raise SourceError(f"{path}: no xnli_<lang> or paws_<lang> task in 'results' "
                          f"(found {sorted(obj['results'])})")
    for draft in per_task.values():
        if ignored:
            draft.notes.append(f"results not imported (not xnli_/paws_ languages): {ignored}")
        if draft.seed is not None and opts.seed is None:
            draft.notes.append("seed: config.random_seed")
    return [(d, [path]) for d in per_task.values()]


def read(src: Path, opts: ImportOptions) -> list[tuple[Draft, list[Path]]]:
    if src.is_dir():
        paths = sorted(p for p in src.rglob("*.json") if p.is_file())
        if not paths:
            raise SourceError(f"{src}: no results *.json found")
    elif src.is_file():
        paths = [src]
    else:
        raise SourceError(f"{src}: not found")
    out = []
    for p in paths:
        out.extend(read_file(p, opts))
    return out



