"""Sharding per-item work across processes (``accelerate launch`` / torchrun) and gathering it.

One process: ``fn(items)``. Several: each process runs ``fn`` on its contiguous share of the
items (accelerate's ``split_between_processes``, each on its own device) and every process gets
the concatenated results back in the original order (``gather_object``). Used by evaluation and
usable by any stage whose work is a list of independent items (code-switching).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from accelerate import PartialState
from accelerate.utils import gather_object

T = TypeVar("T")


class ShardError(RuntimeError):
    """A shard's result does not have one entry per item of the shard."""


def process_state() -> PartialState:
    """Accelerate's process state, set up on first use so that CPU-only processes started by
    torchrun join over gloo (``PartialState()`` alone stays single-process on a CPU)."""
    return PartialState(cpu=not torch.cuda.is_available())


def shard_and_gather(items: Sequence[T], fn: Callable[[Sequence[T]], Sequence[Any]],
                     per_item: bool = True) -> list[Any]:
    """``fn`` over ``items`` split across processes; results in input order on every process.

    ``per_item`` (default): ``fn`` returns one result per item of its share (checked).
    ``per_item=False``: ``fn`` returns any list per share (e.g. several records per item); the
    shares' lists are concatenated in process order, which is the items' order because every
    process gets a contiguous share. Every process must call this with the same ``items`` (it
    is a collective operation).
    """
    state = process_state()
    if state.num_processes == 1:
        out = list(fn(items))
        if per_item and len(out) != len(items):
            raise ShardError(f"{len(out)} results for {len(items)} items")
        return out
    index = list(range(len(items)))
    with state.split_between_processes(index) as mine:
        local = list(fn([items[i] for i in mine])) if mine else []
        if per_item and len(local) != len(mine):
            raise ShardError(f"process {state.process_index}: {len(local)} results for "
                             f"{len(mine)} items")
    shares = gather_object([(state.process_index, local)])
    out = [x for _, share in sorted(shares, key=lambda s: s[0]) for x in share]
    if per_item and len(out) != len(items):
        raise ShardError(f"gathered {len(out)} results for {len(items)} items")
    return out


def rank_stream(stream: int) -> int:
    """The generator stream of this process for a logical stream (0: copy choice, 1: r).

    Rank 0 keeps the single-process streams (0, 1), so one process reproduces earlier runs;
    rank k uses (2k, 2k+1): every process draws its own copies and r.
    """
    return 2 * process_state().process_index + stream
