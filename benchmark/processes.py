"""Helpers for spawning worker processes (sweep workers, ablation jobs), stopping them cleanly, and measuring them."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import threading
import time
from collections.abc import Iterable, Iterator


def interrupt_once(signum, frame):
    """Signal handler: the first Ctrl-C or SIGTERM raises KeyboardInterrupt, so the current run's
    bookkeeping (MLflow status, trial state) completes; later signals cannot cut that short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def install_worker_signals() -> None:
    """Ctrl-C and SIGTERM end the current run cleanly (``interrupt_once``), and so does the death of
    the parent: a worker never runs on as an orphan."""
    signal.signal(signal.SIGINT, interrupt_once)
    signal.signal(signal.SIGTERM, interrupt_once)
    threading.Thread(target=_stop_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True).start()


def _stop_with_parent(parent: int, every_s: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(every_s)
    os.kill(os.getpid(), signal.SIGTERM)  # the parent is gone (its children were re-parented)


@contextlib.contextmanager
def worker_environment(threads: int) -> Iterator[None]:
    """While spawning: children read ``threads`` OpenMP threads and no progress bars (they share a terminal)."""
    saved = {key: os.environ.get(key) for key in ("OMP_NUM_THREADS", "TQDM_DISABLE")}
    os.environ.update(OMP_NUM_THREADS=str(threads), TQDM_DISABLE="1")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def stop(processes: Iterable, grace_s: float = 120) -> None:
    """Ask live workers to stop (SIGTERM, which they ignore if Ctrl-C already reached them), then wait."""
    processes = list(processes)
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    for process in processes:
        process.join(timeout=grace_s)
        if process.is_alive():
            process.kill()
            process.join()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then act on the first one as its handler would have. A
    database write that a signal cuts short can leave its transaction's lock behind (the traceback keeps the
    connection alive), so the run's final status could not be written ("database is locked"). The handlers are
    swapped rather than the signals masked: a mask holds for one thread only, and torch's threads would take the
    signal instead. A second signal is acted on at once. A no-op outside the main thread, where handlers cannot
    be set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    signals = (signal.SIGINT, signal.SIGTERM)

    def hold(signum, frame) -> None:
        if received:  # a second signal: the user insists (or the write hangs); act on it now
            _deliver(previous[signum], signum)
        received.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            _deliver(previous[received[0]], received[0])


def _deliver(handler, signum: int) -> None:
    """Act on a signal as ``handler`` (a previous disposition) would have."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def reset_peak_rss() -> None:
    """Start this process's ``VmHWM`` (``peak_rss_mb``) afresh from its current RSS; a no-op where Linux's
    ``/proc/self/clear_refs`` is missing. The peak the parent reads when this process ends follows it."""
    with contextlib.suppress(OSError):
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB. Linux's ``ru_maxrss`` carries the parent's peak over fork and
    exec, so a small command started by a large process would report the parent's figure; ``VmHWM`` belongs to
    this process's own memory."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
