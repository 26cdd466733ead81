"""What the model stages share: the precision setting and the one runtime decision."""

from __future__ import annotations

from typing import Literal

Precision = Literal["auto", "bf16", "fp16", "fp32"]


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
