"""``salt plan``: what a profile will cost before it runs.

For each stage: rows, tokens, forward and backward FLOPs (from the model config), expected wall
time on this machine (from the throughput ``reports/bench.json`` measured here, read at run time)
and on a GPU class (its stated peak bf16 TFLOP/s times an assumed utilisation, both printed), and
disk. FLOPs of one sequence of T tokens through a BERT-style encoder of ``layers`` layers, hidden
H, feed-forward width F: ``2 * layers * (4 H^2 + 2 H F) * T`` (every weight one multiply-add per
token) plus attention's two T x T products ``4 * layers * H * T^2``; backward = 2 x forward.
Embedding lookups count zero. Tokens per pair and code-switch candidates per pair come from the
benchmark's measured means unless given (``--tokens-per-pair``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salt.config import ConfigError, load_params
from salt.data import DataError, data_dir, hub_mirror, split_path
from salt.tasks import get_task

# Vendor-stated dense bf16 tensor peaks (TFLOP/s, no sparsity); printed with every estimate.
GPU_PEAK_BF16_TFLOPS = {"h100": 989.0, "h200": 989.0, "a100": 312.0, "a10": 125.0, "l4": 121.0}
DEFAULT_UTILISATION = 0.35


class PlanError(ValueError):
    """Missing input for the plan (model config, row count, benchmark); names what to pass."""


@dataclass(frozen=True)
class Arch:
    """What the FLOP count needs from a model config."""

    layers: int
    hidden: int
    ffn: int
    vocab: int

    @property
    def encoder_params(self) -> int:
        """Weights of the encoder layers (Q, K, V, output: 4 H^2; feed-forward: 2 H F)."""
        return self.layers * (4 * self.hidden ** 2 + 2 * self.hidden * self.ffn)

    @property
    def params(self) -> int:
        """Encoder layers plus the word-embedding matrix (what a saved model mostly holds)."""
        return self.encoder_params + self.vocab * self.hidden


def forward_flops(arch: Arch, tokens_per_seq: float, sequences: float) -> float:
    """Forward FLOPs of ``sequences`` sequences of ``tokens_per_seq`` tokens."""
    t = tokens_per_seq
    per_seq = 2 * arch.encoder_params * t + 4 * arch.layers * arch.hidden * t * t
    return per_seq * sequences


@dataclass(frozen=True)
class Throughput:
    """Useful FLOP/s achieved on this machine (from reports/bench.json) and the GPU assumption."""

    train_flops_s: float
    forward_flops_s: float
    train_tokens_per_pair: float
    test_tokens_per_pair: float
    candidates_per_pair: float
    gpu: str
    gpu_peak_tflops: float
    utilisation: float

    @property
    def gpu_flops_s(self) -> float:
        return self.gpu_peak_tflops * 1e12 * self.utilisation


def read_bench(path: Path) -> dict[str, dict[str, Any]]:
    """Figures of the benchmark report by name."""
    if not path.is_file():
        raise PlanError(f"{path}: missing; run `nox -s bench` on this machine first")
    figures = json.loads(path.read_text(encoding="utf-8")).get("figures", [])
    return {f["name"]: f for f in figures}


def throughput(bench: dict[str, dict[str, Any]], gpu: str, utilisation: float,
               gpu_tflops: float | None = None, bench_path: str = "reports/bench.json",
               tokens_per_pair: float | None = None) -> Throughput:
    """Measured rates of this machine and the stated GPU figures (see module docstring)."""
    def figure(name: str) -> dict[str, Any]:
        if name not in bench:
            raise PlanError(f"{bench_path}: no figure {name!r}; rerun `nox -s bench`")
        return bench[name]

    def gflops(name: str) -> float:
        fig = figure(name)
        if fig.get("unit") != "GFLOP/s":
            raise PlanError(f"{bench_path}: {name} is in {fig.get('unit')!r}, expected GFLOP/s")
        return float(fig["value"]) * 1e9

    cs = figure("codeswitch_fast").get("details", {})
    if not cs.get("sentences"):
        raise PlanError(f"{bench_path}: codeswitch_fast has no sentence count")
    if gpu_tflops is None:
        if gpu not in GPU_PEAK_BF16_TFLOPS:
            raise PlanError(f"--gpu {gpu!r}: unknown; known {sorted(GPU_PEAK_BF16_TFLOPS)} "
                            "or give --gpu-tflops")
        gpu_tflops = GPU_PEAK_BF16_TFLOPS[gpu]
    return Throughput(
        train_flops_s=gflops("utilisation_train_vs_fp32_matmul"),
        forward_flops_s=gflops("utilisation_eval_vs_fp32_matmul"),
        train_tokens_per_pair=tokens_per_pair or float(figure("train_ours")["details"]["mean_tokens"]),
        test_tokens_per_pair=tokens_per_pair or float(figure("eval_ours")["details"]["mean_tokens"]),
        candidates_per_pair=cs["candidate_positions"] / cs["sentences"],
        gpu=gpu, gpu_peak_tflops=float(gpu_tflops), utilisation=utilisation)


@dataclass(frozen=True)
class StagePlan:
    stage: str
    runs: int
    rows: int
    tokens: float
    forward: float
    backward: float
    disk_bytes: float

    def seconds(self, train_rate: float, forward_rate: float) -> float:
        """Wall time: backward work at the training rate, forward-only work at the forward rate."""
        if self.backward:
            return (self.forward + self.backward) / train_rate
        return self.forward / forward_rate


def model_arch(spec: str, params_model: dict, config_file: Path | None) -> Arch:
    """The architecture: ``--model-config`` file, else what the model source states."""
    if config_file is not None:
        cfg = json.loads(Path(config_file).read_text(encoding="utf-8"))
    elif spec == "tiny":
        tiny = params_model.get("tiny") or {}
        hidden = int(tiny["hidden"])
        return Arch(int(tiny["layers"]), hidden, 4 * hidden, int(tiny["vocab_size"]))  # build_tiny
    elif spec == "e5-small":
        from salt.e5 import bert_config, parse_e5_bin

        cfg = bert_config(parse_e5_bin()).to_dict()
    elif spec.startswith("hf:"):
        name = spec[3:]
        local = Path(name) / "config.json"
        if local.is_file():
            cfg = json.loads(local.read_text(encoding="utf-8"))
        else:
            try:
                from transformers import AutoConfig

                cfg = AutoConfig.from_pretrained(name).to_dict()
            except (OSError, ValueError) as err:
                raise PlanError(f"model {spec}: config not available offline ({err}); pass "
                                "--model-config config.json (e.g. "
                                "$SALT_DATA_DIR/vocab/mbert-cased/bert_config.json)") from None
    else:
        raise PlanError(f"model source {spec!r}: unknown; pass --model-config")
    try:
        return Arch(int(cfg["num_hidden_layers"]), int(cfg["hidden_size"]),
                    int(cfg["intermediate_size"]), int(cfg["vocab_size"]))
    except KeyError as err:
        raise PlanError(f"model config: missing key {err}") from None


def count_rows(task: str, split: str, lang: str, cfg: dict, overrides: dict[str, int]) -> int:
    """Rows of one split: ``--rows`` override, the local file's lines, or the hub mirror's
    parquet metadata; a PlanError naming ``--rows`` otherwise."""
    key = f"{task}.{split}-{lang}"
    for name in (key, f"{task}.{split}"):
        if name in overrides:
            return overrides[name]
    if cfg.get("source", "local") == "local":
        path = split_path(data_dir(cfg.get("dir")), task, split, lang)
        if not path.is_file():
            raise PlanError(f"{path}: missing; cannot count rows for {key}")
        with path.open("rb") as f:
            return sum(1 for line in f if line.strip())
    mirror = hub_mirror()
    spec = get_task(task)
    pins = cfg.get("hub_revision") or {}
    sha = pins.get(spec.hub_id) if isinstance(pins, dict) else pins
    hub_split = {"train": "train", "dev": "validation", "test": "test"}[split]
    if mirror is not None and sha:
        import pyarrow.parquet as pq

        files = sorted((mirror / spec.hub_id / sha / lang).glob(f"{hub_split}-*.parquet"))
        if files:
            return sum(pq.ParquetFile(str(p)).metadata.num_rows for p in files)
    raise PlanError(f"rows of {key} (hub {spec.hub_id}) unknown offline: pass --rows {key}=N "
                    f"(or --rows {task}.{split}=N for every language) or set SALT_HUB_MIRROR")


def _size(value: Any, available: int) -> int:
    return available if value is None else min(int(value), available)


def _probe_default() -> int:
    """The fill-mask probe's sentence count per language when the profile does not set one."""
    import inspect

    from salt.mlm_head import fill_mask_accuracy

    return int(inspect.signature(fill_mask_accuracy).parameters["eval_sentences"].default)


def plan_profile(params, arch: Arch, rate: Throughput,
                 rows: dict[str, int] | None = None) -> list[StagePlan]:
    """Every stage's work for ``params`` (a resolved profile); ``rows`` overrides counts."""
    rows = rows or {}
    data = params.entry("data")
    train_cfg = params.entry("train")
    cs_cfg = params.entry("codeswitch")
    mlm_cfg = params.entry("mlm")
    seeds = len(params.seeds)
    t_train, t_test = rate.train_tokens_per_pair, rate.test_tokens_per_pair
    weights = 4 * arch.params  # fp32 safetensors
    plans: list[StagePlan] = []
    mlm_rows = 0
    for task in params.tasks:
        spec = get_task(task)
        langs = (data.get("languages") or {}).get(task) or list(spec.languages)
        n_train = _size(data.get("train"), count_rows(task, "train", "en", data, rows))
        n_dev = _size(data.get("dev"), count_rows(task, "dev", "en", data, rows))
        n_test = sum(_size(data.get("test"), count_rows(task, "test", lang, data, rows))
                     for lang in langs)
        if mlm_cfg.get("train"):  # the trained head reads every language's unlabeled dev text
            unl = data.get("unlabeled")
            mlm_rows += sum(_size(unl, count_rows(task, "dev", lang, data, rows))
                            for lang in langs)
        copies = int(cs_cfg.get("copies", 1))
        masked = cs_cfg.get("input", "masked") == "masked"
        seqs = n_train * copies * (rate.candidates_per_pair if masked else 1)
        plans.append(StagePlan(f"codeswitch {task}", 1, n_train, seqs * t_train,
                               forward_flops(arch, t_train, seqs), 0.0,
                               n_train * copies * t_train * 2 * 8))  # ids + alignment, ~8 B each
        epochs = float(train_cfg.get("epochs", 1))
        steps = n_train * epochs / int(train_cfg.get("batch_size", 1))
        dev_passes = (steps // int(train_cfg["checkpoint_every"])
                      if train_cfg.get("selection") == "best_en_dev" else 0)
        for system in ("baseline", "salt"):
            fwd = forward_flops(arch, t_train, n_train * epochs)
            dev_fwd = forward_flops(arch, t_train, n_dev * dev_passes)
            plans.append(StagePlan(f"train {task} {system}", seeds, n_train * seeds,
                                   n_train * epochs * t_train * seeds,
                                   (fwd + dev_fwd) * seeds, 2 * fwd * seeds,
                                   4 * weights * seeds))  # weights + AdamW's two moments + final
            plans.append(StagePlan(f"evaluate {task} {system}", seeds, n_test * seeds,
                                   n_test * t_test * seeds,
                                   forward_flops(arch, t_test, n_test) * seeds, 0.0, 0.0))
    if mlm_cfg.get("train"):
        mlm = StagePlan("mlm", 1, mlm_rows, 2 * mlm_rows * t_train,
                        forward_flops(arch, t_train, 2 * mlm_rows), 0.0, weights)
    else:
        langs = {lang for t in params.tasks
                 for lang in (data.get("languages") or {}).get(t) or get_task(t).languages}
        n = int(mlm_cfg.get("eval_sentences", _probe_default())) * len(langs)
        mlm = StagePlan("mlm (fill-mask probe)", 1, n, n * t_train,
                        forward_flops(arch, t_train, n), 0.0, 0.0)
    return [StagePlan("model", 1, 0, 0.0, 0.0, 0.0, weights), mlm, *plans]


def _fmt_time(seconds: float) -> str:
    if 0 < seconds < 1:
        return "<1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def render(plans: list[StagePlan], rate: Throughput, profile: str, arch: Arch) -> str:
    from tabulate import tabulate

    rows = []
    here_total = gpu_total = disk = 0.0
    for p in plans:
        here = p.seconds(rate.train_flops_s, rate.forward_flops_s)
        gpu = (p.forward + p.backward) / rate.gpu_flops_s
        here_total, gpu_total, disk = here_total + here, gpu_total + gpu, disk + p.disk_bytes
        rows.append([p.stage, p.runs, f"{p.rows:,}", f"{p.tokens:.3g}", f"{p.forward:.3g}",
                     f"{p.backward:.3g}", _fmt_time(here), _fmt_time(gpu),
                     f"{p.disk_bytes / 1e9:.2f} GB"])
    rows.append(["total", "", "", "", "", "", _fmt_time(here_total), _fmt_time(gpu_total),
                 f"{disk / 1e9:.2f} GB"])
    head = [
        f"plan for profile {profile}: model {arch.layers} layers, hidden {arch.hidden}, "
        f"ffn {arch.ffn}, vocab {arch.vocab} ({arch.params / 1e6:.1f} M weights)",
        f"this machine (reports/bench.json): training {rate.train_flops_s / 1e9:.1f} GFLOP/s, "
        f"forward {rate.forward_flops_s / 1e9:.1f} GFLOP/s useful; tokens per pair: train "
        f"{rate.train_tokens_per_pair:.1f}, test {rate.test_tokens_per_pair:.1f}; code-switch "
        f"candidates per pair {rate.candidates_per_pair:.1f}",
        f"GPU {rate.gpu}: stated peak {rate.gpu_peak_tflops:g} TFLOP/s bf16 x assumed "
        f"utilisation {rate.utilisation:.0%} = {rate.gpu_flops_s / 1e12:.0f} TFLOP/s",
        "disk is an upper bound: fp32 weights of the base model, the MLM head and every run's "
        "final model plus a resumable checkpoint (weights and two AdamW moments); the MLM "
        "decoder's vocabulary projection is not counted",
    ]
    table = tabulate(rows, headers=["stage", "runs", "rows", "tokens", "forward FLOPs",
                                    "backward FLOPs", "this machine", f"GPU {rate.gpu}", "disk"])
    return "\n".join([*head, "", table])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``salt plan`` (the CLI adds --params/--profile itself when it wires this)."""
    if not any("--params" in a.option_strings for a in parser._actions):
        parser.add_argument("--params", type=Path, default=Path("params.yaml"))
        parser.add_argument("--profile", default=None)
    parser.add_argument("--gpu", default="a100", help=f"GPU class: {sorted(GPU_PEAK_BF16_TFLOPS)}")
    parser.add_argument("--gpu-tflops", type=float, default=None,
                        help="peak bf16 TFLOP/s of another GPU (overrides --gpu's stated figure)")
    parser.add_argument("--utilisation", type=float, default=DEFAULT_UTILISATION,
                        help="assumed share of the GPU peak reached (default %(default)s)")
    parser.add_argument("--bench", type=Path, default=Path("reports/bench.json"))
    parser.add_argument("--model-config", type=Path, default=None,
                        help="config.json of the model (else read from the model source)")
    parser.add_argument("--tokens-per-pair", type=float, default=None,
                        help="mean tokens per pair (default: the benchmark's measured means)")
    parser.add_argument("--seeds", default=None, metavar="0,1,2,3,4",
                        help="seeds to plan for (default: params.yaml's)")
    parser.add_argument("--rows", action="append", default=[], metavar="TASK.SPLIT[-LANG]=N",
                        help="row count of a split the plan cannot read (xnli.train-en=N; "
                             "xnli.test=N for every language)")


def _parse_rows(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not value.isdigit():
            raise PlanError(f"--rows {item!r}: expected TASK.SPLIT[-LANG]=N")
        out[key] = int(value)
    return out


def _load(path: Path, profile: str | None, seeds: str | None):
    """params.yaml resolved for ``profile``, with ``seeds`` replacing the top-level list."""
    if seeds is None:
        return load_params(path, profile)
    import tempfile

    import yaml

    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    try:
        raw["seeds"] = [int(s) for s in seeds.split(",")]
    except ValueError:
        raise PlanError(f"--seeds {seeds!r}: expected comma-separated integers") from None
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "params.yaml"
        copy.write_text(yaml.safe_dump(raw), encoding="utf-8")
        return load_params(copy, profile)


def run(args: argparse.Namespace) -> int:
    """Print the plan; 2 with a message on missing input."""
    try:
        params = _load(args.params, args.profile, args.seeds)
        rate = throughput(read_bench(args.bench), args.gpu, args.utilisation, args.gpu_tflops,
                          str(args.bench), args.tokens_per_pair)
        model = params.entry("model")
        arch = model_arch(model["source"], model, args.model_config)
        plans = plan_profile(params, arch, rate, _parse_rows(args.rows))
    except (PlanError, DataError, ConfigError) as err:
        print(f"salt plan: error: {err}", file=sys.stderr)
        return 2
    print(render(plans, rate, params.profile, arch))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="salt plan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
