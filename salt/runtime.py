"""The one runtime decision: which device a stage's model runs on and in which precision.

Every stage that runs a model (mlm, codeswitch, train, evaluate) asks :func:`decide` once and
runs there; provenance then records what the model actually ran in (:func:`observed`), read back
from the model and the autocast state, never inferred from what the machine could do.

Device: accelerate's ``PartialState`` (one process: cuda:0 / mps / cpu; under ``accelerate
launch`` each process gets its own device). Precision for ``"auto"``: bf16 where the device
supports it, fp16 with loss scaling on a GPU without bf16, fp32 otherwise.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


class PrecisionError(RuntimeError):
    """A precision the device cannot run (e.g. fp16 asked for on a CPU)."""


def _cpu_has_bf16() -> bool:
    """Native bf16 matmul on this CPU (AVX-512 BF16 or AMX); emulated bf16 is slower than fp32."""
    cap = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()
    if cap in ("AVX512_BF16", "AMX"):
        return True
    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("flags")), "")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return _cpu_has_bf16()
    return False


@dataclass(frozen=True)
class Runtime:
    """Where and how a stage runs. ``precision`` is the autocast dtype (fp32: no autocast)."""

    device: torch.device
    precision: str  # bf16 | fp16 | fp32
    process_index: int = 0
    num_processes: int = 1

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    @property
    def mixed_precision(self) -> str:
        """The value accelerate / transformers.TrainingArguments expect ("no", "bf16", "fp16")."""
        return {"fp32": "no"}.get(self.precision, self.precision)

    def autocast(self):
        """Autocast on this runtime's device (a no-op context for fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def place(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move ``model`` onto this runtime's device (weights stay fp32; autocast lowers matmuls)."""
        return model.to(self.device)


def decide(precision: str = "auto", device: str | torch.device | None = None) -> Runtime:
    """The runtime for this process: accelerate's device unless ``device`` is given."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision {precision!r} is not one of {PRECISIONS}")
    from accelerate import PartialState

    # cpu=True off GPUs: CPU processes started by torchrun / accelerate launch then join over gloo
    # (a plain PartialState() stays single-process on a CPU)
    state = PartialState(cpu=not torch.cuda.is_available())
    dev = torch.device(device) if device is not None else state.device
    if precision == "auto":
        if bf16_supported(dev):
            precision = "bf16"
        elif dev.type == "cuda":
            precision = "fp16"
        else:
            precision = "fp32"
    elif precision == "bf16" and not bf16_supported(dev):
        raise PrecisionError(f"precision 'bf16' asked for, but {dev} has no native bf16")
    elif precision == "fp16" and dev.type != "cuda":
        raise PrecisionError(f"precision 'fp16' (with loss scaling) needs a GPU; this is {dev}")
    return Runtime(dev, precision, state.process_index, state.num_processes)


def observed(model: torch.nn.Module, runtime: Runtime) -> dict[str, str]:
    """What the model ran in, read back from it: its parameters' device and dtype, and the
    autocast dtype the stage applied. Provenance records this, not the machine's abilities."""
    p = next(model.parameters())
    out = {"device": str(p.device), "weights_dtype": str(p.dtype).removeprefix("torch."),
           "autocast": runtime.precision}
    if p.device.type == "cuda":
        out["device_name"] = torch.cuda.get_device_name(p.device)
    return out
