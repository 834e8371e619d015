"""Atomic file writes: a reader sees a file's old content or its new content, never half of it.

Every file the planner writes (profiles, plans, verify.json, reports, deploy history, Serve
configs) goes through here, so an interrupted run never leaves a truncated file behind.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: str | Path, content: str | bytes) -> Path:
    """Write text, or bytes for binary formats, to a temporary file beside `path`, then rename it over `path`.

    The temporary file is in the same folder so the rename stays on one filesystem (atomic on POSIX).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if isinstance(content, bytes) else "w") as fh:
            fh.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
