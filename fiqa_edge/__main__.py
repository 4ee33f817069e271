"""Run the CLI as ``python -m fiqa_edge``."""

from .cli import main

main()
