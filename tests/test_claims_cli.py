"""The claims command line: audits of external numbers never touch reports/, import and plan."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import claims
from claims import registry
from claims.__main__ import main
from claims.results import make_metrics
from salt.tasks import PAWSX, XNLI

ARMS = {"salt": [72, 73, 74], "baseline": [70, 71, 70]}


def write_set(root: Path, origin: dict[str, Any] | None = None) -> list[Path]:
    """Three seeds per arm on both tasks; ``origin`` is added to every file's provenance."""
    paths = []
    for spec in (XNLI, PAWSX):
        for system, counts in ARMS.items():
            for seed, c in enumerate(counts):
                m = make_metrics(spec.name, system, seed, dict.fromkeys(spec.languages, c))
                if origin is not None:
                    m["provenance"]["origin"] = origin
                path = root / f"{spec.name}-{system}-{seed}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(m))
                paths.append(path)
    return paths


IMPORTED = {"kind": "import", "format": "csv", "source": "their.csv", "sha256": None}


def properties(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "properties.json").write_text(json.dumps({"C7": {"verdict": "fails",
                                                               "evidence": "r outside [0,1]"}}))


def verdicts(out: str) -> dict[str, str]:
    """Claim id -> the rest of its summary line (verdict first)."""
    return {ln.split()[0]: ln.split(maxsplit=1)[1] for ln in out.splitlines()
            if ln[:1] in "CT" and ln.split()[0][1:].isdigit()}


def test_audit_other_folder_needs_out(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_set(Path("theirs"))
    assert main(["audit", "theirs"]) == 2
    assert "not the project's results/metrics; pass -o OUT" in capsys.readouterr().err
    assert not Path("reports").exists()


def test_audit_of_imported_numbers_refuses_reports(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_set(Path("results/metrics"), IMPORTED)  # even in the project's own folder
    for args in (["audit", "results/metrics"], ["audit", "results/metrics", "-o", "reports"],
                 ["audit", "results/metrics", "-o", "./reports/"],
                 ["audit", "results/metrics", "-o", "reports/theirs"]):
        assert main(args) == 2
        assert "refusing to write an audit of external numbers" in capsys.readouterr().err
    assert not Path("reports").exists()


def test_external_audit_ignores_this_implementations_properties(tmp_path: Path, capsys,
                                                                monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_set(Path("theirs"), IMPORTED)
    properties(Path("out"))
    assert main(["audit", "theirs", "-o", "out", "--properties", "out/properties.json"]) == 0
    text = capsys.readouterr().out
    got = verdicts(text)
    # "not applicable" (claims.verdicts, from provenance.origin) or "not run": never the outcome
    assert got["C7"].startswith(("not applicable", "not run"))
    assert "external numbers" in text and Path("out/claims.md").is_file()


def test_own_results_default_to_reports_with_properties(tmp_path: Path, capsys,
                                                         monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_set(Path("results/metrics"))
    properties(Path("reports"))
    assert main(["audit", "results/metrics"]) == 0
    assert verdicts(capsys.readouterr().out)["C7"].startswith("fails")
    assert Path("reports/claims.md").is_file()


def test_audit_claims_file(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_set(Path("theirs"))
    seen = []

    def load(path: Path) -> tuple:
        seen.append(path)
        return tuple(c for c in registry.CLAIMS if c.id == "C1")

    monkeypatch.setattr(registry, "load_claims", load, raising=False)
    assert main(["audit", "theirs", "-o", "out", "--claims", "c.yaml"]) == 0
    assert seen == [Path("c.yaml")] and list(verdicts(capsys.readouterr().out)) == ["C1"]


def test_import_command(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("t.csv").write_text("system,seed,en,ja\nx,0,90.00,70.00\n")
    assert main(["import", "csv", "t.csv", "-o", "imp", "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "imp/pawsx-x-0.json: pawsx x seed=0 split=test" in out
    assert "summary only: unverifiable" in out and "missing languages" in out
    m = json.loads(Path("imp/pawsx-x-0.json").read_text())
    assert m["provenance"]["origin"]["source"] == "t.csv"
    Path("t.csv").write_text("system,seed,en,ja\nx,0,90.00,nan%\n")
    assert main(["import", "csv", "t.csv", "-o", "imp"]) == 2
    assert "t.csv:2: column ja" in capsys.readouterr().err


def test_plan_dispatches_to_claims_power(monkeypatch, capsys) -> None:
    calls = []
    fake = ModuleType("claims.power")
    fake.add_arguments = lambda p: p.add_argument("--seeds", type=int, default=3)
    fake.run = lambda args: calls.append(args.seeds) or 0
    monkeypatch.setitem(sys.modules, "claims.power", fake)
    monkeypatch.setattr(claims, "power", fake, raising=False)
    assert main(["plan", "--seeds", "5"]) == 0 and calls == [5]
    monkeypatch.setitem(sys.modules, "claims.power", None)  # no claims.power in this build
    monkeypatch.delattr(claims, "power", raising=False)
    assert main(["plan", "--seeds", "5"]) == 2
    assert "no claims.power" in capsys.readouterr().err


def test_properties_subcommand_still_parses() -> None:
    from claims.__main__ import build_parser

    args = build_parser().parse_args(["properties", "--seed", "2"])
    assert args.command == "properties" and args.seed == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["import", "csv", "x.csv"])  # -o is required


USER_CLAIMS = """claims:
  - id: T1
    text: the treatment beats mBERT by 3 points on PAWS-X
    kind: statistical
    verified: false
    arms: {treatment: ours, control: mbert}
    metric: accuracy
    parts:
      - {task: pawsx, languages: [de, es, fr, ja, ko, zh], description: 6 languages, gain: 3.0}
"""


def test_end_to_end_import_and_audit_of_their_numbers(tmp_path: Path, capsys,
                                                      monkeypatch) -> None:
    """Somebody else's CSV, their own claims file, free arm names: imported, audited into -o,
    C2-C8 of this implementation absent, the committed reports/ untouched."""
    monkeypatch.chdir(tmp_path)
    langs = PAWSX.languages
    rows = ["system,seed," + ",".join(langs)]
    for arm, base in (("mbert", 1600), ("ours", 1680)):
        for seed in range(3):
            rows.append(f"{arm},{seed}," + ",".join(f"{100 * (base + 7 * seed + i) / 2000:.2f}"
                                                     for i in range(len(langs))))
    Path("theirs.csv").write_text("\n".join(rows) + "\n")
    Path("claims.yaml").write_text(USER_CLAIMS)
    assert main(["import", "csv", "theirs.csv", "-o", "imp", "--split", "test"]) == 0
    assert main(["audit", "imp", "-o", "out", "--claims", "claims.yaml"]) == 0
    text = capsys.readouterr().out
    assert list(verdicts(text)) == ["T1"] and not Path("reports").exists()
    assert Path("out/claims.md").is_file()
