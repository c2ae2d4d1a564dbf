"""The package's shape: no import circles (module level or inside functions), imports only
downward through the layers the README's layout section lists, and at most 14 modules at
the top of `snncc/`. Read from the source with `ast`, so an import inside a function
counts as much as one at the top of a file."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent / "snncc"

# Lowest first. A module may import modules of its own layer and of the layers below.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("snncc.errors", "snncc.version")),
    ("core", ("snncc.intmath", "snncc.kernels", "snncc.ops", "snncc.ir", "snncc.schedule",
              "snncc.ranges", "snncc.arrayfile", "snncc.reference")),
    ("frontend", ("snncc.frontend",)),
    ("passes", ("snncc.passes",)),
    ("backends", ("snncc.backends",)),
    ("runtime", ("snncc.runtime",)),
    ("api", ("snncc.compiler", "snncc")),
    ("metrics", ("snncc.metrics",)),
    ("ui", ("snncc.ui",)),
    ("verify", ("snncc.verify",)),
    ("app", ("snncc.app", "snncc.__main__")),
]


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def import_graph(mods: dict[str, Path]) -> nx.DiGraph:
    """module -> every snncc module it imports, anywhere in the file."""
    g = nx.DiGraph()
    for name, path in mods.items():
        g.add_node(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _targets(node, package, mods):
                if target != name:
                    g.add_edge(name, target)
    return g


def _targets(node: ast.AST, package: str, mods: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in mods]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        base = ".".join(up + ([node.module] if node.module else []))
    out = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in mods:
            out.append(sub)
        elif base in mods:
            out.append(base)
    return out


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    return rank


MODS = modules()
GRAPH = import_graph(MODS)


def test_every_module_has_a_layer():
    assert [m for m in MODS if layer_of(m) < 0] == []


def test_no_import_circles():
    circles = [sorted(c) for c in nx.strongly_connected_components(GRAPH) if len(c) > 1]
    assert circles == []


def test_imports_go_down_the_layers():
    upward = [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
              for a, b in GRAPH.edges if layer_of(b) > layer_of(a)]
    assert upward == []


def test_at_most_14_modules_at_the_top():
    top = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(top) <= 14, top


def test_the_readme_lists_every_package_in_layer_order():
    readme = (ROOT.parent / "README.md").read_text()
    section = readme[readme.index("## Layout"):]
    section = section[: section.find("\n## ", 4) if "\n## " in section[4:] else None]
    packages = sorted({m.split(".")[1] for m in MODS if m.count(".") >= 2}
                      | {"backends/sim", "backends/hls", "backends/verilog"})
    for name in packages:
        assert f"{name}/" in section, f"the README's layout section does not list {name}/"
    order = [section.index(f"`{name}`") for name, _ in LAYERS[2:-1] if name != "api"]
    assert order == sorted(order), "the README lists the layers out of order"


@pytest.mark.parametrize("planted", ["circle", "upward"])
def test_the_checks_see_a_planted_fault(tmp_path, planted):
    """Copies two modules into a scratch package and plants the fault in the copy."""
    pkg = tmp_path / "snncc"
    (pkg / "metrics").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "ir.py").write_text("from snncc import errors\n")
    (pkg / "errors.py").write_text(
        "def f():\n    from snncc import ir\n" if planted == "circle" else
        "from snncc.metrics import energy\n")
    (pkg / "metrics" / "__init__.py").write_text("")
    (pkg / "metrics" / "energy.py").write_text("")
    g = import_graph(modules(pkg))
    if planted == "circle":
        assert [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1] == [
            ["snncc.errors", "snncc.ir"]]
    else:
        assert [(a, b) for a, b in g.edges if layer_of(b) > layer_of(a)] == [
            ("snncc.errors", "snncc.metrics.energy")]
