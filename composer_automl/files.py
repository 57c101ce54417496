"""Writing result files safely: whole files appear atomically, log lines are flushed as they come."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

from composer_automl.config import ConfigError


def check_writable(path: Path, key: str, file: bool = False) -> None:
    """Refuse, naming ``key``, a path where a folder (``file``: a file) belongs but the other kind is, or whose
    folder this process cannot create or write in (checked on the nearest existing folder, before any work)."""
    path = Path(path)
    if path.exists() and path.is_dir() == file:
        raise ConfigError(f"={str(path)!r} is a {'folder, not a file' if file else 'file, not a folder'}", key=key)
    folders = path.parents if file else (path, *path.parents)
    existing = next((p for p in folders if p.exists()), Path("."))
    if not existing.is_dir():
        raise ConfigError(f"={str(path)!r}: {str(existing)!r} is a file, not a folder", key=key)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"={str(path)!r}: cannot write in {str(existing)!r} (permission denied)", key=key)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it into place.

    Readers never see a half-written file, and a crash leaves no file under the final name.
    The temporary name carries the process id, so concurrent writers never share one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A temporary sibling folder to fill; renamed to ``path`` when the block completes, removed if it raises.

    A folder under the final name is therefore always complete (``path`` must not exist yet).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk (safe to read while a run goes on)."""
    with Path(path).open("a") as fh:
        fh.write(json.dumps(row, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every row of a JSON-lines log. An incomplete last line (a run killed mid-write) is ignored; any other
    line that is not a JSON object is one :class:`ConfigError` naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read ({err})") from None
    rows: list[dict[str, Any]] = []
    lines = text.split("\n")
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if i == len(lines):  # the tail, after the last newline: torn
                break
            raise ConfigError(f"{path}:{i}: not a JSON line ({err.msg}); the log is corrupt there (move that "
                              "line out of the file to use the rest)") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{path}:{i}: not a JSON object; the log is corrupt there")
        rows.append(row)
    return rows


TORN_SUFFIX = ".torn"


def repair_torn_tail(path: str | Path) -> str | None:
    """Make an append-only log safe to append to again: an incomplete last line (no newline at its end, as a
    kill mid-write leaves it) is moved to ``PATH.torn`` (appended there) and cut off. Returns a line saying so,
    or None when the log ends cleanly."""
    path = Path(path)
    if not path.is_file():
        return None
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return None
    keep = data.rfind(b"\n") + 1
    complete_lines = data[:keep].count(b"\n")
    with (path.parent / (path.name + TORN_SUFFIX)).open("ab") as side:
        side.write(data[keep:] + b"\n")
    with path.open("r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return (f"{path}: its last line was incomplete (a run killed while writing it); set aside in "
            f"{path.name + TORN_SUFFIX} ({len(data) - keep} bytes), the log continues after line "
            f"{complete_lines}")
