"""Two CPU processes (torchrun, gloo): evaluation identical to one process, training equivalent
for the same global batch, and every rank drawing its own r."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from salt.classifier import build_classifier
from salt.codeswitch import CodeSwitchConfig, code_switch, part_path
from salt.data import load_local, stratified_subset
from salt.distributed import ShardError, rank_stream, shard_and_gather
from salt.encoding import encode_pairs
from salt.evaluate import predict
from salt.models import load_masked_lm, load_tokenizer
from salt.runtime import decide
from salt.train import TrainConfig, items_from_codeswitch, load_trained, train
from salt.vocab import LanguageVocabs, build_vocabularies

pytestmark = pytest.mark.distributed


@pytest.fixture(scope="module")
def setup(tiny_model, data_dir, tmp_path_factory):
    """The tiny model without dropout (so one process and two can compute the same thing),
    32 training items with a code-switched copy, 40 evaluation pairs."""
    root = tmp_path_factory.mktemp("dist")
    model = root / "model"
    shutil.copytree(tiny_model, model)
    cfg = json.loads((model / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model / "config.json").write_text(json.dumps(cfg))
    tok = load_tokenizer(model)
    rows = load_local("xnli", "dev", "en", data_dir)
    enc = encode_pairs(tok, stratified_subset(rows, 32, 0), 48)
    records = [{"uid": e.uid, "cs_input_ids": [t if i % 3 else 7 for i, t in
                                                enumerate(e.input_ids)]} for e in enc]
    items = items_from_codeswitch(records, enc)
    test = encode_pairs(tok, rows[500:540], 48)
    torch.save({"items": [vars(it) for it in items], "test": [vars(e) for e in test]},
               root / "data.pt")
    texts = {lang: [t for e in load_local("xnli", "dev", lang, data_dir)[:200]
                    for t in (e.text_a, e.text_b)] for lang in ("en", "fr", "de")}
    build_vocabularies(tok, texts, min_count=2, source_top_k=150).save(root / "vocab.json")
    return root, model, items, test, tok.pad_token_id


SCRIPT = """
import json, sys, torch
from salt import train as T
from salt.encoding import Encoded
from salt.evaluate import predict
from salt.distributed import process_state, shard_and_gather
root, model, pad = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = torch.load(root + "/data.pt", weights_only=True)
items = [T.TrainItem(**d) for d in data["items"]]
test = [Encoded(**d) for d in data["test"]]
base = dict(epochs=1, batch_size=4, checkpoint_every=100, lr=1e-3, warmup_ratio=0.0,
            group_by_length=2)
T.train(model, items, root + "/ddp-baseline", T.TrainConfig(system="baseline", **base), 3,
        pad_id=pad)
draws = []
real = T.sample_r
def spy(*a, **k):
    r = real(*a, **k)
    draws.append(r.flatten()[:8].tolist())
    return r
T.sample_r = spy
log = T.train(model, items, root + "/ddp-salt", T.TrainConfig(system="salt", **base), 3,
              pad_id=pad)
trained = T.load_trained(model, root + "/ddp-baseline", 3)
state = process_state()
out = {"rank": state.process_index, "processes": state.num_processes, "backend": state.backend,
       "steps": log["steps"], "predicted": predict(trained, test, pad, 8), "r": draws,
       "pairs": shard_and_gather(list(range(7)), lambda p: [x for v in p for x in (v, -v)],
                                 per_item=False)}
with open(f"{root}/rank{state.process_index}.json", "w") as f:
    json.dump(out, f)

# code-switching: each process codes its share of the chunks; the main one merges the files
from salt.codeswitch import CodeSwitchConfig, code_switch
from salt.models import load_masked_lm, load_tokenizer
from salt.runtime import decide
from salt.vocab import LanguageVocabs
cs = CodeSwitchConfig(normalize="target", threshold=0.003, languages=("fr", "de"),
                      max_ratio=0.5, copies=2)
code_switch(load_masked_lm(model), load_tokenizer(model), test,
            LanguageVocabs.load(root + "/vocab.json"), cs, out_path=root + "/cs-ddp.jsonl",
            chunk_size=6, progress=False, runtime=decide("fp32"))
"""


def test_two_processes_match_one(setup):
    root, model, items, test, pad = setup
    script = root / "ddp.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", "29533", str(script), str(root), str(model), str(pad)],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((root / f"rank{k}.json").read_text()) for k in (0, 1)]
    assert [(r["rank"], r["processes"], r["backend"]) for r in ranks] == [(0, 2, "gloo"),
                                                                          (1, 2, "gloo")]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 4  # 32 items / (4 per process x 2)

    # one process, the same global batch (8): the same weights up to float reduction order
    one = train(model, items, root / "one-baseline",
                TrainConfig(system="baseline", epochs=1, batch_size=8, checkpoint_every=100,
                            lr=1e-3, warmup_ratio=0.0, group_by_length=2), 3, pad_id=pad)
    assert one["steps"] == 4
    a = load_file(root / "one-baseline" / "model.safetensors")
    b = load_file(root / "ddp-baseline" / "model.safetensors")
    assert a.keys() == b.keys()
    torch.manual_seed(0)
    start = dict(build_classifier(model, 3, "cls").named_parameters())
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    moved = [k for k in a if not torch.allclose(a[k], start[k], atol=1e-4)]
    assert len(moved) > len(a) // 2  # training did change the weights it compares

    # evaluation: sharded over two processes and gathered == one process, on the DDP weights
    ddp_model = load_trained(model, root / "ddp-baseline", 3)
    assert ranks[0]["predicted"] == ranks[1]["predicted"] == predict(ddp_model, test, pad, 8)

    want = [x for v in range(7) for x in (v, -v)]  # several results per item, order kept
    assert ranks[0]["pairs"] == ranks[1]["pairs"] == want

    # code-switching over two processes: the merged file is byte for byte one process's file
    cs = CodeSwitchConfig(normalize="target", threshold=0.003, languages=("fr", "de"),
                          max_ratio=0.5, copies=2)
    one_cs = code_switch(load_masked_lm(model), load_tokenizer(model), test,
                         LanguageVocabs.load(root / "vocab.json"), cs,
                         out_path=root / "cs-one.jsonl", chunk_size=6, progress=False,
                         runtime=decide("fp32"))
    assert len(one_cs) == 2 * len(test) and sum(len(r["substitutions"]) for r in one_cs) > 0
    assert (root / "cs-ddp.jsonl").read_bytes() == (root / "cs-one.jsonl").read_bytes()
    assert not part_path(root / "cs-ddp.jsonl", 0, 2).exists()  # merged and removed
    assert not part_path(root / "cs-ddp.jsonl", 1, 2).exists()

    # every rank drew its own r at every step
    r0, r1 = ranks[0]["r"], ranks[1]["r"]
    assert len(r0) == len(r1) == 4
    assert all(x != y for x, y in zip(r0, r1, strict=True))


def test_shard_and_gather_single_process_and_rank_streams():
    assert shard_and_gather(list(range(5)), lambda part: [x * 10 for x in part]) == [0, 10, 20, 30,
                                                                                     40]
    assert shard_and_gather([1, 2], lambda p: [x for v in p for x in (v, v)],
                            per_item=False) == [1, 1, 2, 2]
    with pytest.raises(ShardError, match="1 results for 2 items"):
        shard_and_gather([1, 2], lambda p: [0])  # one result per item is checked
    assert (rank_stream(0), rank_stream(1)) == (0, 1)  # rank 0 keeps the single-process streams
