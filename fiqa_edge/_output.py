"""What reaches the terminal: our progress bar and tables; third-party chatter only with ``-v``.

Exporters, quantizers and runtimes print their own progress bars (coremltools'
tqdm bars, NNCF's rich bars) and notices (torch's CUDA probe, Python warnings,
what LiteRT's and ExecuTorch's C++ code writes to the process's stderr).
:func:`captured_output` collects what they print while they run and logs it
at INFO under ``fiqa_edge``; :func:`configure_logging` shows other packages'
log records below ERROR only when verbose.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import IO

__all__ = ["captured_output", "configure_logging"]

log = logging.getLogger(__name__)

#: loggers of packages that log notices of their own; quiet below ERROR unless verbose
THIRD_PARTY = ("torch", "coremltools", "nncf", "onnxruntime", "onnxslim", "openvino", "py.warnings")


def configure_logging(verbose: bool) -> None:
    """fiqa-edge's records from WARNING (INFO when verbose); other packages' from ERROR (INFO when verbose)."""
    level = logging.INFO if verbose else logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")  # the root: other packages
    logging.getLogger("fiqa_edge").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.captureWarnings(True)  # Python warnings become records of the py.warnings logger
    for name in THIRD_PARTY:  # packages that set levels of their own
        logging.getLogger(name).setLevel(level)


def _last_frames(text: str) -> str:
    """Progress bars redraw with carriage returns: keep each line's final state, drop ANSI codes."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    lines = (line.rsplit("\r", 1)[-1].rstrip() for line in text.split("\n"))  # not splitlines: it splits at \r
    return "\n".join(line for line in lines if line)


@contextmanager
def _native_streams(sink: IO[bytes]) -> Iterator[None]:
    """Point file descriptors 1 and 2 at ``sink`` (what C++ runtimes print goes there too)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


@contextmanager
def captured_output(what: str) -> Iterator[None]:
    """Collect what the block prints to stdout and stderr, Python and native code alike; log it (at INFO,
    shown with ``-v``) afterwards.

    Progress bars opened before the block keep their place on the terminal.
    """
    buffer = io.StringIO()
    with tempfile.TemporaryFile() as native:
        try:
            with _native_streams(native), redirect_stdout(buffer), redirect_stderr(buffer):
                yield
        finally:
            native.seek(0)
            printed = _last_frames(native.read().decode(errors="replace") + buffer.getvalue())
            if printed:
                log.info("%s printed:\n%s", what, printed)
