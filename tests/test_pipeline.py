"""The study end to end: the smoke profile through DVC, the paper profile's configuration
offline (tiny local model and data swapped in), and the CLI's errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from salt import cli
from salt.schema import load_metrics

ROOT = Path(__file__).resolve().parents[1]


def _project_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    skip = ("results/", "reports/", "dvc.lock")
    return [f for f in out.splitlines() if not f.startswith(skip) and (ROOT / f).is_file()]


def _copy_project(dest: Path) -> Path:
    for rel in _project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    return dest


def _run(cmd: list[str], cwd: Path, env: dict, timeout: int = 900) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_smoke_profile_through_dvc(tmp_path, data_dir):
    """`dvc exp run -S profile=smoke` runs every stage, writes the audit, and a second run
    with nothing changed does nothing."""
    repo = _copy_project(tmp_path / "repo")
    # DVC runs `python -m salt ...` through the shell: the environment's interpreter must lead
    # PATH, as it does once the venv is activated (README, .ci/run).
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "SALT_DATA_DIR": str(data_dir), "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        _run(cmd, repo, env)
    dvc = [sys.executable, "-m", "dvc"]
    _run([*dvc, "exp", "run", "-S", "profile=smoke", "-S", "seeds=[0,1]"], repo, env, timeout=1800)
    metrics = sorted((repo / "results" / "metrics").glob("*.json"))
    assert [m.name for m in metrics] == sorted(
        f"{t}-{s}-{n}.json" for t in ("pawsx", "xnli") for s in ("baseline", "salt") for n in (0, 1))
    m = load_metrics(metrics[0])
    prov = m["provenance"]
    assert prov["profile"] == "smoke" and prov["model"] == "tiny"
    assert len(m["languages"]) == 7
    # the device recorded is the one the model ran on, read back from it
    assert prov["device"].split(" ")[0] == prov["runtime"]["device"]
    if not torch.cuda.is_available():
        assert prov["runtime"]["device"] == "cpu"
    assert prov["runtime"]["weights_dtype"] == "float32" and prov["runtime"]["autocast"] == "fp32"
    # every result-changing setting is on the record; no machine path anywhere
    assert prov["params"]["train"]["mixup"]["distribution"] == "uniform"
    assert prov["params"]["vocab"]["source_share_ratio"] == 1.0
    assert prov["data_source"] == f"local:{prov['data_revision']}"
    for path in [*metrics, repo / "work" / "data" / "manifest.json"]:
        text = path.read_text()
        assert str(tmp_path) not in text and str(data_dir) not in text, path
    # target-language unlabeled text holds no translation of the English text (other items)
    lines = {lang: {json.loads(row)["uid"].rsplit(":", 1)[1] for row in
                    (repo / "work" / "data" / "xnli" / f"unlabeled-{lang}.jsonl").open()}
             for lang in ("en", "de")}
    assert lines["en"] and lines["de"] and not lines["en"] & lines["de"]
    verdicts = {c["id"]: c["verdict"] for c in
                json.loads((repo / "reports" / "claims.json").read_text())["claims"]}
    # the tiny random model predicts one class: "not measurable", never a verdict on the claim
    assert verdicts["C1"] == "not measurable"
    again = _run([*dvc, "repro"], repo, env)
    assert "Running stage" not in again
    status = _run([*dvc, "status"], repo, env)
    assert "up to date" in status
    # touching one stage's module makes exactly that stage out of date (DVC lists the stages
    # whose own deps changed; descendants rerun after it)
    module = repo / "salt" / "stages" / "train.py"
    module.write_text(module.read_text() + "\n# touched\n")
    changed = json.loads(_run([*dvc, "status", "--json"], repo, env))
    assert set(changed) == {f"train_{s}@{t}-{n}" for s in ("baseline", "salt")
                            for t in ("xnli", "pawsx") for n in (0, 1)}, sorted(changed)


def _paper_params(tmp: Path, tiny_model: Path, hub: dict) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["profile"] = "paper"
    params["seeds"] = [0, 1, 2, 3, 4]
    params["tasks"] = ["pawsx"]
    # Offline stand-ins for the hub: a tiny local model folder and small local data.
    params["model"]["paper"]["source"] = f"hf:{tiny_model}"
    params["model"]["paper"]["max_length"] = 48
    # the hub code path (datasets.load_dataset at the pinned commits) on hub-layout copies
    params["data"]["paper"].update(source="hub", train=64, dev=16, test=16, unlabeled=64,
                                   hub_revision=hub["revisions"])
    params["mlm"]["paper"]["eval_sentences"] = 20
    # The tiny model's vocabulary was learned from en/fr/de/es text only.
    params["codeswitch"]["paper"]["languages"] = ["de", "es", "fr"]
    # the tiny random model cannot learn in 4 steps: the learning gate is off for this check
    params["train"]["paper"].update(batch_size=16, checkpoint_every=4,
                                    gate_max_class_share=None, gate_min_margin=None)
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_paper_profile_configuration_offline(tmp_path, tiny_model, hub_mirror, monkeypatch):
    monkeypatch.setenv("SALT_HUB_MIRROR", str(hub_mirror["path"]))
    monkeypatch.delenv("SALT_DATA_DIR", raising=False)  # the hub path needs no local data
    params = _paper_params(tmp_path, tiny_model, hub_mirror)
    base = ["--params", str(params), "--workdir", str(tmp_path)]
    for cmd in (["prepare"], ["model"], ["vocab"], ["mlm"], ["codeswitch", "--task", "pawsx"]):
        assert cli.main([*base, *cmd]) == 0, cmd
    for system in ("baseline", "salt"):
        args = ["--task", "pawsx", "--system", system, "--seed", "0"]
        assert cli.main([*base, "train", *args]) == 0
        assert cli.main([*base, "evaluate", *args]) == 0
    m = load_metrics(tmp_path / "results" / "metrics" / "pawsx-salt-0.json")
    prov = m["provenance"]
    assert prov["profile"] == "paper" and prov["model"] == f"hf:{tiny_model}"
    assert prov["sizes"]["train"] == 64 and prov["sizes"]["test_per_language"] == 16
    assert set(m["languages"]) == {"en", "de", "es", "fr", "ja", "ko", "zh"}
    assert prov["params"]["train"]["selection"] == "best_en_dev"
    run = json.loads((tmp_path / "work" / "runs" / "pawsx-salt-0" / "train.json").read_text())
    assert run["selected"]["step"] >= 1  # English-dev model selection ran
    assert prov["data_source"].startswith("hub:google-research-datasets/paws-x@")
    assert prov["data_revision"] == prov["data_source"]
    base_m = load_metrics(tmp_path / "results" / "metrics" / "pawsx-baseline-0.json")
    assert base_m["provenance"]["params_hash"] == prov["params_hash"]


def test_cli_errors_name_the_key(tmp_path, capsys):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    del params["train"]["smoke"]
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(params))
    assert cli.main(["--params", str(bad), "--profile", "smoke", "prepare"]) == 2
    assert "key 'train.smoke' missing" in capsys.readouterr().err
    assert cli.main(["--params", str(ROOT / "params.yaml"), "--profile", "paper", "prepare"]) == 2
    assert "needs at least 5 seeds" in capsys.readouterr().err
    assert cli.main(["--params", str(ROOT / "params.yaml"), "--workdir", str(tmp_path),
                     "train", "--task", "xnli", "--system", "salt", "--seed", "0"]) == 2
    assert "run the stage that writes it first" in capsys.readouterr().err
