"""Mutation testing of the claim checks: realistic one-line bugs of the method, each applied to a
temporary copy of the repository and run against the property checks meant to catch it.

``python -m claims.mutants [--only NAME ...] [--all-checks] [--out FILE]`` prints one row per
mutant (killed by a named property, killed by a crash of the check, or survived) and the kill
rate; every survivor is listed with its reason (equivalent, or a gap still open). A mutant is an
``Edit`` list of (file, exact old line, new line): the old line (compared without its leading
whitespace) must occur exactly once in the current source, so drift after a refactoring shows as
an error (``tests/test_mutants.py`` checks every patch) and can be re-anchored by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate
from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parent.parent
COPIED = ("salt", "claims")  # what a mutant run needs from the repository


@dataclass(frozen=True)
class Edit:
    file: str  # path relative to the repository root
    old: str  # the exact line (leading whitespace ignored), unique in the file
    new: str  # its replacement (indented like the old line)


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: str  # what the bug does, in words
    edits: tuple[Edit, ...]
    checks: tuple[str, ...]  # the property checks expected to catch it
    expected: str = "killed"  # "killed", or "survives: <reason>" for a documented gap/equivalent


def _one(file: str, old: str, new: str) -> tuple[Edit, ...]:
    return (Edit(file, old, new),)


MX, TR, EV = "salt/mixup.py", "salt/train.py", "salt/evaluate.py"
PL, AS, SC = ("salt/codeswitch/planning.py", "salt/codeswitch/assemble.py",
              "salt/codeswitch/scorer.py")
RAND = "return torch.rand(shape, generator=generator)"
MIX = "return mix_embeddings(embedding(src_ids), embedding(cs_ids), r)"
ACCEPT = "if prob >= cfg.threshold and new != orig:"

MUTANTS: tuple[Mutant, ...] = (
    # ---- r: shape, range, freshness (C7, C8)
    Mutant("r-scalar", "r is one scalar per instance, broadcast over the hidden dimension",
           _one(MX, RAND, "return torch.rand(shape[:-1] + (1,), generator=generator)"
                          ".expand(shape).clone()"), ("C7", "C8")),
    Mutant("r-outside-0-1", "r drawn from U[-0.5, 1.5] instead of U[0, 1]",
           _one(MX, RAND, "return torch.rand(shape, generator=generator) * 2 - 0.5"), ("C7", "C8")),
    Mutant("r-shared-in-batch", "one r for the whole batch instead of one per instance",
           _one(MX, RAND, "return torch.rand((1,) + shape[1:], generator=generator)"
                          ".expand(shape).clone()"), ("C8",)),
    Mutant("r-cached-across-steps", "the step generator ignores the step: the same r every step",
           _one(MX, "g.manual_seed((seed * 1_000_003 + step * 7919 + stream) % (2**63 - 1))",
                "g.manual_seed((seed * 1_000_003 + stream) % (2**63 - 1))"), ("C8",)),
    Mutant("r-step-fixed-in-loop", "the training loop draws r from step 0's generator every step",
           _one(TR, "step_generator(cfg.seed, step, rank_stream(1)))  # (B, 1|T, H)",
                "step_generator(cfg.seed, 0, rank_stream(1)))  # (B, 1|T, H)"), ("C8",)),
    Mutant("r-per-position-ignored", "per_position=True still draws one r per instance",
           _one(MX, "shape = (batch, seq_len if config.per_position else 1, hidden)",
                "shape = (batch, 1, hidden)"), ("C7",)),
    Mutant("r-squared", "r = U^2: still in [0, 1], a vector, fresh, but not uniform",
           _one(MX, RAND, "return torch.rand(shape, generator=generator) ** 2"), ("C8",)),
    Mutant("beta-swapped", "Beta(alpha, beta) drawn as Beta(beta, alpha)",
           _one(MX, "return a / (a + b)", "return b / (a + b)"), ("C7", "C8")),
    # ---- the mix and its pairing (C6, C7)
    Mutant("mix-swapped-weights", "h = (1-r)*h_s + r*h_t",
           _one(MX, "return r * h_s + (1.0 - r) * h_t", "return (1.0 - r) * h_s + r * h_t"),
           ("C6", "C7")),
    Mutant("mix-another-instance", "each source mixed with the next instance's copy",
           _one(MX, MIX, "return mix_embeddings(embedding(src_ids), embedding(cs_ids.roll(1, 0)), r)"),
           ("C6", "C7")),
    Mutant("mix-shifted-copy", "each source mixed with its own copy shifted by one token",
           _one(MX, MIX, "return mix_embeddings(embedding(src_ids), embedding(cs_ids.roll(1, 1)), r)"),
           ("C6", "C7")),
    Mutant("collate-another-instance", "the copy picker pairs each source with another item's copy",
           _one(TR, "rows = [it.cs_copies[k] for it, k in zip(items, picks, strict=True)]",
                "rows = [it.cs_copies[k] for it, k in zip([*items[1:], *items[:1]], picks, "
                "strict=True)]"), ("C6",)),
    Mutant("copies-ignore-item-index", "the trainer picks copies for the first B items, not the "
           "batch's (item_index ignored): sources meet other instances' copies",
           _one(TR, 'inputs["cs_input_ids"] = pick_copies([self.items[i] for i in index], ids.shape[1],',
                'inputs["cs_input_ids"] = pick_copies(self.items[: len(index)], ids.shape[1],'),
           ("C6",)),
    Mutant("loss-ignores-copy", "the SALT loss mixes the source with itself",
           _one(TR, 'h = mixed_input_embeddings(embedding, batch["input_ids"], batch["cs_input_ids"], r)'
                "  # (B, T, H)",
                'h = mixed_input_embeddings(embedding, batch["input_ids"], batch["input_ids"], r)'
                "  # (B, T, H)"), ("C6",)),
    Mutant("dropout-at-evaluation", "evaluation runs the classifier in training mode (dropout)",
           _one(EV, "model.eval()", "model.train()"), ("C6",)),
    # ---- code-switching (C2-C5)
    Mutant("threshold-ignored", "every arg-max is substituted whatever its probability",
           _one(AS, ACCEPT, "if new != orig:"), ("C4",)),
    Mutant("threshold-halved", "substitutions accepted at half the threshold",
           _one(AS, ACCEPT, "if prob >= cfg.threshold / 2 and new != orig:"), ("C4",)),
    Mutant("synonym-threshold-shared", "synonyms use the translation threshold",
           _one(AS, "if prob >= cfg.synonym_threshold and new != orig:",
                "if prob >= cfg.threshold and new != orig:"), ("C5",)),
    Mutant("synonyms-forced-on", "the synonym option is on whatever the configuration says",
           _one(AS, "cfg = (config or CodeSwitchConfig()).resolved(vocabs)",
                "cfg = (config or CodeSwitchConfig()).resolved(vocabs); "
                "object.__setattr__(cfg, 'synonyms', True)"), ("C3", "C5")),
    Mutant("cap-ignored", "the max_ratio cap is not applied",
           _one(AS, "kept = sorted(props[:limit], key=lambda sr: sr[0].position)",
                "kept = sorted(props, key=lambda sr: sr[0].position)"), ("C4",)),
    Mutant("cap-keeps-least-probable", "the cap keeps the least probable substitutes",
           _one(AS, "props.sort(key=lambda sr: (-sr[0].probability, sr[0].position))",
                "props.sort(key=lambda sr: (sr[0].probability, sr[0].position))"), ("C4",)),
    Mutant("full-vocabulary-prediction", "substitutes predicted over the full vocabulary",
           _one(AS, "lang_ids[lang] = ids", "lang_ids[lang] = torch.arange(v_model)"), ("C3",)),
    Mutant("full-normalisation-ignored", "normalize='full' renormalises over the language set",
           _one(SC, "return torch.exp(logits_sub - full_lse.float()[:, None])",
                "return torch.softmax(logits_sub, dim=-1)"), ("C4",)),
    Mutant("arg-min-substitute", "the least probable id of the set is substituted",
           _one(AS, "p, k = probs.max(dim=-1)  # (M,), (M,)", "p, k = probs.min(dim=-1)  # (M,), (M,)"),
           ("C4",)),
    Mutant("misplaced-substitution", "the substitute is written one position to the right",
           _one(AS, "cs[p] = new", "cs[min(p + 1, len(cs) - 1)] = new"), ("C3", "C4")),
    Mutant("special-tokens-candidates", "special tokens ([CLS], [SEP]) may be substituted",
           _one(PL, "if is_special[p] or scheme.is_digits_or_punct(piece):",
                "if scheme.is_digits_or_punct(piece):"), ("C3", "C4")),
    Mutant("single-word-as-word-start", "candidate='single_word' behaves like 'word_start'",
           _one(PL, 'if mode == "single_word" and p + 1 < len(pieces):', "if False:"), ("C3",)),
    Mutant("wrong-record-labels", "code-switch records carry label 0 instead of the source's",
           _one(AS, '"label": int(e.label), "candidates": list(cands), "substitutions": subs,',
                '"label": 0, "candidates": list(cands), "substitutions": subs,'), ("C3",)),
    Mutant("synonym-may-keep-original", "a synonym may equal the original token",
           _one(AS, "hit = ids[None, :] == exclude[:, None]  # (M, |V|)",
                "hit = ids[None, :] == -1  # (M, |V|)"), ("C5",)),
)


class PatchError(ValueError):
    """A mutant's old line does not occur exactly once in the current source."""


def apply(mutant: Mutant, root: Path) -> None:
    """Apply a mutant's edits in place under ``root``; ``PatchError`` when one does not match."""
    for edit in mutant.edits:
        path = root / edit.file
        lines = path.read_text(encoding="utf-8").split("\n")
        hits = [i for i, line in enumerate(lines) if line.strip() == edit.old.strip()]
        if len(hits) != 1:
            raise PatchError(f"mutant {mutant.name}: {edit.file}: the line {edit.old!r} occurs "
                             f"{len(hits)} times (expected exactly once): re-anchor it")
        line = lines[hits[0]]
        lines[hits[0]] = line[: len(line) - len(line.lstrip())] + edit.new.strip()
        path.write_text("\n".join(lines), encoding="utf-8")


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # "killed", "killed (crash)", "survived", "patch error", "timeout"
    by: dict[str, str] = field(default_factory=dict)  # check -> verdict
    evidence: str = ""
    runtime_s: float = 0.0


_RUNNER = """
import json, sys
from claims.properties import run_all
out = run_all(sys.argv[1], seed=0, work=None, only=json.loads(sys.argv[2]))
"""


def run_mutant(mutant: Mutant, checks: Sequence[str], timeout_s: int = 900,
               repo: Path = REPO) -> Outcome:
    """Copy the repository's packages to a temporary folder, apply the mutant, run ``checks``."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"salt-mutant-{mutant.name}-") as tmp:
        root = Path(tmp)
        for name in COPIED:
            shutil.copytree(repo / name, root / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        try:
            apply(mutant, root)
        except PatchError as err:
            return Outcome(mutant, "patch error", evidence=str(err))
        out = root / "properties.json"
        env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            proc = subprocess.run([sys.executable, "-c", _RUNNER, str(out), json.dumps(list(checks))],
                                  cwd=root, env=env, capture_output=True, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return Outcome(mutant, "timeout", evidence=f"no result within {timeout_s} s",
                           runtime_s=round(time.perf_counter() - start, 1))
        runtime = round(time.perf_counter() - start, 1)
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return Outcome(mutant, "killed (crash)", evidence=f"the checks could not run: {tail[0]}",
                           runtime_s=runtime)
        res = json.loads(out.read_text(encoding="utf-8"))
    by = {cid: entry["verdict"] for cid, entry in res.items()}
    failing = [cid for cid, v in by.items() if v == "fails"]
    crashed = [cid for cid, v in by.items() if v == "error"]
    if failing:
        status, cid = "killed", failing[0]
    elif crashed or any(v != "holds" for v in by.values()):
        status, cid = "killed (crash)", (crashed or [c for c, v in by.items() if v != "holds"])[0]
    else:
        status, cid = "survived", next(iter(by))
    return Outcome(mutant, status, by, res[cid]["evidence"][:300], runtime)


def summary(outcomes: Sequence[Outcome]) -> dict[str, object]:
    """Kill rate over mutants that ran (a patch error is a drift to fix, not a survivor)."""
    ran = [o for o in outcomes if o.status != "patch error"]
    killed = [o for o in ran if o.status.startswith("killed")]
    survivors = [{"mutant": o.mutant.name, "bug": o.mutant.bug,
                  "reason": (o.mutant.expected.removeprefix("survives: ")
                             if o.mutant.expected.startswith("survives") else
                             "gap: not expected - a check that should catch this does not")}
                 for o in ran if o.status in ("survived", "timeout")]
    return {"mutants": len(outcomes), "ran": len(ran), "killed": len(killed),
            "killed_by_property": sum(o.status == "killed" for o in ran),
            "killed_by_crash": sum(o.status == "killed (crash)" for o in ran),
            "kill_rate": round(len(killed) / len(ran), 3) if ran else None,
            "survivors": survivors,
            "patch_errors": [o.evidence for o in outcomes if o.status == "patch error"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m claims.mutants", description=__doc__)
    parser.add_argument("--only", nargs="*", default=None, help="mutant names to run")
    parser.add_argument("--all-checks", action="store_true",
                        help="run every property check on each mutant, not only its own")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per mutant")
    parser.add_argument("--out", type=Path, default=None, help="write the outcomes as JSON")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if args.only is None or m.name in args.only]
    unknown = sorted(set(args.only or ()) - {m.name for m in MUTANTS})
    if unknown:
        parser.error(f"unknown mutants {unknown}; see --list")
    if args.list:
        print(tabulate([(m.name, m.bug, ", ".join(m.checks)) for m in chosen],
                       headers=("mutant", "bug", "checks")))
        return 0
    from .properties import CHECKS

    outcomes = []
    for m in tqdm(chosen, desc="mutants", unit="mutant"):
        checks = tuple(CHECKS) if args.all_checks else m.checks
        outcomes.append(run_mutant(m, checks, args.timeout))
        o = outcomes[-1]
        tqdm.write(f"{m.name}: {o.status} ({o.runtime_s} s) {o.by}")
    print(tabulate([(o.mutant.name, o.status, ", ".join(f"{c} {v}" for c, v in o.by.items()),
                     o.evidence[:90]) for o in outcomes],
                   headers=("mutant", "outcome", "checks", "evidence")))
    s = summary(outcomes)
    print(f"\nkill rate: {s['killed']}/{s['ran']} = {s['kill_rate']} "
          f"({s['killed_by_property']} by a named property, {s['killed_by_crash']} by a crash)")
    for sv in s["survivors"]:
        print(f"survivor {sv['mutant']}: {sv['bug']} -- {sv['reason']}")
    for pe in s["patch_errors"]:
        print(f"patch error: {pe}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": s, "outcomes": [
            {"mutant": o.mutant.name, "status": o.status, "checks": o.by,
             "evidence": o.evidence} for o in outcomes]}, indent=1), encoding="utf-8")
    return 1 if s["patch_errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
