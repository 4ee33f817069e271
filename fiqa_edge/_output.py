"""What reaches the terminal: our progress bar and tables; third-party chatter only with ``-v``.

Exporters and quantizers print their own progress bars (coremltools' tqdm
bars, NNCF's rich bars) and notices (torch's CUDA probe, Python warnings).
:func:`captured_output` collects what they print while they run and logs it
at INFO under ``fiqa_edge``; :func:`configure_logging` shows other packages'
log records below ERROR only when verbose.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout

__all__ = ["captured_output", "configure_logging"]

log = logging.getLogger(__name__)

#: loggers of packages that log notices of their own; quiet below ERROR unless verbose
THIRD_PARTY = ("torch", "coremltools", "nncf", "onnxruntime", "onnxslim", "openvino", "py.warnings")


def configure_logging(verbose: bool) -> None:
    """fiqa-edge's records from WARNING (INFO when verbose); other packages' from ERROR (INFO when verbose)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)  # Python warnings become records of the py.warnings logger
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)


def _last_frames(text: str) -> str:
    """Progress bars redraw with carriage returns: keep each line's final state, drop ANSI codes."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    lines = (line.rsplit("\r", 1)[-1].rstrip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


@contextmanager
def captured_output(what: str) -> Iterator[None]:
    """Collect what the block prints to stdout and stderr; log it (at INFO, shown with ``-v``) afterwards.

    Progress bars opened before the block keep writing to the terminal.
    """
    buffer = io.StringIO()
    try:
        with redirect_stdout(buffer), redirect_stderr(buffer):
            yield
    finally:
        printed = _last_frames(buffer.getvalue())
        if printed:
            log.info("%s printed:\n%s", what, printed)
