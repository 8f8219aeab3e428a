"""The dependency rule, checked on the source: imports only go down the layers, and no module cycle.

Layers (docs/architecture.md): foundation (errors, settings, pathguard) → data and the shapes world →
models → metrics, heatmaps, projection, retrieval, embeddings, pipeline → relation, probes, training,
evaluation, robustness → the CLI and the app. Every ``import`` statement counts, including those inside
functions (a cycle hidden in a function is still a cycle). The core (``mmexplore``) never imports Streamlit.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mmexplore", "mmexplore_app")
# Lowest first. A module may import its own layer and those below; never one above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("mmexplore", "mmexplore.errors", "mmexplore.settings", "mmexplore.pathguard"),
    ("mmexplore.data",),
    ("mmexplore.models",),
    ("mmexplore.metrics", "mmexplore.heatmaps", "mmexplore.projection", "mmexplore.retrieval", "mmexplore.embeddings",
     "mmexplore.pipeline"),
    ("mmexplore.relation", "mmexplore.probes", "mmexplore.training", "mmexplore.evaluation", "mmexplore.robustness"),
    ("mmexplore.cli", "mmexplore_app", "app"),
)


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {"app": ROOT / "app.py"}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module ``name`` refers to (the longest known prefix), or None for third-party modules."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> dict[str, int]:
    """Project modules ``module`` imports anywhere in its source → first line number."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            # ``from pkg import sub`` imports the submodule when there is one, else a name of pkg.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for name in names:
            target = _resolve(name)
            if target and target != module:
                found.setdefault(target, node.lineno)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def layer_of(module: str) -> tuple[int, str]:
    """(layer index, unit) of a module: the longest unit name of :data:`LAYERS` that contains it."""
    best: tuple[int, str] | None = None
    for k, units in enumerate(LAYERS):
        for unit in units:
            if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best[1])):
                best = (k, unit)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add its package to LAYERS (and docs/architecture.md)")
    return best


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_walk_sees_the_known_edges():
    # Guards the walker itself: lazy imports inside functions and relative imports are found.
    assert "mmexplore.models" in GRAPH["mmexplore.cli.common"]  # inside load_encoder()
    assert "mmexplore.relation.dataset" in GRAPH["mmexplore.relation.evaluate"]  # inside evaluate_relation()
    assert "mmexplore.heatmaps.features" in GRAPH["mmexplore.heatmaps.methods"]
    assert len(MODULES) > 80


def test_no_import_cycle():
    cycles = find_cycles(GRAPH)
    assert not cycles, "import cycles: " + "; ".join(" ↔ ".join(c) for c in cycles)


def test_cycle_finder_finds_a_hidden_cycle():
    assert find_cycles({"a": {"b": 1}, "b": {"c": 3}, "c": {"a": 9}, "d": {"a": 1}}) == [["a", "b", "c"]]


def test_imports_only_go_down():
    upward = []
    for module, targets in GRAPH.items():
        here, _ = layer_of(module)
        for target, line in targets.items():
            there, _ = layer_of(target)
            if there > here:
                upward.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports {target} (layer {there} > {here})")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_core_never_imports_streamlit():
    offenders = []
    for module, path in MODULES.items():
        if not (module == "mmexplore" or module.startswith("mmexplore.")):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            if any(n == "streamlit" or n.startswith("streamlit.") for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, "the core imports Streamlit: " + ", ".join(offenders)
