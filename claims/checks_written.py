"""C3 and C4 on the code-switched training data the pipeline actually wrote (issue 12 item 4).

The bench checks test the code-switcher on a tiny model; this reads what the pipeline's real
model produced: ``work/codeswitch/<task>.jsonl`` with its ``.meta.json`` sidecar (the
configuration), ``work/vocab/vocab.json`` (the language sets, checked against the sidecar's
digests), the tokenizer of the model the pipeline used (``work/mlm/mlm.json``) and the prepared
English sources ``work/data/<task>/train-en.jsonl``. Probabilities are the recorded ones (the
pipeline's model is not rerun here; the bench's C4 recomputes them by the definition).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from salt.codeswitch import SYNONYM_TAG, meta_path, read_jsonl
from salt.models import load_tokenizer
from salt.vocab import LanguageVocabs

from .bench import Violation, crash_message, require


def _rel(path: Path, root: Path) -> str:
    """``path`` relative to the working directory when it lies under it, else to ``root``'s
    parent, else its name: never a machine path."""
    rel = Path(os.path.relpath(path))
    if ".." not in rel.parts:
        return rel.as_posix()
    try:
        return path.relative_to(root.parent).as_posix()
    except ValueError:
        return path.name


def _sources(path: Path) -> dict[str, int]:
    """uid -> gold label of the prepared English training pairs."""
    out = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            row = json.loads(line)
            out[row["uid"]] = int(row["label"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}:{i}: not a prepared example ({err})") from None
    return out


def _check_file(path: Path, work: Path, vocabs: LanguageVocabs, tok: Any,
                seen: dict[str, int]) -> None:
    """C3 and C4 on one records file; raises ``Violation`` naming the record."""
    side = meta_path(path)
    require(side.is_file(), f"{_rel(path, work)}: no sidecar {side.name} saying how it was made")
    meta = json.loads(side.read_text(encoding="utf-8"))
    cfg = meta["config"]
    for lang, digest in meta.get("vocab_digests", {}).items():
        require(vocabs.digest(lang) == digest,
                f"{_rel(path, work)}: written with another {lang!r} language set than "
                "work/vocab/vocab.json holds")
    task = path.stem
    gold = _sources(work / "data" / task / "train-en.jsonl")
    specials = set(tok.all_special_ids)
    sets = {lang: set(vocabs.ids(lang).tolist()) for lang in cfg["languages"]}
    source_set = set(vocabs.ids(vocabs.source_lang).tolist())
    for rec in read_jsonl(path):
        where = f"{_rel(path, work)}: record {rec['uid']} copy {rec.get('copy')}"
        seen["records"] += 1
        require(rec["uid"] in gold, f"{where}: uid is not a prepared {task} training pair")
        require(rec["label"] == gold[rec["uid"]],
                f"{where}: label {rec['label']} but the source's label is {gold[rec['uid']]}")
        lang = rec["lang"]
        require(lang in sets, f"{where}: copy into {lang!r}, not a configured language "
                              f"{cfg['languages']}")
        src, cs = rec["input_ids"], rec["cs_input_ids"]
        require(len(src) == len(cs), f"{where}: copy not token-aligned ({len(cs)} vs {len(src)})")
        cands = set(rec["candidates"])
        bad = sorted(p for p in cands if src[p] in specials)
        require(not bad, f"{where}: special token {src[bad[0]] if bad else 0} at candidate "
                         f"position {bad[:1]}")
        subs = {s[0]: s for s in rec["substitutions"]}
        limit = math.floor(cfg["max_ratio"] * len(cands) + 1e-9)
        require(len(subs) <= limit, f"{where}: {len(subs)} substitutions, the max_ratio cap "
                                    f"allows {limit} of {len(cands)} candidates")
        for p, (a, b) in enumerate(zip(src, cs, strict=True)):
            if a == b:
                continue
            require(p in subs and subs[p][2] == b,
                    f"{where}: position {p} changed ({a} -> {b}) without a recorded substitution")
            _p, orig, new, prob, tag = subs[p]
            require(orig == a, f"{where}: substitution at {p} records original {orig}, the "
                               f"source has {a}")
            require(p in cands, f"{where}: substitution at non-candidate position {p}")
            seen["substitutions"] += 1
            if tag == SYNONYM_TAG:
                require(bool(cfg.get("synonyms")), f"{where}: synonym substitution at {p} with "
                                                   "synonyms off")
                require(new in source_set, f"{where}: synonym {new} outside the source set")
                require(prob >= cfg["synonym_threshold"],
                        f"{where}: synonym probability {prob!r} below {cfg['synonym_threshold']!r}")
                continue
            require(tag == lang, f"{where}: substitution tagged {tag!r} in a copy into {lang!r}")
            require(new in sets[lang], f"{where}: substitute {new} "
                                       f"({tok.convert_ids_to_tokens([new])[0]!r}) at {p} is not "
                                       f"in the {lang!r} set (C3)")
            require(prob >= cfg["threshold"], f"{where}: substitution probability {prob!r} below "
                                              f"the threshold {cfg['threshold']!r} (C4)")


def check_written(work: str | Path = "work") -> dict[str, Any] | None:
    """C3/C4 outcome on the pipeline's written data, or None when there is none to check.

    Returns ``{"verdict", "evidence", "ran_on"}``; a file that cannot be read is the verdict
    "error" (the check could not run), never "holds".
    """
    work = Path(work)
    files = sorted(p for p in (work / "codeswitch").glob("*.jsonl")) if work.is_dir() else []
    if not files:
        return None
    seen = {"records": 0, "substitutions": 0}
    ran_on: dict[str, Any] = {"data": [_rel(p, work) for p in files],
                              "vocab": _rel(work / "vocab" / "vocab.json", work)}
    try:
        pointer = json.loads((work / "mlm" / "mlm.json").read_text(encoding="utf-8"))
        model_dir = Path(pointer["model_dir"])
        model_dir = model_dir if model_dir.is_absolute() else work.parent / model_dir
        ran_on["model"] = _rel(model_dir, work)
        tok = load_tokenizer(model_dir)
        vocabs = LanguageVocabs.load(work / "vocab" / "vocab.json")
        for path in files:
            _check_file(path, work, vocabs, tok, seen)
    except Violation as err:
        return {"verdict": "fails", "ran_on": ran_on, "details": seen,
                "evidence": f"VIOLATED on the pipeline's written data: {err}"}
    except Exception as err:  # unreadable inputs: the check could not run
        return {"verdict": "error", "ran_on": ran_on, "details": seen,
                "evidence": f"the check of the written data crashed: {crash_message(err)}"}
    if not seen["substitutions"]:
        return {"verdict": "inconclusive", "ran_on": ran_on, "details": seen,
                "evidence": f"no substitution in {seen['records']} written records"}
    return {"verdict": "holds", "ran_on": ran_on, "details": seen,
            "evidence": f"on the pipeline's written data ({', '.join(ran_on['data'])}; "
                        f"{seen['records']} records, {seen['substitutions']} substitutions) every "
                        "substitute lies in its copy's language set, has its recorded probability "
                        ">= the configured threshold, sits at a non-special candidate position "
                        "within the max_ratio cap, and every record's uid and label are its "
                        "source's"}
