"""Output files: checked before any work, written whole or not at all.

``check_output_path`` refuses, with one line, what cannot become a regular file (a missing
or non-folder parent, a directory, a device node or FIFO, an empty name); ``write_atomic``
writes to a temporary file in the same folder, fsyncs it and renames it over the target,
removing the temporary file on any failure.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from aifabric.errors import ConfigError


def check_output_path(path: str | Path, *, what: str = "output") -> Path:
    """The path as a Path, or ConfigError saying why a file cannot be written there."""
    p = Path(path)
    if not p.name or p.name in (".", ".."):
        raise ConfigError(f"{what} {str(p)!r} is not a file name; give a path like out/{what}.x")
    folder = p.parent if str(p.parent) else Path(".")
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


def write_atomic(path: str | Path, write: Callable[[TextIO], None] | str) -> None:
    """Write ``path`` whole or not at all; ``write`` is the text or a function of the file.

    Raises:
        ConfigError: the path cannot be written (see check_output_path), or the write fails.
    """
    import tempfile

    p = check_output_path(path)
    folder = p.parent if str(p.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{p.name}.", suffix=".tmp")
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
        os.replace(tmp, p)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {str(p)!r}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
