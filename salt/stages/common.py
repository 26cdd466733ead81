"""What the model stages share: the precision setting and the one runtime decision."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Literal

from salt import runtime

Precision = Literal["auto", "bf16", "fp16", "fp32"]


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def precision_kwargs(target: Any, rt: runtime.Runtime) -> tuple[dict[str, Any], runtime.Runtime]:
    """The keyword that hands ``rt`` to ``target`` (a function or config dataclass) in the form
    it takes: ``runtime=``, ``precision=`` or ``bf16=``; and the runtime it will really run in
    (a method that knows only bf16 runs fp16 as fp32, said aloud, so provenance stays true)."""
    if dataclasses.is_dataclass(target):
        names = {f.name for f in dataclasses.fields(target)}
    else:
        names = set(inspect.signature(target).parameters)
    if "runtime" in names:
        return {"runtime": rt}, rt
    if "precision" in names:
        return {"precision": rt.precision}, rt
    if "bf16" in names:
        if rt.precision == "fp16":
            print(f"{getattr(target, '__name__', target)}: no fp16 path; running fp32")
            rt = dataclasses.replace(rt, precision="fp32")
        return {"bf16": rt.precision == "bf16"}, rt
    return {}, dataclasses.replace(rt, precision="fp32")


def runtime_fields(cls: type) -> tuple[str, ...]:
    """The fields of a method config that carry the runtime decision (set by the stage)."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.name in ("bf16", "precision"))
