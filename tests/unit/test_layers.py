"""The package's layout holds: the import contracts (pyproject.toml, docs/architecture.md), no import cycles
between modules, every module small and documented, the strategy registry and the config agreeing."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "bqnn"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_import_contracts_are_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.skip("lint-imports is not installed (pip install -e '.[dev]')")
    r = subprocess.run([str(lint)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "0 broken" in r.stdout


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_module_imports_itself_through_others():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("bqnn")
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    for m in edges:  # a package's __init__ importing its own modules is not a cycle of the code
        edges[m] = {w for w in edges[m] if not m.startswith(w + ".")}
    assert _cycles(edges) == []


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(ROOT)) for p in MODULES])
def test_every_module_is_small_and_says_how_it_is_used(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 350, "one concept per module: split it"
    if path.name == "__init__.py" and not text.strip():
        return
    doc = ast.get_docstring(ast.parse(text))
    assert doc, "a module's docstring opens with how it is run or used"
    assert any(w in doc for w in ("python -m", "Used ", "used ", "    ")), doc.splitlines()[0]


def test_every_strategy_name_the_config_admits_is_registered():
    from bqnn.config import STRATEGY_NAMES
    from bqnn.strategies.base import REGISTRY

    assert sorted(REGISTRY) == sorted(STRATEGY_NAMES)


ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()


def test_the_module_map_matches_the_tree():
    """docs/architecture.md lists every module of the package, once, and none that is gone."""
    listed = re.findall(r"^\| `([\w/]+\.py)` \|", ARCHITECTURE, flags=re.M)
    tree = sorted(str(p.relative_to(ROOT / "bqnn")) for p in MODULES
                  if p.name != "__init__.py" or p.read_text().strip())  # an empty __init__ is no module of its own
    assert sorted(listed) == tree, (sorted(set(tree) - set(listed)), sorted(set(listed) - set(tree)))


def test_no_function_is_longer_than_sixty_lines_unless_the_map_says_why():
    """A function of over 60 lines is named, with the reason, under "Long functions" in docs/architecture.md."""
    allowed = set(re.findall(r"^- `([\w/.]+:\w+)`", ARCHITECTURE.split("## Long functions", 1)[-1], flags=re.M)) \
        if "## Long functions" in ARCHITECTURE else set()
    long = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{path.relative_to(ROOT / 'bqnn')}:{node.name}")
    assert set(long) <= allowed, sorted(set(long) - allowed)
