"""``fiqa-edge serve``: a web bundle's page over HTTP, cross-origin isolated."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free one).")
def serve(folder: Path, host: str, port: int) -> None:
    """Serve FOLDER (a web bundle, or a folder of them) over HTTP until Ctrl-C.

    Unlike `python -m http.server`, it sends the cross-origin isolation headers
    (Cross-Origin-Opener-Policy: same-origin, Cross-Origin-Embedder-Policy:
    require-corp), so the page may run its models on several WebAssembly
    threads. For trying a bundle locally; put a real web server in front of it
    in production.
    """
    import threading

    from ..converters.browser import StaticServer

    try:
        server = StaticServer(folder, host, port)
    except OSError as exc:
        msg = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise click.ClickException(msg) from exc
    click.echo(f"serving {folder} at {server.url}/ (cross-origin isolated: WebAssembly threads on); Ctrl-C stops")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
