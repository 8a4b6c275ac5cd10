"""Running a test function on several ranks: fresh processes joined in a gloo group through a file store.

:func:`run_ranks` starts ``world`` processes (``spawn``), each of which joins
a gloo process group through a file store, calls ``fn(rank, world, *args)``
with one CPU thread, and saves what it returns. Every collective gives up
after ``timeout`` seconds, and the parent kills the ranks when they are not
done by then, so a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import datetime
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.multiprocessing as mp


def _entry(rank: int, fn: Callable, world: int, folder: str, timeout: float, args: tuple) -> None:
    import torch.distributed as dist

    import peers

    peers.repair_torchvision()
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout))
    try:
        result = fn(rank, world, *args)
        torch.save(result, os.path.join(folder, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ranks(fn: Callable, *args: Any, world: int = 2, timeout: float = 60) -> list[Any]:
    """``fn(rank, world, *args)`` on each of ``world`` ranks; each rank's return value, in rank order.

    ``fn`` must be importable (a module-level function of a test module).
    A rank's exception fails the caller with its traceback; ranks still
    running after ``timeout`` seconds are killed and the caller fails with
    "hung".
    """
    with tempfile.TemporaryDirectory() as folder:
        context = mp.start_processes(_entry, args=(fn, world, folder, timeout, args), nprocs=world,
                                     join=False, start_method="spawn")
        deadline = time.monotonic() + timeout + 30  # the ranks' own timeout fires first
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                raise AssertionError(f"the ranks hung: still running after {timeout + 30:.0f} s")
        return [torch.load(Path(folder) / f"rank{rank}.pt", weights_only=False) for rank in range(world)]
