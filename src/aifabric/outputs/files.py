"""Output files: checked before any work, written whole or not at all.

``check_output_path`` refuses, with one line, what cannot become a regular file (a missing
or non-folder parent, a directory, a device node or FIFO, an empty or over-long name);
``check_output_paths`` also refuses two outputs naming one file. ``write_atomic`` writes to
a temporary file in the same folder, fsyncs it and renames it over the target, removing the
temporary file on any failure; ``write_all_atomic`` does it for several files at once: all
are written to temporary files first and renamed only when every one was written, so a
failed command replaces none of them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from aifabric.errors import ConfigError


def check_output_path(path: str | Path, *, what: str = "output") -> Path:
    """The path as a Path, or ConfigError saying why a file cannot be written there."""
    p = Path(path)
    if not p.name or p.name in (".", ".."):
        raise ConfigError(f"{what} {str(path)!r} is not a file name; give a path to a file")
    folder = p.parent if str(p.parent) else Path(".")
    if len(os.fsencode(p.name)) > _name_max(folder):
        raise ConfigError(f"{what}: the file name is longer than the file system allows")
    if not folder.is_dir():
        raise ConfigError(
            f"cannot write {what} {str(p)!r}: folder {str(folder)!r} does not exist; create it "
            "first"
        )
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        return p
    except OSError as exc:
        raise ConfigError(f"cannot write {what} {str(p)!r}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise ConfigError(f"cannot write {what} {str(p)!r}: it is a directory; add a file name")
    if not stat.S_ISREG(mode):
        raise ConfigError(f"cannot write {what} {str(p)!r}: not a regular file (device or FIFO)")
    return p


Writer = Callable[[TextIO], None] | str


def check_output_paths(paths: Sequence[tuple[str, str | Path | None]]) -> None:
    """Check each given (flag, path) and refuse two flags naming the same file."""
    seen: dict[Path, str] = {}
    for what, path in paths:
        if path is None:
            continue
        p = check_output_path(path, what=what)
        key = (p.parent.resolve() if str(p.parent) else Path.cwd()) / p.name
        if key in seen:
            raise ConfigError(f"{seen[key]} and {what} name the same file {str(p)!r}; give two")
        seen[key] = what


def write_atomic(path: str | Path, write: Writer) -> None:
    """Write ``path`` whole or not at all; ``write`` is the text or a function of the file.

    Raises:
        ConfigError: the path cannot be written (see check_output_path), or the write fails.
    """
    write_all_atomic([(path, write)])


def write_all_atomic(items: Sequence[tuple[str | Path, Writer]]) -> None:
    """Write every file whole, or none: temporary files first, renamed only when all exist.

    Raises:
        ConfigError: a path cannot be written, or a write fails (no target is touched).
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, write in items:
            p = check_output_path(path)
            staged.append((_stage(p, write), p))
        for tmp, p in staged:
            os.replace(tmp, p)
    except OSError as exc:
        raise ConfigError(f"cannot write output: {exc.strerror}") from None
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)


def _stage(p: Path, write: Writer) -> str:
    """A fsync'd temporary file beside ``p`` holding the output; its name is short, so any
    target name the file system accepts works."""
    import tempfile

    folder = p.parent if str(p.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".aifabric-", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"cannot write {str(p)!r}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if isinstance(write, str):
                f.write(write)
            else:
                write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {str(p)!r}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
