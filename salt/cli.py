"""Command line: one subcommand per pipeline stage (see dvc.yaml).

    salt prepare | model | vocab | mlm | codeswitch --task T |
         train --task T --system S --seed N | evaluate --task T --system S --seed N

Every command reads ``params.yaml`` (``--params``) and the profile it names (``--profile``
overrides), works under ``--workdir`` (default ``.``) and prints what it wrote.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from salt import data as D
from salt.config import ConfigError, Params, load_params, take

WORK = Path("work")
RESULTS = Path("results")


# ----------------------------------------------------------------------------- helpers
def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def _write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)


def _read_examples(path: Path) -> list[D.Example]:
    if not path.is_file():
        raise D.DataError(f"{path}: missing; run the 'prepare' stage first")
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            out.append(D.Example(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as err:
            raise D.DataError(f"{path}:{i}: not a prepared example ({err})") from None
    return out


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def _manifest(root: Path) -> dict:
    path = root / WORK / "data" / "manifest.json"
    if not path.is_file():
        raise D.DataError(f"{path}: missing; run the 'prepare' stage first")
    return json.loads(path.read_text())


def _rel(path: Path, root: Path) -> str:
    """A path relative to the workdir when inside it, so stage outputs are machine-independent."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


def _pointer(root: Path, name: str, key: str) -> Path:
    path = root / WORK / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the stage that writes it first")
    target = Path(json.loads(path.read_text())[key])
    return target if target.is_absolute() else root / target


def _model_dir(root: Path) -> Path:
    return _pointer(root, "model/source.json", "path")


def _unlabeled(root: Path, params: Params) -> dict[str, list[str]]:
    """Sentences of every language's prepared dev text (labels discarded), deduplicated."""
    texts: dict[str, list[str]] = {}
    for task in params.tasks:
        for path in sorted((root / WORK / "data" / task).glob("unlabeled-*.jsonl")):
            lang = path.stem.split("-", 1)[1]
            seen = texts.setdefault(lang, [])
            for ex in _read_examples(path):
                seen.extend((ex.text_a, ex.text_b))
    return {lang: list(dict.fromkeys(v)) for lang, v in texts.items()}


# ----------------------------------------------------------------------------- stages
def cmd_prepare(args, params: Params) -> None:
    """Select the profile's rows (seeded, label-stratified) and write them as JSONL."""
    cfg = params.group("data")
    source, revision = cfg.get("source", "local"), cfg.get("hub_revision")
    revisions = {}
    root_dir = D.data_dir(cfg.get("dir")) if source == "local" else None
    seed = int(cfg.get("subset_seed", 0))
    out = args.workdir / WORK / "data"
    manifest = {"profile": params.profile, "source": source, "sizes": {}, "subset_seed": seed}
    used: list[Path] = []
    for task in params.tasks:
        spec = D.get_task(task)
        langs = cfg.get("languages", {}).get(task) or list(spec.languages)
        D.check_languages(spec, langs, key=f"data.{params.profile}.languages.{task}")

        if source == "hub":
            revisions[spec.hub_id] = D.resolve_hub_revision(spec.hub_id, revision)

        def load(split: str, lang: str, _task: str = task) -> list[D.Example]:
            if source == "local":
                used.append(D.split_path(root_dir, _task, split, lang))
            rev = revisions.get(D.get_task(_task).hub_id)
            return D.load_split(_task, split, lang, source, root_dir, rev)

        train = D.stratified_subset(load("train", "en"), cfg.get("train"), seed)
        dev_en = D.stratified_subset(load("dev", "en"), cfg.get("dev"), seed)
        test = D.parallel_subset({lang: load("test", lang) for lang in langs}, cfg.get("test"),
                                 seed, pivot=spec.source_language)
        _write_jsonl(out / task / "train-en.jsonl", (vars(e) for e in train))
        _write_jsonl(out / task / "dev-en.jsonl", (vars(e) for e in dev_en))
        unl = cfg.get("unlabeled")
        for lang in langs:
            _write_jsonl(out / task / f"test-{lang}.jsonl", (vars(e) for e in test[lang]))
            rows = load("dev", lang)[:unl] if unl else load("dev", lang)
            _write_jsonl(out / task / f"unlabeled-{lang}.jsonl", (vars(e) for e in rows))
        manifest["sizes"][task] = {"train": len(train), "dev_en": len(dev_en),
                                   "test_per_language": len(test[spec.source_language]),
                                   "languages": langs,
                                   "unlabeled_per_language": unl or "all dev rows"}
        print(f"prepare {task}: train {len(train)}, dev-en {len(dev_en)}, "
              f"test {len(test[spec.source_language])} x {len(langs)} languages")
    manifest["revision"] = (D.files_digest(set(used)) if source == "local"
                            else ",".join(f"{k}@{v}" for k, v in revisions.items()))
    manifest["data_source"] = (f"local:{root_dir}" if source == "local"
                               else "hub:" + ",".join(D.get_task(t).hub_id for t in params.tasks))
    _dump(out / "manifest.json", manifest)


def cmd_model(args, params: Params) -> None:
    """Materialise the model source as a local save_pretrained folder."""
    from salt.models import resolve

    cfg = params.group("model")
    spec = cfg["source"]
    out = args.workdir / WORK / "model"
    texts = None
    if spec == "tiny":
        texts = [t for v in _unlabeled(args.workdir, params).values() for t in v]
        for task in params.tasks:
            for ex in _read_examples(args.workdir / WORK / "data" / task / "train-en.jsonl"):
                texts.extend((ex.text_a, ex.text_b))
    path = resolve(spec, texts=texts, out_dir=out / "base", tiny_kwargs=cfg.get("tiny"))
    _dump(out / "source.json", {"spec": spec, "path": _rel(path, args.workdir)})
    print(f"model {spec}: {path}")


def cmd_vocab(args, params: Params) -> None:
    from salt.models import load_tokenizer
    from salt.vocab import build_vocabularies

    _quiet_transformers()
    tok = load_tokenizer(_model_dir(args.workdir))
    vocabs = build_vocabularies(tok, _unlabeled(args.workdir, params), **params.group("vocab"))
    path = args.workdir / WORK / "vocab" / "vocab.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    vocabs.save(path)
    print("vocab: " + ", ".join(f"{lang} {len(vocabs.ids(lang))}" for lang in vocabs.languages))


def cmd_mlm(args, params: Params) -> None:
    """Train an MLM head where the source lacks one; measure fill-mask accuracy either way."""
    from salt import mlm_head
    from salt.models import load_masked_lm, load_tokenizer

    _quiet_transformers()
    cfg = params.group("mlm")
    base = _model_dir(args.workdir)
    out = args.workdir / WORK / "mlm"
    texts = _unlabeled(args.workdir, params)
    if cfg.pop("train", False):
        head_cfg = take(cfg, f"mlm.{params.profile}", mlm_head.MLMHeadConfig)
        report = mlm_head.train_mlm_head(base, texts, out / "model", head_cfg)
        model_dir = out / "model"
    else:
        model_dir = base
        probe = {k: cfg[k] for k in ("eval_sentences", "seed") if k in cfg}
        report = {"trained": False, "fill_mask": mlm_head.fill_mask_accuracy(
            load_masked_lm(base), load_tokenizer(base), texts, **probe)}
    _dump(out / "mlm.json", {"model_dir": _rel(model_dir, args.workdir), **report})
    print(f"mlm: {model_dir}")


def cmd_codeswitch(args, params: Params) -> None:
    from salt import codeswitch as CS
    from salt.encoding import encode_pairs
    from salt.models import load_masked_lm, load_tokenizer
    from salt.vocab import LanguageVocabs

    _quiet_transformers()
    root, task = args.workdir, args.task
    mlm_dir = _pointer(root, "mlm/mlm.json", "model_dir")
    tok = load_tokenizer(mlm_dir)
    cfg = params.group("codeswitch")
    langs = cfg.pop("languages", None) or list(D.get_task(task).target_languages)
    head_input = CS.input_mode_for(mlm_dir)  # what the MLM head was trained to read
    if cfg.setdefault("input", head_input) != head_input:
        raise ConfigError(f"codeswitch.{params.profile}.input is {cfg['input']!r} but the MLM head "
                          f"in {mlm_dir} reads {head_input!r} input")
    cs_cfg = take({**cfg, "languages": langs}, f"codeswitch.{params.profile}", CS.CodeSwitchConfig)
    train = _read_examples(root / WORK / "data" / task / "train-en.jsonl")
    encoded = encode_pairs(tok, train, params.group("model")["max_length"])
    vocabs = LanguageVocabs.load(root / WORK / "vocab" / "vocab.json")
    out = root / WORK / "codeswitch" / f"{task}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    model = load_masked_lm(mlm_dir)
    try:
        records = CS.code_switch(model, tok, encoded, vocabs, cs_cfg, out_path=out)
    except CS.CodeSwitchError as err:
        if "written with a different" not in str(err):
            raise
        # A partial file from other inputs or settings (DVC keeps it for resuming): start afresh.
        print(f"codeswitch {task}: discarding {out} ({err})")
        out.unlink()
        CS.meta_path(out).unlink(missing_ok=True)
        records = CS.code_switch(model, tok, encoded, vocabs, cs_cfg, out_path=out)
    muse = D.data_dir(params.group("data").get("dir")) / "muse"
    stats = CS.codeswitch_stats(records, tok, muse if muse.is_dir() else None)
    _dump(root / WORK / "codeswitch" / f"{task}.stats.json",
          {"config": asdict(cs_cfg), **stats})
    print(f"codeswitch {task}: {len(records)} records -> {out}")


def _items(root: Path, params: Params, task: str, system: str, tok):
    from salt.codeswitch import read_jsonl
    from salt.encoding import encode_pairs
    from salt.train import items_from_codeswitch, items_from_encoded

    max_len = params.group("model")["max_length"]
    train = encode_pairs(tok, _read_examples(root / WORK / "data" / task / "train-en.jsonl"),
                         max_len)
    dev = encode_pairs(tok, _read_examples(root / WORK / "data" / task / "dev-en.jsonl"), max_len)
    if system == "salt":
        items = items_from_codeswitch(read_jsonl(root / WORK / "codeswitch" / f"{task}.jsonl"),
                                      train)
    else:
        items = items_from_encoded(train)
    return items, items_from_encoded(dev)


def _train_config(params: Params, system: str, seed: int):
    from salt.provenance import bf16_supported
    from salt.train import TrainConfig

    cfg = params.group("train")
    cfg.pop("min_seeds", None)
    if cfg.get("bf16") == "auto":
        cfg["bf16"] = bf16_supported()
    return take({**cfg, "system": system, "seed": seed}, f"train.{params.profile}", TrainConfig)


def cmd_train(args, params: Params) -> None:
    from salt.models import load_tokenizer
    from salt.train import train

    _quiet_transformers()
    base = _model_dir(args.workdir)
    tok = load_tokenizer(base)
    items, dev = _items(args.workdir, params, args.task, args.system, tok)
    config = _train_config(params, args.system, args.seed)
    out = args.workdir / WORK / "runs" / f"{args.task}-{args.system}-{args.seed}"
    log = train(base, items, out, config, len(D.get_task(args.task).labels), dev_items=dev,
                pad_id=tok.pad_token_id)
    print(f"train {args.task} {args.system} seed {args.seed}: {log['steps']} steps, "
          f"{log['wall_time_s']} s -> {out}")


def cmd_evaluate(args, params: Params) -> None:
    from salt import provenance as P
    from salt.encoding import encode_pairs
    from salt.evaluate import build_metrics, evaluate_languages
    from salt.models import load_tokenizer
    from salt.train import load_trained

    _quiet_transformers()
    started = time.perf_counter()
    root, task, spec = args.workdir, args.task, D.get_task(args.task)
    base = _model_dir(root)
    tok = load_tokenizer(base)
    run_dir = root / WORK / "runs" / f"{task}-{args.system}-{args.seed}"
    model = load_trained(base, run_dir, len(spec.labels))
    cfg = params.group("evaluate")
    bf16 = P.bf16_supported() if cfg.get("bf16") == "auto" else bool(cfg.get("bf16"))
    manifest = _manifest(root)
    langs = manifest["sizes"][task]["languages"]
    max_len = params.group("model")["max_length"]
    test = {lang: encode_pairs(tok, _read_examples(root / WORK / "data" / task /
                                                   f"test-{lang}.jsonl"), max_len)
            for lang in langs}
    languages, predictions = evaluate_languages(model, spec, test, tok.pad_token_id,
                                                cfg.get("batch_size", 64), bf16)
    train_log = json.loads((run_dir / "train.json").read_text())
    extra = {"train": {k: train_log[k] for k in ("steps", "wall_time_s", "selected")}}
    mlm_json = root / WORK / "mlm" / "mlm.json"
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
    stats = root / WORK / "codeswitch" / f"{task}.stats.json"
    if args.system == "salt" and stats.is_file():
        s = json.loads(stats.read_text())
        extra["codeswitch"] = {k: v for k, v in s.items() if k != "config"}
        extra["codeswitch"]["dict_translation_share"] = dictionary_shares(s)
    provenance = {
        "profile": params.profile,
        "model": params.group("model")["source"],
        "sizes": {k: v for k, v in manifest["sizes"][task].items() if isinstance(v, int)},
        "seeds": {"train": args.seed, "subset": manifest["subset_seed"],
                  "codeswitch": params.group("codeswitch").get("seed", 0)},
        "git_commit": P.git_commit(Path(__file__).resolve().parents[1]),
        "params_hash": params.hash,
        "params": params.shared(),
        "versions": P.versions(),
        "device": P.device_description(bf16),
        "data_source": manifest["data_source"],
        "data_revision": manifest["revision"],
        "wall_time_s": round(train_log["wall_time_s"] + time.perf_counter() - started, 2),
        "created_utc": P.utc_now(),
    }
    metrics = build_metrics(spec, args.system, args.seed, languages, predictions, provenance,
                            extra)
    name = f"{task}-{args.system}-{args.seed}"
    _dump(root / RESULTS / "metrics" / f"{name}.json", metrics)
    summary = {"accuracy": {lang: round(r["accuracy"], 4) for lang, r in languages.items()},
               "average": {k: (round(v, 4) if v is not None else None)
                           for k, v in metrics["averages"].items()}}
    _dump(root / RESULTS / "summary" / f"{name}.json", summary)
    _write_plot_rows(root / RESULTS / "plots" / f"{name}.csv", task, args.system, args.seed,
                     languages)
    print(f"evaluate {name}: average {metrics['averages']['all']:.4f} "
          f"(without en {metrics['averages']['without_en']:.4f})")


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


def _write_plot_rows(path: Path, task: str, system: str, seed: int, languages: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["language,accuracy,task,system,seed"]
    lines += [f"{lang},{r['accuracy']:.6f},{task},{system},{seed}" for lang, r in languages.items()]
    path.write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- entry point
COMMANDS = {"prepare": cmd_prepare, "model": cmd_model, "vocab": cmd_vocab, "mlm": cmd_mlm,
            "codeswitch": cmd_codeswitch, "train": cmd_train, "evaluate": cmd_evaluate}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--profile", default=None, help="override params.yaml's profile")
    parser.add_argument("--workdir", type=Path, default=Path("."))
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("prepare", "model", "vocab", "mlm"):
        sub.add_parser(name, help=COMMANDS[name].__doc__)
    p = sub.add_parser("codeswitch", help="code-switch one task's English training data")
    p.add_argument("--task", required=True)
    for name in ("train", "evaluate"):
        p = sub.add_parser(name, help=f"{name} one task x system x seed")
        p.add_argument("--task", required=True)
        p.add_argument("--system", required=True, choices=("baseline", "salt"))
        p.add_argument("--seed", required=True, type=int)
    return parser


def _stage_name(args) -> str:
    parts = [args.command] + [str(getattr(args, k)) for k in ("task", "system", "seed")
                              if getattr(args, k, None) is not None]
    return "-".join(parts)


def _record_timing(args, started: float) -> None:
    """Wall time and peak memory of this command, for the benchmark's pipeline table."""
    import resource

    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    _dump(args.workdir / WORK / "timings" / f"{_stage_name(args)}.json",
          {"command": " ".join(sys.argv[1:]) or args.command,
           "profile": args.profile_used, "finished_utc": datetime.now(timezone.utc).isoformat(),
           "wall_s": round(time.perf_counter() - started, 2),
           "peak_rss_mb": round(rss_kb / 1024, 1)})


def _domain_errors() -> tuple[type[Exception], ...]:
    """Errors that describe bad input or state (named file/key), reported without a traceback."""
    from salt.codeswitch import CodeSwitchError
    from salt.mlm_head import MLMHeadError
    from salt.models import ModelSourceError
    from salt.schema import SchemaError
    from salt.train import TrainingDiverged
    from salt.vocab import VocabError

    return (CodeSwitchError, MLMHeadError, ModelSourceError, SchemaError, TrainingDiverged,
            VocabError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        params = load_params(args.params, args.profile)
        args.profile_used = params.profile
        if getattr(args, "task", None) and args.task not in params.tasks:
            raise ConfigError(f"--task {args.task!r} is not in params 'tasks' {list(params.tasks)}")
        COMMANDS[args.command](args, params)
    except (ConfigError, D.DataError, FileNotFoundError, *_domain_errors()) as err:
        print(f"salt {args.command}: error: {err}", file=sys.stderr)
        return 2
    _record_timing(args, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
