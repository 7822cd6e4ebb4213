"""Run records: one JSON object per run, appended to ``runs.jsonl``; arrays beside it as .npy.

Nothing already written is ever rewritten. Arrays are written to a temporary file and renamed
into place (atomic on POSIX), and only then is the record appended, as one ``write`` on a file
opened with ``O_APPEND``; a run that fails writes nothing. A reader skips (and reports) a last
line cut short by a crash, so older records always stay readable.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

SCHEMA = 1
RUNS_FILE = "runs.jsonl"


def save_array(directory: Path, name: str, array: np.ndarray) -> str:
    """Atomically write ``array`` to ``directory/name``; return the file name."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return name


def append_record(
    directory: str | os.PathLike, record: dict, arrays: dict[str, np.ndarray] | None = None
) -> dict:
    """Write ``arrays`` next to the runs file, then append ``record`` with their file names.

    Returns the record as written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    record = {
        **record,
        "artifacts": {
            key: save_array(directory, f"{record['run_id']}-{key}.npy", value)
            for key, value in (arrays or {}).items()
        },
    }
    line = (json.dumps(record, sort_keys=True, default=_jsonable) + "\n").encode()
    path = directory / RUNS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return record


def load_records(path: str | os.PathLike) -> list[dict]:
    """Records of a runs file (or of ``DIR/runs.jsonl``), skipping a truncated last line."""
    path = Path(path)
    if path.is_dir():
        path = path / RUNS_FILE
    records = []
    with open(path) as f:
        lines = f.read().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            warnings.warn(f"{path}:{number}: skipped an incomplete record", stacklevel=2)
    return records


def _jsonable(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return f"array{list(obj.shape)}"
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
