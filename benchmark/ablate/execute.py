"""Run an ablation's pending cells: in this process one after another, or J at a time in J spawned
worker processes (each with cpu_count / J torch threads and each cell's output in its own log file).
A worker runs cell after cell, so the imports, deterministic-mode set-up and the MLflow store are paid
once per worker, not once per cell; a worker that dies is replaced for the cells still pending."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue as queues
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from benchmark import config as configuration
from benchmark.ablate.cells import Cell
from benchmark.errors import UserError
from benchmark.processes import (
    install_worker_signals,
    reset_peak_rss,
    stop,
    threads_per_worker,
    worker_environment,
)

INTERRUPTED = "interrupted"


def _run_one(cfg_dict: dict, results: str, resume_dir: str | None) -> str:
    from benchmark import runner

    cfg = configuration.from_dict(cfg_dict)
    return runner.run(cfg, Path(results), resume_dir=Path(resume_dir) if resume_dir else None).run_id


def _cell(cfg_dict: dict, results: str, resume_dir: str | None, log: str) -> tuple[str | None, str | None]:
    """Run one cell with its output in ``log``: ``(run_id, None)``, or ``(None, problem)``."""
    with open(log, "a") as handle, contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
        print(f"(worker process {os.getpid()})", flush=True)
        reset_peak_rss()  # the run's peak RSS is its own, not that of the cells this worker ran before it
        try:
            return _run_one(cfg_dict, results, resume_dir), None
        except UserError as exc:
            return None, f"error: {exc}"
        except KeyboardInterrupt:
            return None, INTERRUPTED
        except Exception:
            traceback.print_exc()
            return None, f"crashed; the traceback is in {log}"


def _worker(tasks, done, threads: int) -> None:
    """A worker process: runs each ``(index, cfg_dict, results, resume_dir, log)`` it is sent and reports
    ``(index, run_id, problem)`` on ``done``, until it is sent None or interrupted."""
    install_worker_signals()
    import torch

    torch.set_num_threads(threads)
    try:
        for index, cfg_dict, results, resume_dir, log in iter(lambda: _next_task(tasks), None):
            run_id, problem = _cell(cfg_dict, results, resume_dir, log)
            done.put((index, run_id, problem))
            if problem == INTERRUPTED:
                return
    except KeyboardInterrupt:  # signalled while waiting for a cell
        return


def _next_task(tasks):
    """The next item on ``tasks``, waking each second: a signal that one of torch's threads takes (Linux hands
    a process's signal to any of its threads) runs its Python handler only once the main thread runs again."""
    while True:
        with contextlib.suppress(queues.Empty):
            return tasks.get(timeout=1)


@dataclass
class _Worker:
    process: multiprocessing.Process
    tasks: multiprocessing.Queue
    cell: int | None = None  # the index of the cell it runs now
    started: float = 0.0


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
    workers: list[_Worker] = []

    def assign(worker: _Worker) -> None:
        i = pending.pop(0)
        resume = resume_dirs.get(i)
        log = logs / f"{cells[i].variant}-seed{cells[i].cfg.seed}.log"
        worker.tasks.put((i, configuration.to_dict(cells[i].cfg), str(results), str(resume) if resume else None, str(log)))
        worker.cell, worker.started = i, time.perf_counter()

    try:
        while pending or any(w.cell is not None for w in workers):
            workers[:] = [w for w in workers if w.cell is not None or w.process.is_alive()]  # an idle one may have died
            for worker in workers:
                if worker.cell is None and pending:
                    assign(worker)
            while pending and len(workers) < jobs:
                tasks = spawn.Queue()
                worker = _Worker(spawn.Process(target=_worker, args=(tasks, done, threads)), tasks)
                workers.append(worker)  # before it starts: an interruption in between still stops it
                with worker_environment(threads):
                    worker.process.start()
                assign(worker)
            try:
                i, run_id, problem = done.get(timeout=5)
            except queues.Empty:
                for worker in [w for w in workers if not w.process.is_alive()]:  # died without reporting (killed by the OS)
                    workers.remove(worker)
                    if worker.cell is not None:
                        on_done(worker.cell, None, f"its process died (exit code {worker.process.exitcode})",
                                time.perf_counter() - worker.started)
                continue
            worker = next((w for w in workers if w.cell == i), None)
            if worker is None:  # its death was reported first
                continue
            worker.cell = None
            if problem == INTERRUPTED:  # it has stopped
                worker.process.join()
                workers.remove(worker)
            on_done(i, run_id, problem, time.perf_counter() - worker.started)
        for worker in workers:
            worker.tasks.put(None)
        for worker in workers:
            worker.process.join()
    except BaseException:  # Ctrl-C, or an error here: a worker waiting for its next cell would wait forever
        stop(w.process for w in workers if w.process.pid is not None)
        raise
