"""Writing files so that a reader sees either the old content or the complete new one, never half a file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable


def atomic_write(path: str | Path, data: bytes | str | Callable[[IO[bytes]], None], fsync: bool = False) -> Path:
    """Write a file so that readers see either the old or the complete new content.

    data: bytes, str (UTF-8), or a callback that writes to the binary file object it is given. The content goes
    to a temporary file in the same folder (created if missing), which then replaces `path`; on any error the
    temporary file is removed and the error re-raised. The new file gets the usual umask-based permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
