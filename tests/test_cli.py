"""The command line only parses and dispatches: stages by name, ``plan`` to ``salt.plan``."""

from __future__ import annotations

import sys
import types
from pathlib import Path

from salt import cli

ROOT = Path(__file__).resolve().parents[1]


def test_plan_dispatches_to_salt_plan(monkeypatch):
    seen = {}
    fake = types.ModuleType("salt.plan")

    def add_arguments(parser):
        parser.add_argument("--profile", default="proxy")
        parser.add_argument("--gpu", default=None)

    def run(args):
        seen["args"] = args
        return 7

    fake.add_arguments, fake.run = add_arguments, run
    monkeypatch.setitem(sys.modules, "salt.plan", fake)
    assert cli.main(["plan", "--profile", "paper", "--gpu", "h100"]) == 7
    assert seen["args"].profile == "paper" and seen["args"].gpu == "h100"


def test_unknown_task_names_the_key(tmp_path, capsys):
    code = cli.main(["--params", str(ROOT / "params.yaml"), "--profile", "proxy", "--workdir",
                     str(tmp_path), "codeswitch", "--task", "mnli"])
    assert code == 2
    assert "--task 'mnli' is not in params 'tasks'" in capsys.readouterr().err


def test_stage_reads_its_config_only(tmp_path):
    """A stage's config holds what it uses; unrelated groups are not in it."""
    from salt.config import load_params
    from salt.stages import vocab

    cfg = vocab.configure(load_params(ROOT / "params.yaml", "smoke"))
    assert set(vars(cfg)) == {"tasks", "rule"}
    assert cfg.rule.min_count == 1 and cfg.rule.source_top_k == 300
