"""Run an ablation's pending cells: in this process one after another, or J at a time in spawned
processes (each with cpu_count / J torch threads and its output in a log file)."""

from __future__ import annotations

import contextlib
import multiprocessing
import queue as queues
import time
import traceback
from pathlib import Path

from benchmark import config as configuration
from benchmark.ablate.cells import Cell
from benchmark.errors import UserError
from benchmark.processes import (
    install_worker_signals,
    stop,
    threads_per_worker,
    worker_environment,
)


def _run_one(cfg_dict: dict, results: str, resume_dir: str | None) -> str:
    from benchmark import runner

    cfg = configuration.from_dict(cfg_dict)
    return runner.run(cfg, Path(results), resume_dir=Path(resume_dir) if resume_dir else None).run_id


def _job(index: int, cfg_dict: dict, results: str, resume_dir: str | None, log: str, threads: int, done) -> None:
    """Entry point of one parallel cell: reports ``(index, run_id, problem)`` on ``done``."""
    install_worker_signals()
    import torch

    torch.set_num_threads(threads)
    with open(log, "a") as handle, contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
        try:
            done.put((index, _run_one(cfg_dict, results, resume_dir), None))
        except UserError as exc:
            done.put((index, None, f"error: {exc}"))
        except KeyboardInterrupt:
            done.put((index, None, "interrupted"))
        except Exception:
            traceback.print_exc()
            done.put((index, None, f"crashed; the traceback is in {log}"))


def run_cells(cells: list[Cell], resume_dirs: dict[int, Path], results: Path, jobs: int, logs: Path, on_done) -> None:
    """Run every cell without a run id; ``on_done(index, run_id, problem, seconds)`` after each."""
    pending = [i for i, cell in enumerate(cells) if cell.run_id is None]
    if jobs <= 1:
        for i in pending:
            started = time.perf_counter()
            resume = resume_dirs.get(i)
            run_id = _run_one(configuration.to_dict(cells[i].cfg), str(results), str(resume) if resume else None)
            on_done(i, run_id, None, time.perf_counter() - started)
        return
    spawn = multiprocessing.get_context("spawn")
    done = spawn.Queue()
    threads = threads_per_worker(jobs)
    logs.mkdir(parents=True, exist_ok=True)
    running: dict[int, tuple] = {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                i = pending.pop(0)
                resume = resume_dirs.get(i)
                log = logs / f"{cells[i].variant}-seed{cells[i].cfg.seed}.log"
                process = spawn.Process(target=_job, args=(i, configuration.to_dict(cells[i].cfg), str(results),
                                                           str(resume) if resume else None, str(log), threads, done))
                with worker_environment(threads):
                    process.start()
                running[i] = (process, time.perf_counter())
            try:
                i, run_id, problem = done.get(timeout=5)
            except queues.Empty:
                for i, (process, started) in list(running.items()):
                    if not process.is_alive():  # died without reporting (killed by the OS)
                        running.pop(i)
                        on_done(i, None, f"its process died (exit code {process.exitcode})", time.perf_counter() - started)
                continue
            process, started = running.pop(i)
            process.join()
            on_done(i, run_id, problem, time.perf_counter() - started)
    except KeyboardInterrupt:
        stop(process for process, _ in running.values())
        raise
