"""Write files and folders so that nothing half-written sits under a final name."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text"]

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(final: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; move it to ``final`` only on success.

    With ``directory=True`` the temporary path is an empty folder. On any
    exception the temporary file or folder is removed and ``final`` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}."
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=final.parent))
        tmp.chmod(0o777 & ~_UMASK)
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if not directory:
            tmp.chmod(0o666 & ~_UMASK)  # mkstemp (and writers that recreate the file) make 0600
        if directory and final.is_dir():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(final: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``final`` atomically (UTF-8)."""
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")
