"""The import graph of consisid_core/, nodes/ and bench/: layers import downward only, nothing imports in a circle,
the core never imports ComfyUI, and the bench scripts stand on their own (no tests/, no sys.path edits).

Every `import` in every .py file counts: absolute and relative, at module level, inside functions and under
`if TYPE_CHECKING:` (a lazy import is still a dependency). nodes/ is parsed like the rest; its imports count.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("consisid_core", "nodes", "bench")

# The one definition of the layer order, lowest first. A unit is a package or top-level module of consisid_core
# (the package's own __init__ is "consisid_core"), or all of nodes/, or all of bench/. A unit may import units
# of its own layer or below; an import from a lower layer into a higher one is "upward". Add a new package here.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("foundation", frozenset({"errors", "choices", "catalog", "notices", "cancel", "node_ids", "text_input",
                              "output_paths", "file_formats"})),
    ("runtime", frozenset({"runtime"})),  # device, dtypes, attention backends, fp8, compile, memory modes
    ("inputs and model facts", frozenset({"image_input", "video", "validate", "model_info", "model_folder",
                                          "download", "onnx_probe"})),
    ("face", frozenset({"face"})),
    ("engine", frozenset({"engine"})),
    ("on the engine", frozenset({"consisid_core", "parallel", "takes", "metrics", "training", "model_status",
                                 "demo"})),
    ("batch client", frozenset({"batch"})),
    ("command line", frozenset({"cli", "__main__"})),
    ("ComfyUI nodes", frozenset({"nodes"})),
    ("benchmarks", frozenset({"bench"})),
)
LAYER_OF = {unit: i for i, (_, units) in enumerate(LAYERS) for unit in units}
# At most 2 by the project's rule; none remain, so this is 0 and any new upward import fails.
MAX_UPWARD_IMPORTS = 0
COMFYUI_MODULES = ("comfy", "comfy_extras", "comfy_api", "folder_paths", "server", "execution")
# bench/bench_common.py puts the repository root on sys.path for `python bench/x.py` (the one place it is done);
# the other bench modules only import it.
SYS_PATH_OWNER = "bench.bench_common"
# the GPU check drives gpu_speed's and gpu_parallel's rows; those two share helpers only through bench_common
GPU_SECTIONS = ("bench.gpu_speed", "bench.gpu_parallel")


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module (or the name as written when no file of ours matches)
    where: str  # path:line

    def __str__(self) -> str:
        return f"{self.where}: {self.source} -> {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _source_files() -> dict[str, Path]:
    return {_module_name(p): p for root in ROOTS for p in sorted((REPO / root).rglob("*.py"))}


def _targets(node: ast.AST, module: str, is_package: bool, known: set[str]) -> list[str]:
    """Dotted names an import statement loads: `from a import b` is module a.b when that is a file, else a."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, node.module] if node.module else package)
        else:
            base = node.module or ""
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    bench = {m.split(".", 1)[1] for m in known if m.startswith("bench.")}
    if module.startswith("bench."):  # `python bench/x.py` imports its neighbours by bare name
        names = [f"bench.{n}" if n.split(".")[0] in bench else n for n in names]
    return names


def parse_imports(files: dict[str, Path]) -> list[Import]:
    """Every import of every file (functions and TYPE_CHECKING blocks included), resolved to dotted names."""
    known = set(files)
    found: dict[Import, None] = {}  # one per statement and target (`from a import b, c` loads a once)
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(node, module, path.name == "__init__.py", known):
                    found[Import(module, target, f"{path.relative_to(REPO)}:{node.lineno}")] = None
    return list(found)


def unit_of(module: str) -> str | None:
    """The layer unit a dotted name belongs to (None: not ours, e.g. torch)."""
    parts = module.split(".")
    if parts[0] == "consisid_core":
        return "consisid_core" if len(parts) == 1 else parts[1]
    return parts[0] if parts[0] in ("nodes", "bench") else None


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle [a, b, ..., a] through each strongly connected group of `graph` (Tarjan, then BFS)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_shortest_cycle(graph, group) for group in groups]


def _shortest_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    start = min(group)
    parent: dict[str, str] = {}
    queue = [start]
    for v in queue:  # breadth first: the first way back to `start` is a shortest one
        for w in sorted(graph[v] & group):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if w not in parent:
                parent[w] = v
                queue.append(w)
    raise AssertionError(f"no cycle in {group}")  # a strongly connected group always has one


def upward_imports(imports: list[Import]) -> list[str]:
    """Imports from a lower layer into a higher one, with the layers named."""
    out = []
    for imp in imports:
        src, dst = unit_of(imp.source), unit_of(imp.target)
        if src and dst and src != dst and LAYER_OF.get(src, -1) < LAYER_OF.get(dst, -1):
            out.append(f"{imp}  ({LAYERS[LAYER_OF[src]][0]} -> {LAYERS[LAYER_OF[dst]][0]})")
    return out


def _describe(cycle: list[str], imports: list[Import], key) -> str:
    steps = []
    for a, b in zip(cycle, cycle[1:]):
        where = next(str(i) for i in imports if key(i.source) == a and key(i.target) == b)
        steps.append(where)
    return " -> ".join(cycle) + "\n      " + "\n      ".join(steps)


@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    return _source_files()


@pytest.fixture(scope="module")
def imports(files) -> list[Import]:
    return parse_imports(files)


def test_every_unit_has_a_layer(files):
    units = {unit_of(m) for m in files}
    assert units - set(LAYER_OF) == set(), "place these in LAYERS (tests/test_import_graph.py)"
    assert not [u for u in LAYER_OF if u not in units], "LAYERS names a unit that no longer exists"


def test_no_import_cycles(files, imports):
    """Neither between units (packages, top-level modules) nor between single modules."""
    units: dict[str, set[str]] = {}
    modules: dict[str, set[str]] = {}
    for imp in imports:
        src, dst = unit_of(imp.source), unit_of(imp.target)
        if src and dst and src != dst:
            units.setdefault(src, set()).add(dst)
            units.setdefault(dst, set())
        if imp.target in files and imp.target != imp.source:
            modules.setdefault(imp.source, set()).add(imp.target)
            modules.setdefault(imp.target, set())
    found = [_describe(c, imports, unit_of) for c in find_cycles(units)]
    found += [_describe(c, imports, lambda m: m) for c in find_cycles(modules)]
    assert not found, "import cycles:\n  " + "\n  ".join(found)


def test_imports_run_downward(imports):
    upward = upward_imports(imports)
    assert len(upward) <= MAX_UPWARD_IMPORTS, (
        f"{len(upward)} upward imports (at most {MAX_UPWARD_IMPORTS}; layer order in LAYERS):\n  " + "\n  ".join(upward))


def test_every_import_of_ours_names_a_module(files, imports):
    """After a move there is no shim at the old path: every consisid_core/nodes import must name a real module."""
    stale = [str(i) for i in imports if i.target.split(".")[0] in ROOTS and i.target not in files]
    assert not stale, "imports of modules that do not exist:\n  " + "\n  ".join(stale)


def test_core_never_imports_comfyui(imports):
    bad = [str(i) for i in imports if i.source.startswith("consisid_core")
           and i.target.split(".")[0] in (*COMFYUI_MODULES, "nodes")]
    assert not bad, "consisid_core imports ComfyUI (or the nodes):\n  " + "\n  ".join(bad)


def test_bench_stands_on_its_own(files, imports):
    """bench/ imports nothing from tests/, only bench_common edits sys.path, and the GPU sections share
    helpers only through bench_common (bench cycles are caught by test_no_import_cycles)."""
    test_names = {p.stem for p in (REPO / "tests").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    from_tests = [str(i) for i in imports if i.source.startswith("bench.")
                  and (i.target.split(".")[0] == "tests" or i.target.split(".")[0] in test_names)]
    assert not from_tests, "bench imports from tests/:\n  " + "\n  ".join(from_tests)
    edits = [m for m, path in files.items() if m.startswith("bench.") and m != SYS_PATH_OWNER
             and re.search(r"sys\.path\s*(\.\s*(insert|append|extend)|\[|\+?=)", path.read_text(encoding="utf-8"))]
    assert not edits, f"only {SYS_PATH_OWNER} may put the repository root on sys.path: {edits}"
    shared = [str(i) for i in imports if i.source in (*GPU_SECTIONS, SYS_PATH_OWNER)
              and i.target.startswith("bench.") and i.target != SYS_PATH_OWNER]
    assert not shared, "GPU sections and bench_common import other bench scripts:\n  " + "\n  ".join(shared)


def test_the_checks_catch_what_they_are_for():
    """The graph helpers themselves: a planted cycle, an upward import and a bench -> tests import are seen."""
    cycle = find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert cycle == [["a", "b", "c", "a"]]
    planted = [Import("consisid_core.runtime.devices", "consisid_core.engine.engine", "x.py:1"),
               Import("consisid_core.engine.engine", "consisid_core.runtime", "y.py:1")]
    assert [u.split(":")[0] for u in upward_imports(planted)] == ["x.py"]
    known = {"bench.bench_x", "bench.bench_common"}
    tree = ast.parse("from tests.support import pack\nimport bench_common\n")
    assert [t for n in tree.body for t in _targets(n, "bench.bench_x", False, known)] == [
        "tests.support", "bench.bench_common"]
