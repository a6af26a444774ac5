"""Resumable writing of large per-image arrays, for the import and extraction commands.

Rows land in preallocated ``.npy`` memory maps inside a hidden staging folder next to the output, so memory stays
flat whatever the input size. Every row remembers where it came from (``source``, -1 while empty), saved at each
checkpoint after the maps are flushed, so an interrupted job resumes with the rows it had. Publication prepares
every file inside the staging folder first, records the list of moves, then renames them (``os.replace``, each
split's main array last): a split is never half-written under a name that looks complete, an interrupted
publication is finished by the next run, and nothing that already exists is overwritten.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import numpy as np

from benchmark.data.loader import read_rows, release_pages
from benchmark.errors import UserError

_COPY_BYTES = 64 << 20  # per step when compacting a column
_RELEASE_BYTES = 64 << 20  # written rows are flushed and dropped from RSS after this many bytes (memory stays flat)


def refuse_existing(paths: list[Path], fix: str) -> None:
    """A one-line error when any output already exists: nothing is overwritten."""
    if existing := [path for path in paths if path.exists() or path.is_symlink()]:
        raise UserError(f"{existing[0]} already exists{f' (and {len(existing) - 1} more outputs)' if len(existing) > 1 else ''}; "
                        f"nothing was overwritten; {fix}")


def _atomic_save(path: Path, array: np.ndarray) -> None:
    temporary = path.with_name(path.name + ".tmp.npy")
    np.save(temporary, array)
    os.replace(temporary, path)


def _atomic_write_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


class Staging:
    """The staging folder of one job writing into ``folder``: its inputs (a staging folder made from other inputs
    is refused, not mixed in), the job's own progress record, and its tables. One job at a time holds it."""

    def __init__(self, folder: Path, job: str, inputs: dict, restart: bool = False):
        self.folder, self.job, self.inputs = folder, job, inputs
        self.dir = folder / f".{job}.staging"
        self._state_path = self.dir / "state.json"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.dir / "lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another {job} is writing into {self.folder} now; wait for it to end") from None
        state = json.loads(self._state_path.read_text(encoding="utf-8")) if self._state_path.is_file() and not restart else None
        if state is None:
            self._clear()  # --restart, or rows written before the first checkpoint: nothing says what they are
        elif state["inputs"] != inputs:
            changed = sorted(k for k in inputs.keys() | state["inputs"].keys() if inputs.get(k) != state["inputs"].get(k))
            raise UserError(f"{self.dir} holds an unfinished {job} from other inputs ({', '.join(changed)} differ); "
                            f"rerun with the same inputs to resume it, or pass --restart to discard it")
        self.progress: dict = state["progress"] if state else {}
        self.resumed = state is not None

    def table(self, name: str, n_rows: int, columns: dict[str, tuple[tuple[int, ...], str]]) -> StagedTable:
        return StagedTable(self.dir, name, n_rows, columns)

    def check_space(self, tables: list[StagedTable], copies: int = 1) -> None:
        """A one-line error when the disk cannot hold ``copies`` of the tables' arrays (2 when rows may be dropped,
        which rewrites them); what the staged files already hold counts as available."""
        needed = copies * sum(table.nbytes for table in tables)
        free = shutil.disk_usage(self.dir).free + sum(table.bytes_on_disk() for table in tables)
        if needed > free:
            raise UserError(f"{self.folder} needs {needed / 1e9:.1f} GB for the output but its disk has {free / 1e9:.1f} GB free; "
                            "free space or write elsewhere")

    def _write_state(self) -> None:
        _atomic_write_text(self._state_path, json.dumps({"inputs": self.inputs, "progress": self.progress}, indent=1))

    def save(self, tables: list[StagedTable]) -> None:
        """A checkpoint: the tables' rows are flushed before their sources, then the progress record is written."""
        for table in tables:
            table.save()
        self._write_state()

    @property
    def publishing(self) -> bool:
        """Whether an earlier run was interrupted while it published (``finish_publication`` completes it)."""
        return "publish" in self.progress

    def publish(self, moves: list[tuple[Path, Path]]) -> None:
        """Rename the prepared files to their final names, in order. The list is recorded first, so a run that
        is interrupted here is finished by the next one."""
        self.progress["publish"] = [[str(staged), str(final)] for staged, final in moves]
        self._write_state()
        self.finish_publication()

    def finish_publication(self) -> None:
        for staged, final in self.progress["publish"]:
            if Path(staged).exists():
                os.replace(staged, final)
        self.discard()

    def _clear(self) -> None:
        for entry in self.dir.iterdir():
            if entry.name != "lock":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self._lock.close()


class StagedTable:
    """One split's arrays (``columns``: file suffix -> per-row shape and dtype), each ``(n_rows, *shape)``."""

    def __init__(self, directory: Path, name: str, n_rows: int, columns: dict[str, tuple[tuple[int, ...], str]]):
        self.dir, self.name, self.n_rows = directory, name, n_rows
        self._shapes = {column: ((n_rows, *shape), np.dtype(dtype)) for column, (shape, dtype) in columns.items()}
        self._source_path = directory / f"{name}.source.npy"
        self.source = np.load(self._source_path) if self._source_path.is_file() else np.full(n_rows, -1, np.int64)
        self._maps: dict[str, np.memmap] = {}
        self._unflushed = 0

    @property
    def nbytes(self) -> int:
        return sum(int(np.prod(shape)) * dtype.itemsize for shape, dtype in self._shapes.values())

    def path(self, column: str) -> Path:
        return self.dir / f"{self.name}_{column}"

    def bytes_on_disk(self) -> int:
        """The disk blocks the staged arrays hold (they are sparse: their size says nothing)."""
        return sum(self.path(column).stat().st_blocks * 512 for column in self._shapes if self.path(column).is_file())

    def column(self, column: str) -> np.memmap:
        """The column's map, created (sparse, zero-filled) on first use or reopened when resuming."""
        if column not in self._maps:
            path, (shape, dtype) = self.path(column), self._shapes[column]
            if (self.source >= 0).any():
                if not path.is_file():
                    raise UserError(f"{path} is missing but its rows are recorded as written; the staging folder is "
                                    "damaged: pass --restart to start over")
                self._maps[column] = np.load(path, mmap_mode="r+")
            else:
                self._maps[column] = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        return self._maps[column]

    def write(self, row: int | np.ndarray, source: int, **values: np.ndarray) -> None:
        """Write one row, or the rows of an index array; ``source`` says where they came from (>= 0)."""
        for column, value in values.items():
            self.column(column)[row] = value
            self._unflushed += np.asarray(value).nbytes
        self.source[row] = source
        if self._unflushed > _RELEASE_BYTES:
            self._flush()

    def _flush(self) -> None:
        """Written pages go to the page cache and leave this process's RSS (dirty mapped pages count in it)."""
        for array in self._maps.values():
            array.flush()
            release_pages(array)
        self._unflushed = 0

    def save(self) -> None:
        self._flush()
        _atomic_save(self._source_path, self.source)

    @property
    def missing(self) -> np.ndarray:
        """The rows not written yet."""
        return np.flatnonzero(self.source < 0)

    def prepare(self, folder: Path, texts: dict[str, list[str]], keep: np.ndarray | None = None) -> list[tuple[Path, Path]]:
        """Make the split's final files inside the staging folder (``keep``, row indices, drops the other rows) and
        return their moves to ``folder/{name}_{suffix}``: the text files first, the first column last."""
        self.save()
        moves = []
        for suffix, lines in texts.items():
            staged = self.dir / f"{self.name}_{suffix}"
            _atomic_write_text(staged, "".join(f"{line}\n" for line in lines))
            moves.append((staged, folder / staged.name))
        for column in reversed(list(self._shapes)):
            self.column(column).flush()
            staged = self.path(column) if keep is None else self._compacted(column, keep)
            moves.append((staged, folder / self.path(column).name))
        self._maps.clear()
        return moves

    def _compacted(self, column: str, keep: np.ndarray) -> Path:
        """A copy of a column with only the ``keep`` rows, written in chunks (memory stays flat). The column itself
        stays as it is, so an interrupted run still resumes from it."""
        source = self.column(column)
        compacted = self.dir / f"{self.name}_kept_{column}"
        target = np.lib.format.open_memmap(compacted, mode="w+", dtype=source.dtype, shape=(len(keep), *source.shape[1:]))
        step = max(1, _COPY_BYTES // max(1, source[:1].nbytes))
        for start in range(0, len(keep), step):
            target[start:start + step] = read_rows(source, keep[start:start + step]).astype(source.dtype, copy=False)
            target.flush()
            release_pages(target)
        return compacted
