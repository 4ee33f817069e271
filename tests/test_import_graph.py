"""The import directions of DESIGN.md, read from every module's source (imports inside functions too).

Layers: the runtime core (``fiqa_edge`` itself) imports no other layer; ``train`` and
``converters`` import only the core; ``benchmarks`` imports the core and ``converters``;
the CLI (``fiqa_edge.cli``, ``python -m fiqa_edge``) is the one adapter that may reach every layer. No cycles between
modules through module-level imports. Inside the core, the runtime scorer scores crops and reaches neither the
face layer (detection, alignment, :mod:`fiqa_edge.faces`) nor video; the face layer does not reach video.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"fiqa_edge": ROOT / "fiqa_edge", "fiqa_edge.train": ROOT / "train",
           "fiqa_edge.converters": ROOT / "converters", "fiqa_edge.benchmarks": ROOT / "benchmarks"}
ALLOWED = {
    "core": {"core"},
    "train": {"core", "train"},
    "converters": {"core", "converters"},
    "benchmarks": {"core", "converters", "benchmarks"},
    "cli": {"core", "train", "converters", "benchmarks", "cli"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


MODULES = _modules()


def _layer(module: str) -> str:
    if module == "fiqa_edge.__main__":
        return "cli"
    for sub in ("train", "converters", "benchmarks", "cli"):
        if module == f"fiqa_edge.{sub}" or module.startswith(f"fiqa_edge.{sub}."):
            return sub
    return "core"


def _imports(module: str, path: Path, top_level_only: bool = False) -> set[str]:
    """The fiqa_edge modules ``module`` imports (resolved relative imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n in MODULES}
    return found - {module}


def test_the_modules_are_found():
    assert {"fiqa_edge.scorer", "fiqa_edge.train.engine", "fiqa_edge.converters.onnx",
            "fiqa_edge.benchmarks.harness", "fiqa_edge.cli.convert"} <= set(MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_layer_table(module):
    layer = _layer(module)
    wrong = sorted(m for m in _imports(module, MODULES[module]) if _layer(m) not in ALLOWED[layer])
    assert not wrong, f"{module} ({layer}) imports {wrong}"


def test_no_module_level_import_cycles():
    graph = {m: _imports(m, p, top_level_only=True) for m, p in MODULES.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1 and not node.startswith(nxt + "."):  # a package importing its own submodules is fine
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]) if nxt in trail
                                     else f"import cycle through {nxt}")
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


#: what each runtime module may not reach, through any chain of imports (inside functions too)
ABOVE = {
    "fiqa_edge.scorer": ("fiqa_edge.detect", "fiqa_edge.faces", "fiqa_edge.video"),
    "fiqa_edge.backends": ("fiqa_edge.detect", "fiqa_edge.faces", "fiqa_edge.video"),
    "fiqa_edge.faces": ("fiqa_edge.video",),
}


def _reached(module: str) -> set[str]:
    """Every module ``module`` imports, directly or not; the package root only exports lazily, so it is passed over."""
    seen, todo = {"fiqa_edge"}, [module]
    while todo:
        for nxt in _imports(todo[-1], MODULES[todo.pop()]):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen - {"fiqa_edge"}


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("module", sorted(ABOVE))
def test_the_runtime_scorer_reaches_no_face_layer_or_video(module):
    wrong = sorted(m for m in _reached(module) if any(_under(m, above) for above in ABOVE[module]))
    assert not wrong, f"{module} reaches {wrong}"


def test_the_checker_sees_a_scorer_reaching_the_detector(tmp_path, monkeypatch):
    bad = tmp_path / "scorer.py"
    bad.write_text("def f():\n    from .detect import FaceFinder\n")
    monkeypatch.setitem(MODULES, "fiqa_edge.scorer", bad)
    assert "fiqa_edge.detect" in _reached("fiqa_edge.scorer")


def test_the_checker_sees_a_wrong_direction(tmp_path):
    """A train module importing a benchmark is reported (the test above can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from fiqa_edge.benchmarks.harness import run_bench\n")
    imported = _imports("fiqa_edge.train.bad", bad)
    assert imported == {"fiqa_edge.benchmarks.harness"} and _layer("fiqa_edge.benchmarks.harness") not in ALLOWED["train"]
