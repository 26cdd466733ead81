"""salt study: the chunked, resumable study runner, on the smoke profile copied into ``study``
(tiny model, two seeds): chunks finish exactly what they say, a second chunk skips what the
first finished and ends where one uninterrupted run ends, and every inconsistency stops it."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from salt import numerics, study
from salt.config import GROUPS, load_params
from salt.data import file_hash
from salt.reproduce import absolute_paths, compare, run_specific

ROOT = Path(__file__).resolve().parents[1]
NAMES = [f"{t}-{s}-{n}" for n in (0, 1) for t in ("xnli", "pawsx") for s in ("baseline", "salt")]


def _smoke_as_study(path: Path, **train) -> Path:
    """params.yaml whose ``study`` entries are the ``smoke`` ones (train.study.min_seeds 2)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for group in GROUPS:
        raw[group]["study"] = copy.deepcopy(raw[group]["smoke"])
    raw["train"]["study"].update(min_seeds=2, **train)
    path.write_text(yaml.safe_dump(raw))
    return path


def _study(params: Path, root: Path, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = study.main(["--params", str(params), "--root", str(root), "--seeds", "0,1", *extra])
    return rc, out.getvalue(), err.getvalue()


def _files(root: Path) -> dict[str, str]:
    """md5 of every file under results/ (the ledger excepted)."""
    res = root / "results"
    return {str(p.relative_to(res)): file_hash(p, "md5") for p in sorted(res.rglob("*"))
            if p.is_file() and p.name != "ledger.json"}


def _ledger(root: Path) -> dict:
    return json.loads((root / "results" / "ledger.json").read_text())


@pytest.fixture(scope="module", autouse=True)
def _pinned():
    """The pins `python -m salt study` re-executes itself with (salt.numerics); these tests call
    the runner in-process, where torch has started already: the probe records what is in force."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in numerics.PINS.items():
            mp.setenv(key, value)
        yield


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """A tiny model: one thread is as fast, and far faster on a CPU another job keeps busy."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def chunked(tmp_path_factory, data_dir, _one_thread):
    """One study finished in two chunks (--max-runs 3, then the rest), and the same seeds run
    uninterrupted in another root."""
    tmp = tmp_path_factory.mktemp("study")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            mp.setenv(var, "1")
        mp.setenv("HF_HOME", str(tmp / "hf"))
        mp.setenv("SALT_CACHE_DIR", str(tmp / "cache"))
        params = _smoke_as_study(tmp / "params.yaml")
        root = tmp / "chunked"
        first = _study(params, root, "--max-runs", "3")
        after_first = {"ledger": _ledger(root), "files": _files(root),
                       "runs_left": sorted(p.name for p in (root / "work" / "runs").iterdir())}
        second = _study(params, root)
        whole = tmp / "whole"  # its own upstream: what another machine would rebuild
        uninterrupted = _study(params, whole)
    return {"tmp": tmp, "params": params, "root": root, "first": first, "second": second,
            "after_first": after_first, "whole": whole, "uninterrupted": uninterrupted}


def _copy(chunked, name: str) -> Path:
    dest = chunked["tmp"] / name
    shutil.copytree(chunked["root"], dest)
    return dest


def test_max_runs_finishes_exactly_that_many(chunked):
    rc, out, _ = chunked["first"]
    assert rc == 0
    snap = chunked["after_first"]
    assert sorted(snap["ledger"]["runs"]) == sorted(NAMES[:3])  # seed-major order
    assert sorted(p for p in snap["files"] if p.startswith("metrics/")) == sorted(
        f"metrics/{n}.json" for n in NAMES[:3])
    assert snap["runs_left"] == []  # each finished run's folder is deleted
    assert "3 of 8 runs done, 5 left" in out
    assert "continue with: python -m salt study --seeds 0-1 --max-runs 3" in out
    assert "git add" in out and "git commit" in out


def test_second_chunk_skips_finished_runs_and_matches_an_uninterrupted_run(chunked):
    rc, out, _ = chunked["second"]
    assert rc == 0
    root, first = chunked["root"], chunked["after_first"]
    for name in NAMES[:3]:
        task, system, seed = name.split("-")
        assert f"{name}: done" in out
        assert f"salt train --task {task} --system {system} --seed {seed}" not in out
    assert "study: [1/5] pawsx-salt-0" in out  # only the 5 left ran
    now = _files(root)
    for rel, md5 in first["files"].items():
        assert now[rel] == md5, f"{rel} was redone"
    ledger = _ledger(root)
    assert sorted(ledger["runs"]) == sorted(NAMES)
    for name in NAMES[:3]:
        assert ledger["runs"][name] == first["ledger"]["runs"][name]
    assert chunked["uninterrupted"][0] == 0
    whole = chunked["whole"] / "results" / "metrics"
    for name in NAMES:
        a = json.loads((root / "results" / "metrics" / f"{name}.json").read_text())
        b = json.loads((whole / f"{name}.json").read_text())
        assert compare(b, a, run_specific()) == [], name


def test_a_fresh_clone_continues_on_rebuilt_upstream(chunked):
    """Committed results (chunked) with upstream outputs built elsewhere (whole): the rebuilt
    outputs match the recorded digests, so the study continues."""
    root = chunked["tmp"] / "fresh-clone"
    shutil.copytree(chunked["root"] / "results", root / "results")
    shutil.copytree(chunked["whole"] / "work", root / "work")
    for name in NAMES:
        assert _ledger(chunked["whole"])["runs"][name]["upstream"] == \
            _ledger(root)["runs"][name]["upstream"]
    rc, out, err = _study(chunked["params"], root, "--seeds", "0-2", "--max-runs", "1")
    assert rc == 0, err
    assert "study: [1/1] xnli-baseline-2" in out and "9 of 12 runs done" in out


def test_ledger_is_host_independent_and_params_hash_ignores_the_params_path(chunked):
    root, tmp = chunked["root"], chunked["tmp"]
    text = (root / "results" / "ledger.json").read_text()
    assert str(tmp) not in text and str(ROOT) not in text
    assert absolute_paths(json.loads(text)) == []
    entry = _ledger(root)["runs"]["xnli-salt-1"]
    assert set(entry["upstream"]) == {"data/manifest.json", "vocab/vocab.json", "mlm/mlm.json",
                                      "codeswitch/xnli.jsonl"}
    assert entry["code_digest"] == study.code_digest(study.code_files())
    assert entry["numerics"]["probe"] == numerics.probe()
    assert entry["numerics"]["cpu"] == numerics.cpu_model() and entry["numerics"]["env"] == \
        numerics.PINS
    derived = load_params(root / "work" / "params.yaml")
    assert derived.profile == "study" and derived.seeds == (0, 1)
    user = load_params(chunked["params"], "study")
    assert derived.hash == user.hash == entry["params_hash"]
    metrics = json.loads((root / "results" / "metrics" / "xnli-salt-1.json").read_text())
    assert metrics["provenance"]["params_hash"] == user.hash
    assert file_hash(root / "results" / "metrics" / "xnli-salt-1.json", "md5") == \
        entry["metrics_md5"]


def test_code_files_are_the_stage_deps_of_dvc_yaml():
    files = study.stage_code_files()
    assert "salt/stages/train.py" in files and "salt/cli.py" in files
    assert "salt/study.py" not in files and "salt/plan.py" not in files
    assert all(f.startswith("salt/") and f.endswith(".py") for f in files)


def test_changed_params_stop_before_any_work(chunked):
    root = _copy(chunked, "changed-params")
    before = _files(root)
    params = _smoke_as_study(chunked["tmp"] / "changed.yaml", lr=0.002)
    rc, out, err = _study(params, root)
    assert rc == 2
    assert "run pawsx-baseline-0" in err and "params hash" in err
    assert _ledger(root)["runs"]["pawsx-baseline-0"]["params_hash"] in err
    assert load_params(params, "study").hash in err
    assert "check out the commit" in err and "aside" in err
    assert "salt prepare" not in out and _files(root) == before


def test_changed_code_stops_before_any_work(chunked, monkeypatch):
    root = _copy(chunked, "changed-code")
    monkeypatch.setattr(study, "code_digest", lambda files: "0" * 64)
    rc, out, err = _study(chunked["params"], root, "--seeds", "0-2")
    assert rc == 2
    recorded = _ledger(root)["runs"]["pawsx-baseline-0"]["code_digest"]
    assert "run pawsx-baseline-0" in err and "code digest" in err and recorded in err and "0" * 64 in err
    assert "check out the commit" in err and "aside" in err
    assert "salt " not in out.replace("salt study", "")


def test_metrics_file_without_ledger_entry_is_an_error(chunked):
    root = _copy(chunked, "orphan")
    ledger = _ledger(root)
    del ledger["runs"]["xnli-salt-1"]
    (root / "results" / "ledger.json").write_text(json.dumps(ledger))
    rc, _, err = _study(chunked["params"], root)
    assert rc == 2
    assert str(root / "results" / "metrics" / "xnli-salt-1.json") in err
    assert "no entry" in err


def test_ledger_entry_without_metrics_file_is_an_error(chunked):
    root = _copy(chunked, "missing-metrics")
    (root / "results" / "metrics" / "pawsx-salt-1.json").unlink()
    rc, _, err = _study(chunked["params"], root, "--dry-run")
    assert rc == 2
    assert str(root / "results" / "metrics" / "pawsx-salt-1.json") in err and "missing" in err


def test_upstream_differing_from_the_ledger_stops_naming_the_output(chunked):
    root = _copy(chunked, "other-upstream")
    cs = root / "work" / "codeswitch" / "pawsx.jsonl"
    lines = cs.read_text().splitlines(keepends=True)
    cs.write_text("".join(lines[1:] + lines[:1]))  # same records, another order
    rc, out, err = _study(chunked["params"], root, "--seeds", "0-2", "--max-runs", "1")
    assert rc == 2
    assert str(cs) in err and "pawsx-baseline-0" in err
    assert f"this machine's: {numerics.cpu_model()}" in err
    assert "salt train" not in out
    assert sorted(_ledger(root)["runs"]) == sorted(NAMES)


def test_another_numerics_probe_stops_before_any_work(chunked):
    root = _copy(chunked, "other-cpu")
    ledger = _ledger(root)
    ledger["runs"]["xnli-salt-1"]["numerics"].update(probe="0" * 16, cpu="Other CPU")
    (root / "results" / "ledger.json").write_text(json.dumps(ledger))
    rc, out, err = _study(chunked["params"], root, "--seeds", "0-2", "--max-runs", "1")
    assert rc == 2
    assert f"numerics probe {numerics.probe()} on this machine" in err
    assert "0000000000000000 for run xnli-salt-1 (Other CPU)" in err
    assert "salt prepare" not in out and "salt train" not in out
    rc, out, _ = _study(chunked["params"], root, "--seeds", "0-2", "--dry-run")
    assert rc == 0 and "a run would stop: numerics probe" in out


def test_a_ledger_of_another_version_stops(chunked):
    root = _copy(chunked, "old-ledger")
    ledger = _ledger(root)
    ledger["version"] = 1
    (root / "results" / "ledger.json").write_text(json.dumps(ledger))
    rc, out, err = _study(chunked["params"], root, "--seeds", "0-2", "--max-runs", "1")
    assert rc == 2 and "ledger version 1, this runner reads 2" in err
    assert "salt prepare" not in out


def test_unpinned_numerics_start_again_pinned_or_stop(chunked, monkeypatch):
    root = _copy(chunked, "unpinned")
    monkeypatch.delenv("MKL_CBWR")
    calls = []

    def exec_pinned(argv):
        calls.append(argv)
        raise SystemExit(0)

    monkeypatch.setattr(numerics, "exec_pinned", exec_pinned)
    args = ["--params", str(chunked["params"]), "--root", str(root), "--max-runs", "1"]
    with pytest.raises(SystemExit):
        study.main(args)
    assert calls == [["study", *args]]  # main starts again, pinned, before any work
    with pytest.raises(study.StudyError, match=r"not pinned .*MKL_CBWR=AVX2"):
        study.check_numerics({}, numerics.state())  # what a run reached unpinned would say


def test_interrupted_before_the_ledger_write_is_evaluated_again(chunked, monkeypatch):
    root = _copy(chunked, "interrupted")
    real = study.dump

    def crash(path, obj):
        if path.name == "ledger.json":
            raise KeyboardInterrupt
        real(path, obj)

    monkeypatch.setattr(study, "dump", crash)
    with pytest.raises(KeyboardInterrupt):
        _study(chunked["params"], root, "--seeds", "0-2", "--max-runs", "1")
    assert (root / "results" / "metrics" / "xnli-baseline-2.json").is_file()
    assert "xnli-baseline-2" not in _ledger(root)["runs"]
    monkeypatch.setattr(study, "dump", real)
    rc, out, _ = _study(chunked["params"], root, "--seeds", "0-2", "--max-runs", "1")
    assert rc == 0, out
    assert "xnli-baseline-2: trained here already, evaluating" in out
    assert "salt train" not in out
    assert "xnli-baseline-2" in _ledger(root)["runs"]
    assert not (root / "work" / "runs" / "xnli-baseline-2").exists()


def test_dry_run_does_nothing_and_lists_the_plan(chunked):
    fresh = chunked["tmp"] / "fresh"
    rc, out, _ = _study(chunked["params"], fresh, "--dry-run", "--max-runs", "2")
    assert rc == 0 and not fresh.exists()
    assert "upstream prepare: would build" in out
    assert "would run 2 of 8 left: xnli-baseline-0, xnli-salt-0" in out
    root = chunked["root"]
    before = _files(root), _ledger(root)
    rc, out, _ = _study(chunked["params"], root, "--seeds", "0-2", "--dry-run")
    assert rc == 0
    assert "xnli-salt-1: done" in out and "xnli-salt-2: to run" in out
    assert "upstream codeswitch-pawsx: current" in out
    assert "upstream outputs here match the ledger" in out
    assert "would run 4 of 4 left" in out
    assert (_files(root), _ledger(root)) == before


def test_parse_seeds():
    assert study.parse_seeds("0-3") == [0, 1, 2, 3]
    assert study.parse_seeds("0,2,5") == [0, 2, 5]
    assert study.parse_seeds("0-1,4") == [0, 1, 4]
    for bad in ("a", "1,1", "", "-1"):
        with pytest.raises(study.StudyError):
            study.parse_seeds(bad)


def test_cli_dispatches_study(tmp_path, capsys):
    from salt import cli

    params = _smoke_as_study(tmp_path / "params.yaml")
    assert cli.main(["study", "--params", str(params), "--root", str(tmp_path / "s"),
                     "--dry-run"]) == 0
    assert "seeds 0-1, 8 runs" in capsys.readouterr().out  # default: train.study.min_seeds


def test_committed_study_results_agree_with_their_ledger_and_this_code():
    """study/results as committed: each ledger entry's metrics file is there unchanged, no metrics
    file lacks an entry, all runs share one numerics probe, and all were made by this stage code
    and these study params: a change to either must restart the study, and fails here first."""
    root = ROOT / "study"
    ledger = root / "results" / "ledger.json"
    if not ledger.is_file():
        pytest.skip("no study run committed yet")
    files = study.code_files()
    params, _ = study.study_params(ROOT / "params.yaml", None)
    finished = study.check_ledger(study.read_ledger(ledger), root, study.code_digest(files),
                                  files, params.hash)
    assert sorted(p.stem for p in (root / "results" / "metrics").glob("*.json")) == \
        sorted(finished)
    assert len({entry["numerics"]["probe"] for entry in finished.values()}) == 1
