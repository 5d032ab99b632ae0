"""dsic's imports run downwards through its layers and never in a circle (read with ``ast``, so
imports inside functions count too)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dsic"
# lowest first: a module imports modules of its own layer or of the layers before it
LAYERS = [
    ("dsic", "dsic.host", "dsic.messages", "dsic.weights", "dsic.ops", "dsic.protocol", "dsic.results", "dsic.visualize"),
    ("dsic.data",),
    ("dsic.backbones",),
    ("dsic.necks",),
    ("dsic.config",),
    ("dsic.models",),
    ("dsic.engine", "dsic.profiling"),
    ("dsic.inference", "dsic.export", "dsic.analysis"),
    ("dsic.demo", "dsic.cli"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The dsic modules ``path`` imports (relative imports resolved; ``from . import name`` as the package)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            found.add(".".join(base + ([node.module] if node.module else [])))
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m == "dsic" or m.startswith("dsic.")}


def layer_of(module: str) -> int:
    matches = [(len(prefix), i) for i, layer in enumerate(LAYERS) for prefix in layer
               if module == prefix or (prefix != "dsic" and module.startswith(prefix + "."))]
    assert matches, f"{module} is in no layer of tests/test_layers.py"
    return max(matches)[1]


GRAPH = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_imports_run_down_the_layers():
    upward = [f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
              for m, deps in GRAPH.items() for d in sorted(deps) if layer_of(d) > layer_of(m)]
    assert not upward, "\n".join(upward)


def test_no_import_circles():
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done or module not in GRAPH:
            return
        for dep in sorted(GRAPH[module]):
            if not (module == "dsic" or dep.startswith(module + ".")):  # a package importing its own parts
                visit(dep, path + [module])
        done.add(module)

    for module in GRAPH:
        visit(module, [])


def test_the_import_graph_sees_an_upward_import():
    assert "dsic.engine.checkpoint" not in GRAPH["dsic.backbones.zoo"]
    assert layer_of("dsic.engine.loading") > layer_of("dsic.backbones.zoo")
    assert imports_of(PACKAGE / "engine" / "evaluate.py") >= {"dsic.config", "dsic.engine.loading"}


def test_importing_models_loads_neither_matplotlib_nor_the_synthetic_data():
    code = ("import sys, dsic.models, dsic.necks, dsic.engine.train; "
            "print(sorted(m for m in ('matplotlib', 'dsic.data.synth', 'dsic.analysis') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
