"""The layout keeps its layers: no import cycles (function-level imports included), the engine never imports the
app or the CLI, only the app imports Gradio, and the CLI runs without it."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "bge_explorer"
FACES = ("app", "cli")


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its body (absolute imports: the package uses no others)."""
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name}: relative import"
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in mods and t != name and not name.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[-1] == "__main__":
        return "cli"
    return parts[1] if len(parts) > 1 and parts[1] in FACES else "engine"


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_engine_imports_neither_the_app_nor_the_cli():
    bad = [(m, t) for m, targets in import_graph().items() for t in targets
           if m != "bge_explorer" and layer(m) == "engine" and layer(t) in FACES]
    assert bad == []


def test_only_the_app_imports_gradio():
    """The engine and the CLI work without the UI: no import of gradio anywhere in their bodies (function-level
    imports included)."""
    bad = []
    for name, path in modules().items():
        if layer(name) == "app":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad += [(name, n) for n in names if n.split(".")[0] == "gradio"]
    assert bad == []


def test_the_cli_imports_no_gradio():
    code = "import sys, bge_explorer.cli.commands; print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_console_script_is_the_cli():
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["bge-explorer"] == "bge_explorer.cli.commands:main"
    out = subprocess.run(["bge-explorer", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "search" in out.stdout and "evaluate" in out.stdout


def test_every_bench_script_imports_what_exists():
    """The benchmarks are run by hand, not by the suite: every engine name they import must still exist."""
    import importlib
    import importlib.util

    missing = []
    for script in sorted((PACKAGE.parent / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bge_explorer"):
                try:
                    module = importlib.import_module(node.module)
                except ImportError:
                    missing.append(f"{script.name}: {node.module}")
                    continue
                missing += [f"{script.name}: {node.module}.{a.name}" for a in node.names
                            if not hasattr(module, a.name) and importlib.util.find_spec(f"{node.module}.{a.name}") is None]
    assert not missing, missing
