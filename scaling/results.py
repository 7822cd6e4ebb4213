"""The results store: a folder per sweep (``STORE/SWEEP_ID/``) holding its records, one JSON
line per run in ``records.jsonl``, the arrays and traces its runs saved, and its report.

Nothing already written is ever rewritten. Arrays are written to a temporary file and renamed
into place (atomic on POSIX), and only then is the record appended to a file opened with
``O_APPEND``; a write that fails part-way (a full disk) is cut back off, so the file holds
whole records only, and fails with one line (:class:`~scaling.errors.StoreError`). Temporary
files left by a process that was killed are removed by the next write to the store. A reader
skips a last line cut short by a crash; a corrupt line, a file from another schema and a
missing array are reported by name, and everything else still loads.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from scaling.errors import StoreError

if TYPE_CHECKING:
    import numpy as np

SCHEMA = 3
"""Version of the record layout. 2: records carry ``sweep_id``, ``mode`` and ``status``.
3: ``throughput`` is ``{value, unit}``, and records name their ``headline`` quality and the
``sources`` of their split and bytes (measured or modelled). Schema 2 records are upgraded as
they are read (:func:`upgrade`)."""

READABLE = (2, 3)

DEFAULT_STORE = "results"
FILE_MODE = 0o644
"""Mode of every file the store writes: what ``open`` gives under the usual umask."""


def new_sweep_id() -> str:
    """A sortable, unique sweep id: UTC time and a random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new, never half.

    Raises
    ------
    StoreError
        When it cannot be written (the old file, if any, is as it was).
    """
    path = Path(path)
    try:
        # the writer's pid in the name: a temporary file of a dead process is an orphan
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TMP
        )
    except OSError as e:
        raise _store_error(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE & ~_umask())  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, StoreError):
            raise _store_error(path, e) from None
        raise


TMP = ".tmp"


def _store_error(path: Path, e: OSError) -> StoreError:
    import errno

    fix = {
        errno.ENOSPC: "free some space on that disk, or give --out another",
        errno.EDQUOT: "free some of your disk quota, or give --out another disk",
        errno.EROFS: "give --out a directory on a disk you can write to",
        errno.EACCES: "give --out a directory you can write to",
    }.get(e.errno, "check the disk and the directory")
    return StoreError(
        f"cannot write {path} ({e.strerror or e}); {fix}. Results written before are intact"
    )


def remove_orphans(store: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that writers killed mid-write left in ``store`` (a process
    that is still running keeps its own); the ones removed."""
    removed = []
    for tmp in [*Path(store).glob(f".*{TMP}"), *Path(store).glob(f"*/.*{TMP}")]:
        try:
            pid = int(tmp.name.removesuffix(TMP).split(".")[-2])
        except (ValueError, IndexError):
            continue  # not ours
        if not _alive(pid):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_array(directory: Path, name: str, array: np.ndarray) -> str:
    """Atomically write ``array`` to ``directory/name`` (``.npy`` format); return the name."""
    import numpy as np  # here: reading the store's constants should not load NumPy

    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write(directory / name, buffer.getvalue())
    return name


def append_record(
    directory: str | os.PathLike,
    record: dict,
    arrays: dict[str, np.ndarray] | None = None,
    files: dict[str, bytes] | None = None,
) -> dict:
    """Write ``arrays`` (``.npy``) and ``files`` (JSON) into the sweep's folder, then append
    ``record`` with their file names (relative to that folder).

    The record goes to ``directory/<record["sweep_id"]>/records.jsonl``. Returns it as written.

    Raises
    ------
    StoreError
        When something cannot be written: then nothing of this record is left (its files are
        removed, a part-written line cut off), and the records before it are intact.
    """
    remove_orphans(directory)
    directory = sweep_folder(directory, record["sweep_id"])
    saved: dict[str, str] = {}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for key, value in (arrays or {}).items():
            saved[key] = save_array(directory, f"{record['run_id']}-{key}.npy", value)
        for key, data in (files or {}).items():
            saved[key] = f"{record['run_id']}-{key}.json"
            atomic_write(directory / saved[key], data)
        record = {**record, "artifacts": saved}
        line = (json.dumps(record, sort_keys=True, default=_jsonable) + "\n").encode()
        _append(directory / RECORDS, line)
    except BaseException as e:
        for name in saved.values():
            (directory / name).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, StoreError):
            raise _store_error(directory, e) from None
        raise
    return record


def _append(path: Path, line: bytes) -> None:
    """Append ``line`` whole (a short write goes on where it stopped) or not at all."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as e:
            os.ftruncate(fd, size)  # no half record: the file as it was
            raise _store_error(path, e) from None
    finally:
        os.close(fd)


RECORDS = "records.jsonl"


def sweep_folder(store: str | os.PathLike, sweep_id: str) -> Path:
    """Where a sweep's records, arrays, traces and report live."""
    return Path(store) / sweep_id


def sweep_file(store: str | os.PathLike, sweep_id: str) -> Path:
    return sweep_folder(store, sweep_id) / RECORDS


def artifact(store: str | os.PathLike, record: dict, key: str) -> Path | None:
    """The file a run saved as ``key`` (its ``artifacts``), in its sweep's folder (or, for a
    store from before folders, beside the sweep's file); ``None`` if it saved none."""
    name = record.get("artifacts", {}).get(key)
    if name is None:
        return None
    path = sweep_folder(store, record["sweep_id"]) / name
    return path if path.exists() else Path(store) / name


@dataclass
class Loaded:
    """Records read from a store, and what could not be read (one message per file)."""

    records: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_file(path: Path) -> Loaded:
    """The records of one sweep file, and a problem for each line that is not one (a line
    that is not JSON, a record of another schema, a record whose saved file is missing):
    a bad line costs that line, not the file. A last line cut short by a crash while it was
    appended is left out silently.

    Raises
    ------
    OSError, UnicodeDecodeError
        When the file cannot be read at all.
    """
    lines = path.read_text().splitlines()
    out = Loaded()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number != len(lines):  # a run cut short while appending: the rest is intact
                out.problems.append(
                    f"{path}:{number} is not a JSON record; skipped (the file's other lines "
                    "are read)"
                )
            continue
        if not isinstance(record, dict) or record.get("schema") not in READABLE:
            found = record.get("schema") if isinstance(record, dict) else None
            out.problems.append(
                f"{path}:{number} has record schema {found}, this version reads "
                f"schema {' and '.join(map(str, READABLE))}; skipped (re-run its sweep to "
                "record it again)"
            )
            continue
        missing = [
            n for n in record.get("artifacts", {}).values() if not (path.parent / n).exists()
        ]
        if missing:
            out.problems.append(
                f"{path}:{number}: run {record.get('run_id')} saved {', '.join(missing)}, "
                "which is missing; its record is read, without it"
            )
        out.records.append(upgrade(record))
    return out


# What schema 2 did not record, as it was then: the jobs' throughput units and headlines, and
# where gang jobs' numbers came from (their bytes were the algorithm's formula; boosted trees
# counted each whole round as compute).
_V2_UNITS = {"sgd": "samples", "gbdt": "training rows"}
_V2_HEADLINES = {
    "kmeans": "inertia",
    "logreg": "objective",
    "sgd": "heldout_accuracy",
    "gbdt": "heldout_auc",
}
_V2_ENGINE = {
    "split": "measured: compute inside the tasks, overhead by empty calls, the rest moving data",
    "bytes": "measured: the payloads shipped (array buffers, other values pickled)",
}
_V2_FORMULA = "modelled: the algorithm's volume per iteration (schema 2)"


def upgrade(record: dict) -> dict:
    """A record of an older schema in today's layout (a schema 3 record as it is)."""
    if record.get("schema") == SCHEMA:
        return record
    out = {**record, "schema": SCHEMA}
    job = record.get("job")
    if "throughput" in record:
        unit = _V2_UNITS.get(job, "rows")
        out["throughput"] = {"value": record["throughput"].get("rows_per_s"), "unit": f"{unit}/s"}
    if record.get("status") == "ok" and record.get("engine") != "baseline":
        out["headline"] = _V2_HEADLINES.get(job, next(iter(record.get("quality") or {}), ""))
        gang = job == "gbdt" or (
            job == "sgd" and record["config"].get("strategy") != "driver-allreduce"
        )
        split = _V2_ENGINE["split"]
        if job == "gbdt":
            split = "modelled: each whole round counted as compute (schema 2)"
        elif gang:
            split = "measured: compute and waits on the collectives, inside each worker"
        out["sources"] = {"split": split, "bytes": _V2_FORMULA if gang else _V2_ENGINE["bytes"]}
    return out


def load(*paths: str | os.PathLike) -> Loaded:
    """Every record under ``paths`` (stores, sweep folders or files, or sweep ids in the store).

    A file that cannot be read is reported in ``problems`` and skipped; the others still load.
    """
    out = Loaded()
    for path in paths or (DEFAULT_STORE,):
        files = _files(path)
        if not files:
            out.problems.append(
                f"{path}: no sweep found (a results directory, a .jsonl file "
                "or a sweep id listed by `scaling results`)"
            )
        for f in files:
            try:
                read = read_file(f)
            except (OSError, UnicodeDecodeError) as e:
                out.problems.append(f"{f}: cannot be read ({e}); skipped")
                continue
            out.records.extend(read.records)
            out.problems.extend(read.problems)
    return out


def _files(path: str | os.PathLike) -> list[Path]:
    """The record files of a store, a sweep's folder, a file, or a sweep id in the store (and
    the flat ``STORE/SWEEP_ID.jsonl`` files stores had before folders)."""
    p = Path(path)
    if (p / RECORDS).is_file():
        return [p / RECORDS]
    if p.is_dir():
        return sorted([*p.glob(f"*/{RECORDS}"), *p.glob("*.jsonl")])
    if p.is_file():
        return [p]
    by_id = sweep_file(DEFAULT_STORE, str(path))
    return [by_id] if by_id.is_file() else []


def sweeps(records: list[dict]) -> list[dict]:
    """One summary per sweep: id, start, jobs, engines, worker counts, sizes, runs ok/failed."""
    by_sweep: dict[str, list[dict]] = {}
    for r in records:
        by_sweep.setdefault(r["sweep_id"], []).append(r)
    out = []
    for sweep_id, runs in sorted(by_sweep.items()):
        measured = [r for r in runs if r["engine"] != "baseline"]
        out.append(
            {
                "sweep_id": sweep_id,
                "started_at": min(r["started_at"] for r in runs),
                "mode": runs[0].get("mode", "strong"),
                "jobs": sorted({r["job"] for r in runs}),
                "engines": sorted({r["engine"] for r in measured}),
                "workers": sorted({r["workers"] for r in measured}),
                "rows": sorted({r["rows"] for r in measured}),
                "ok": sum(r["status"] == "ok" for r in measured),
                "failed": sum(r["status"] != "ok" for r in measured),
            }
        )
    return out


def _jsonable(obj: object) -> object:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return f"array{list(obj.shape)}"
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
