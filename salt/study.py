"""``salt study``: the ``study`` profile in resumable chunks, each finished run committed to git.

    python -m salt study [--seeds 0-7 | --seeds 0,1,2] [--max-runs K] [--root study]
                         [--params params.yaml] [--dry-run]

The study (tasks x {baseline, salt} x seeds) takes longer than one sitting, and DVC cannot resume
it on another machine (its run outputs are ``cache: false``, a fresh clone has no ``work/``). This
runner calls the pipeline's own stage commands (``salt.cli.main``) under ``--root``: upstream
stages (prepare, model, vocab, mlm, codeswitch per task) into ``<root>/work/`` (not committed),
then one run after another in seed-major order (for each seed: every task's baseline, then salt;
train, then evaluate), metrics into ``<root>/results/`` (committed). The stages read a derived
params file, ``<root>/work/params.yaml``: the user's params with ``profile: study`` and the
study's ``seeds`` (the params hash ignores both the file's path and ``seeds``).

``<root>/results/ledger.json`` records every finished run: the code digest (sha256 over the
(path, md5) of every ``salt/`` file a stage in ``dvc.yaml`` depends on), the params hash, the md5
of its metrics file and the digests of the upstream outputs it used. A later invocation skips
recorded runs, and stops before any work when the code, the params or a rebuilt upstream output
differ from what the recorded runs used: runs of different code are never mixed.

The shared outputs are rebuilt on each machine, so they must come out byte for byte the same:
``python -m salt study`` runs with pinned CPU numerics (``salt.numerics``: kernels at AVX2, two
threads; the study profile pins fp32), records each run's numerics probe in the ledger, and
stops before any work on a machine whose probe differs from the recorded runs'.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from salt import numerics
from salt.config import ConfigError, Params, load_params, read_yaml
from salt.data import file_hash
from salt.workdir import dump

PROFILE = "study"
SYSTEMS = ("baseline", "salt")
REPO = Path(__file__).resolve().parents[1]  # the checkout whose code runs (holds dvc.yaml)
LEDGER_VERSION = 2  # 2: every run records its CPU numerics (salt.numerics.state)


class StudyError(RuntimeError):
    """A state the runner refuses to continue from; the message names the run or file."""


@dataclass(frozen=True)
class Run:
    task: str
    system: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.task}-{self.system}-{self.seed}"


# ----------------------------------------------------------------------------- inputs
def parse_seeds(text: str) -> list[int]:
    """``0-7`` (inclusive), ``0,1,2`` or a mix (``0-3,6``); duplicates are an error."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    except ValueError:
        raise StudyError(f"--seeds {text!r}: expected a range (0-7) or a list (0,1,2)") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise StudyError(f"--seeds {text!r}: expected distinct non-negative seeds")
    return seeds


def stage_code_files(repo: Path = REPO) -> list[str]:
    """Every ``salt/**/*.py`` a stage of ``dvc.yaml`` depends on (its ``deps``), sorted."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    files = set()
    for stage in stages.values():
        for dep in stage.get("deps") or (stage.get("do") or {}).get("deps") or []:
            if dep.startswith("salt/") and dep.endswith(".py"):
                files.add(dep)
    return sorted(files)


def code_files(repo: Path = REPO) -> dict[str, str]:
    """md5 per stage code file (as DVC records it)."""
    out = {}
    for rel in stage_code_files(repo):
        if not (repo / rel).is_file():
            raise StudyError(f"{rel}: listed in dvc.yaml but missing from {repo.name}/")
        out[rel] = file_hash(repo / rel, "md5")
    return out


def code_digest(files: dict[str, str]) -> str:
    """sha256 over the sorted (path, md5) pairs."""
    blob = "".join(f"{path}\t{md5}\n" for path, md5 in sorted(files.items()))
    return hashlib.sha256(blob.encode()).hexdigest()


def study_params(user_params: Path, seeds: list[int] | None) -> tuple[Params, dict]:
    """The user's params as the study reads them (``profile: study``, the study's seeds) and
    their raw form for the derived params file. Default seeds: ``train.study.min_seeds`` from 0."""
    params = load_params(user_params, PROFILE)
    if seeds is None:
        need = params.entry("train").get("min_seeds")
        if not isinstance(need, int) or isinstance(need, bool) or need < 1:
            raise ConfigError(f"{user_params}: train.{PROFILE}.min_seeds must be a positive "
                              f"integer (the default seed count), got {need!r}")
        seeds = list(range(need))
    raw = read_yaml(user_params)
    raw.update(profile=PROFILE, seeds=list(seeds))
    return replace(params, seeds=tuple(seeds)), raw


def plan_runs(params: Params) -> list[Run]:
    """Seed-major: for each seed, every task's baseline then salt (paired seeds finish together)."""
    return [Run(task, system, seed) for seed in params.seeds for task in params.tasks
            for system in SYSTEMS]


# ----------------------------------------------------------------------------- upstream
def upstream_stages(tasks: tuple[str, ...]) -> list[tuple[str, list[str], list[str]]]:
    """(key, stage command, outputs under work/) in pipeline order."""
    stages = [("prepare", ["prepare"], ["data/manifest.json"]),
              ("model", ["model"], ["model/source.json"]),
              ("vocab", ["vocab"], ["vocab/vocab.json"]),
              ("mlm", ["mlm"], ["mlm/mlm.json"])]
    stages += [(f"codeswitch-{t}", ["codeswitch", "--task", t],
                [f"codeswitch/{t}.jsonl", f"codeswitch/{t}.stats.json"]) for t in tasks]
    return stages


def _mlm_report_digest(path: Path) -> str:
    """md5 of the MLM head report without its run times (``salt.mlm.RUN_TIMES``)."""
    from salt.mlm_head import RUN_TIMES

    report = {k: v for k, v in json.loads(path.read_text()).items() if k not in RUN_TIMES}
    return hashlib.md5(json.dumps(report, sort_keys=True).encode()).hexdigest()


def upstream_digests(work: Path, task: str) -> dict[str, str]:
    """Digests of the upstream outputs a run of ``task`` uses (keys relative to ``work/``)."""
    out = {}
    for rel in ("data/manifest.json", "vocab/vocab.json", "mlm/mlm.json",
                f"codeswitch/{task}.jsonl"):
        path = work / rel
        if path.is_file():
            out[rel] = _mlm_report_digest(path) if rel == "mlm/mlm.json" else file_hash(path, "md5")
    return out


def upstream_current(work: Path, tasks: tuple[str, ...], code: str, phash: str) -> list[str]:
    """Upstream stages already built here with this code and params (a prefix of the order)."""
    stamp_path = work / "upstream.json"
    if not stamp_path.is_file():
        return []
    stamp = json.loads(stamp_path.read_text())
    if stamp.get("code_digest") != code or stamp.get("params_hash") != phash:
        return []
    done = []
    recorded_done = stamp.get("done", [])
    for (key, _, outs), recorded in zip(upstream_stages(tasks), recorded_done, strict=False):
        if key != recorded or not all((work / o).is_file() for o in outs):
            break
        done.append(key)
    return done


# ----------------------------------------------------------------------------- ledger
def read_ledger(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"version": LEDGER_VERSION, "profile": PROFILE, "runs": {}}
    try:
        ledger = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise StudyError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(ledger, dict) or not isinstance(ledger.get("runs"), dict):
        raise StudyError(f"{path}: not a study ledger (no 'runs' mapping)")
    if ledger.get("version") != LEDGER_VERSION:
        raise StudyError(f"{path}: ledger version {ledger.get('version')}, this runner reads "
                         f"{LEDGER_VERSION} (its runs record their CPU numerics): move the "
                         f"results folder aside to start the study afresh")
    return ledger


def _ways_out(results: Path) -> str:
    return (f"either check out the commit that made them (git log -- {results / 'ledger.json'}) "
            f"and continue there, or move {results} aside to start the study afresh")


def check_ledger(ledger: dict, root: Path, code: str, files: dict[str, str],
                 phash: str) -> dict[str, dict]:
    """The finished runs (name -> entry), after checking every entry against the current code
    and params and against its metrics file; raises :class:`StudyError` on any mismatch."""
    results = root / "results"
    runs: dict[str, dict] = ledger["runs"]
    for name, entry in sorted(runs.items()):
        if entry.get("code_digest") != code:
            old = ledger.get("code_files") or {}
            changed = sorted(p for p in set(old) | set(files) if old.get(p) != files.get(p))
            detail = f"; files changed since: {', '.join(changed)}" if old and changed else ""
            raise StudyError(
                f"run {name} in {results / 'ledger.json'} was made with code digest "
                f"{entry.get('code_digest')} (commit {entry.get('git_commit')}), the code now has "
                f"{code}{detail}. Runs of different code are never mixed: {_ways_out(results)}")
        if entry.get("params_hash") != phash:
            raise StudyError(
                f"run {name} in {results / 'ledger.json'} was made with params hash "
                f"{entry.get('params_hash')} (commit {entry.get('git_commit')}), the study "
                f"params now hash to {phash}. Runs of different params are never mixed: "
                f"{_ways_out(results)}")
    for name, entry in sorted(runs.items()):
        metrics = results / "metrics" / f"{name}.json"
        if not metrics.is_file():
            raise StudyError(f"{metrics}: missing, but {results / 'ledger.json'} records run "
                             f"{name} as finished; restore the file (git checkout) or remove "
                             "the run's ledger entry to redo it")
        if file_hash(metrics, "md5") != entry.get("metrics_md5"):
            raise StudyError(f"{metrics}: changed since run {name} was recorded (md5 differs "
                             "from the ledger's); restore it (git checkout) or remove the file "
                             "and its ledger entry to redo the run")
    return runs


def orphan_metrics(root: Path, finished: dict, code: str, phash: str) -> list[Run]:
    """Metrics files without a ledger entry: an error naming the file, unless the run's trained
    folder is still here from this code and params (interrupted between evaluate and the ledger
    write): such runs are returned, to be evaluated again."""
    redo = []
    for path in sorted((root / "results" / "metrics").glob("*.json")):
        if path.stem in finished:
            continue
        run = _run_of(path.stem)
        if run is not None and _trained(root / "work", run, code, phash):
            redo.append(run)
            continue
        raise StudyError(f"{path}: a metrics file with no entry in "
                         f"{root / 'results' / 'ledger.json'}: its code and params are unknown. "
                         "Remove it (with its summary/ and plots/ files) to redo the run, or "
                         "restore the ledger (git checkout)")
    return redo


def _run_of(name: str) -> Run | None:
    task, _, rest = name.partition("-")
    system, _, seed = rest.partition("-")
    return Run(task, system, int(seed)) if system in SYSTEMS and seed.isdigit() else None


def _trained_stamp(work: Path, run: Run) -> Path:
    return work / "runs" / f"{run.name}.trained.json"


def _trained(work: Path, run: Run, code: str, phash: str) -> bool:
    """Whether the run's folder holds a finished training by this code and params."""
    stamp, folder = _trained_stamp(work, run), work / "runs" / run.name
    if not (stamp.is_file() and (folder / "train.json").is_file()
            and (folder / "model.safetensors").is_file()):
        return False
    recorded = json.loads(stamp.read_text())
    return recorded == {"code_digest": code, "params_hash": phash}


def check_upstream(finished: dict, work: Path) -> None:
    """Each finished run's recorded upstream digests against the outputs here."""
    for name, entry in sorted(finished.items()):
        now = upstream_digests(work, entry["task"])
        for rel, digest in sorted((entry.get("upstream") or {}).items()):
            if now.get(rel) != digest:
                raise StudyError(
                    f"{work / rel}: built here it differs from the one run {name} used "
                    f"(digest {now.get(rel)} here, {digest} in the ledger; e.g. another machine "
                    f"type produced different output; that run's CPU: "
                    f"{(entry.get('numerics') or {}).get('cpu', 'not recorded')}, this "
                    f"machine's: {numerics.cpu_model()}). Runs on different upstream outputs are "
                    f"never mixed: continue on a machine that reproduces it, or move "
                    f"{work.parent / 'results'} aside to start the study afresh")


def check_numerics(finished: dict, now: dict) -> None:
    """This process's numerics probe against the one of every finished run: a machine whose
    probe differs would rebuild other shared outputs, so it stops before the rebuild."""
    if not numerics.is_pinned():
        pins = ", ".join(f"{key}={value}" for key, value in numerics.PINS.items())
        raise StudyError(f"the CPU numerics are not pinned ({pins}): run the study as "
                         f"`python -m salt study`, which sets them")
    for name, entry in sorted(finished.items()):
        recorded = entry.get("numerics") or {}
        if recorded.get("probe") != now["probe"]:
            raise StudyError(
                f"numerics probe {now['probe']} on this machine ({now['cpu']}, "
                f"{now['capability']}, {now['threads']} threads), {recorded.get('probe')} for run "
                f"{name} ({recorded.get('cpu', 'CPU not recorded')}): this machine would rebuild "
                f"other shared outputs. Continue on a machine whose probe matches, or move "
                f"the results folder aside to start the study afresh")


# ----------------------------------------------------------------------------- running
def _stage(params_file: Path, root: Path, command: list[str]) -> None:
    """One stage through the pipeline's own command line; its errors are its own."""
    from salt import cli

    argv = ["--params", str(params_file), "--profile", PROFILE, "--workdir", str(root), *command]
    print(f"study: salt {' '.join(command)}", flush=True)
    rc = cli.main(argv)
    if rc != 0:
        raise StudyError(f"stage `salt {' '.join(command)}` failed (exit {rc}, its message "
                         "above); fix it and run the same command again: finished runs are kept")


def build_upstream(params_file: Path, root: Path, tasks: tuple[str, ...], code: str,
                   phash: str) -> None:
    """Run the upstream stages not yet current here, recording each in ``work/upstream.json``."""
    work = root / "work"
    done = upstream_current(work, tasks, code, phash)
    for key, command, _ in upstream_stages(tasks):
        if key in done:
            print(f"study: upstream {key}: current")
            continue
        dump(work / "upstream.json", {"code_digest": code, "params_hash": phash,
                                            "done": done})
        _stage(params_file, root, command)
        done = [*done, key]
    dump(work / "upstream.json", {"code_digest": code, "params_hash": phash, "done": done})


def run_one(run: Run, params_file: Path, root: Path, code: str, files: dict[str, str],
            phash: str, state: dict) -> dict:
    """Train (unless trained here already) and evaluate one run, record it in the ledger, then
    delete its run folder. Returns the ledger entry."""
    work, results = root / "work", root / "results"
    args = ["--task", run.task, "--system", run.system, "--seed", str(run.seed)]
    started = time.perf_counter()
    if _trained(work, run, code, phash):
        print(f"study: {run.name}: trained here already, evaluating")
    else:
        _trained_stamp(work, run).unlink(missing_ok=True)
        _stage(params_file, root, ["train", *args])
        dump(_trained_stamp(work, run), {"code_digest": code, "params_hash": phash})
    _stage(params_file, root, ["evaluate", *args])
    metrics_path = results / "metrics" / f"{run.name}.json"
    prov = json.loads(metrics_path.read_text(encoding="utf-8"))["provenance"]
    if prov["params_hash"] != phash:  # the stage hashed other params than the runner did
        raise StudyError(f"{metrics_path}: params hash {prov['params_hash']}, the runner's "
                         f"{phash}: the derived params file does not match the study params")
    entry = {"name": run.name, "task": run.task, "system": run.system, "seed": run.seed,
             "code_digest": code, "params_hash": prov["params_hash"],
             "git_commit": prov.get("git_commit"),
             "metrics": f"metrics/{run.name}.json", "metrics_md5": file_hash(metrics_path, "md5"),
             "upstream": upstream_digests(work, run.task), "numerics": state,
             "wall_s": round(time.perf_counter() - started, 1)}
    ledger = read_ledger(results / "ledger.json")
    ledger.update(version=LEDGER_VERSION, profile=PROFILE, code_files=files)
    ledger["runs"][run.name] = entry
    dump(results / "ledger.json", ledger)
    shutil.rmtree(work / "runs" / run.name, ignore_errors=True)  # evaluate no longer needs it
    _trained_stamp(work, run).unlink(missing_ok=True)
    return entry


def _seed_text(seeds: tuple[int, ...]) -> str:
    if list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 1:
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def _continue_command(args: argparse.Namespace, seeds: tuple[int, ...]) -> str:
    parts = ["python -m salt study", f"--seeds {_seed_text(seeds)}"]
    if args.max_runs is not None:
        parts.append(f"--max-runs {args.max_runs}")
    if args.root is not None:
        parts.append(f"--root {args.root}")
    if args.params != Path("params.yaml"):
        parts.append(f"--params {args.params}")
    return " ".join(parts)


def _git_hint(root: Path) -> str:
    try:
        rel = (root / "results").resolve().relative_to(REPO)
    except ValueError:
        rel = root / "results"
    return f"git add {rel} && git commit -m 'study: runs'"


def study(args: argparse.Namespace) -> int:
    """Check, then (unless ``--dry-run``) build upstream and run what is left."""
    root = (args.root if args.root is not None else REPO / "study").resolve()
    work, results = root / "work", root / "results"
    params, raw = study_params(args.params, parse_seeds(args.seeds) if args.seeds else None)
    files = code_files()
    code, phash = code_digest(files), params.hash
    runs = plan_runs(params)
    finished = check_ledger(read_ledger(results / "ledger.json"), root, code, files, phash)
    redo = {r.name for r in orphan_metrics(root, finished, code, phash)}
    todo = [r for r in runs if r.name not in finished]
    chunk = todo if args.max_runs is None else todo[: args.max_runs]
    print(f"study: root {root}, profile {PROFILE}, seeds {_seed_text(params.seeds)}, "
          f"{len(runs)} runs; code {code[:16]}, params {phash}")
    for r in runs:
        state = "done" if r.name in finished else (
            "evaluate again (interrupted before the ledger)" if r.name in redo else "to run")
        print(f"study:   {r.name}: {state}")
    state = numerics.state()
    print(f"study: numerics: {state['cpu']}, {state['capability']}, {state['threads']} threads, "
          f"probe {state['probe']}" + ("" if numerics.is_pinned() else " (not pinned)"))
    other = sorted(set(finished) - {r.name for r in runs})
    if other:
        print(f"study: also in the ledger (seeds not selected): {', '.join(other)}")

    if args.dry_run:
        try:
            check_numerics(finished, state)
        except StudyError as err:
            print(f"study: a run would stop: {err}")
        current = upstream_current(work, params.tasks, code, phash)
        for key, _, _ in upstream_stages(params.tasks):
            print(f"study: upstream {key}: {'current' if key in current else 'would build'}")
        if len(current) == len(upstream_stages(params.tasks)) and finished:
            try:
                check_upstream(finished, work)
                print("study: upstream outputs here match the ledger")
            except StudyError as err:
                print(f"study: a run would stop: {err}")
        print(f"study: dry run: {len(runs) - len(todo)} done, would run {len(chunk)} of "
              f"{len(todo)} left: {', '.join(r.name for r in chunk) or 'nothing'}")
        return 0

    if not todo:
        print(f"study: all {len(runs)} runs done; nothing to run")
        return 0
    check_numerics(finished, state)
    params_file = work / "params.yaml"
    work.mkdir(parents=True, exist_ok=True)
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    build_upstream(params_file, root, params.tasks, code, phash)
    check_upstream(finished, work)
    for i, run in enumerate(chunk, start=1):
        print(f"study: [{i}/{len(chunk)}] {run.name}", flush=True)
        entry = run_one(run, params_file, root, code, files, phash, state)
        finished[run.name] = entry
        print(f"study: {run.name}: done in {entry['wall_s']} s")
    left = [r for r in runs if r.name not in finished]
    print(f"study: {len(runs) - len(left)} of {len(runs)} runs done, {len(left)} left"
          + (f" ({', '.join(r.name for r in left)})" if left else ""))
    if left:
        print(f"study: continue with: {_continue_command(args, params.seeds)}")
    print(f"study: commit the finished runs: {_git_hint(root)}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", default=None,
                        help="0-7 or 0,1,2 (default: train.study.min_seeds seeds from 0)")
    parser.add_argument("--max-runs", type=int, default=None,
                        help="stop after K newly finished runs (one chunk)")
    parser.add_argument("--root", type=Path, default=None,
                        help="study folder (default: study/ in the repository)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--dry-run", action="store_true",
                        help="print what is done and what would run; do nothing")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="salt study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.max_runs is not None and args.max_runs < 1:
        parser.error("--max-runs must be at least 1")
    if not numerics.is_pinned():  # torch reads the pins when it starts: start again with them
        numerics.exec_pinned(["study", *(sys.argv[1:] if argv is None else argv)])
    try:
        return study(args)
    except (StudyError, ConfigError) as err:
        print(f"salt study: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
