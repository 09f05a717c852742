"""The package's shape: imports go one way (no circle, also through function-local imports)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import amls2

PACKAGE = Path(amls2.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path) -> set[str]:
    """The amls2 modules ``path`` imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in MODULES else node.module)
    return {name for name in found if name in MODULES}


def test_no_import_circle():
    graph = {name: imported_modules(path) - {name} for name, path in MODULES.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", "import circle: " + " -> ".join([*trail, name])
        state[name] = "open"
        for other in sorted(graph[name]):
            visit(other, [*trail, name])
        state[name] = "done"

    for name in sorted(graph):
        visit(name, [])


# The layers, lowest first, and what each may import besides itself. ``base`` is what every layer
# uses (configs and paths, errors, atomic file writes, the CPU facts).
BASE = {"amls2", "amls2.config", "amls2.errors", "amls2.fileio", "amls2.machine"}
MAY_IMPORT: dict[str, set[str]] = {
    "base": set(),
    "imaging": {"base"},
    "data": {"base", "imaging"},
    "models": {"base", "imaging"},
    "inference.fast": {"base", "models"},
    "inference": {"base", "imaging", "models", "inference.fast"},
    "evaluation": {"base", "imaging", "data", "models", "inference", "inference.fast"},
    "training": {"base", "imaging", "data", "models", "inference", "evaluation"},
    "reporting": {"base", "imaging", "data", "models", "inference", "evaluation", "training"},
    "cli": {"base", "imaging", "data", "models", "inference", "evaluation", "training"}
    | {"reporting"},
}


def layer_of(module: str) -> str:
    """The layer of an amls2 module: its subpackage (``inference.fast`` on its own), else base."""
    if module in BASE:
        return "base"
    if module == "amls2.__main__":
        return "cli"
    parts = module.split(".")
    if parts[1:3] == ["inference", "fast"]:
        return "inference.fast"
    assert parts[1] in MAY_IMPORT, f"{module}: a top-level module outside the layers"
    return parts[1]


def test_every_module_belongs_to_a_layer():
    """Only the base modules sit at the top level; everything else is in a layer's folder."""
    top_level = {name for name in MODULES if name.count(".") == 1}
    assert top_level - BASE - {"amls2.__main__"} <= {f"amls2.{layer}" for layer in MAY_IMPORT}
    assert {layer_of(name) for name in MODULES} == set(MAY_IMPORT)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers_only(module):
    """data never imports inference, models never import training, imaging imports nothing above
    the base, the speed machinery (inference.fast) nothing else of inference, and so on."""
    layer = layer_of(module)
    allowed = MAY_IMPORT[layer] | {layer}
    wrong = {name for name in imported_modules(MODULES[module]) if layer_of(name) not in allowed}
    assert not wrong, f"{module} ({layer}) imports {sorted(wrong)}"


@pytest.mark.parametrize("layer", sorted(set(MAY_IMPORT) - {"base"}))
def test_each_layer_says_what_it_does_and_may_import(layer):
    init = PACKAGE.joinpath(*layer.split("."), "__init__.py")
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    assert doc, f"{init}: no docstring"
    assert "May import:" in doc, f"{init}: does not say what the layer may import"


MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def _functions(tree: ast.AST):
    """Every function and method of a module: (qualified name, node)."""
    stack = [("", tree)]
    while stack:
        prefix, node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    yield name, child
                stack.append((f"{name}.", child))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_stay_small(module):
    text = MODULES[module].read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{module}: over {MAX_MODULE_LINES} lines"
    long = {
        name: node.end_lineno - node.lineno + 1
        for name, node in _functions(ast.parse(text))
        if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    }
    assert not long, f"{module}: functions over {MAX_FUNCTION_LINES} lines: {long}"


# Methods a Keras layer overrides (documented by Keras) and the cost protocol ``count_macs``
# (documented in amls2.models.cost); the CLI's subcommand protocol (documented in amls2.cli).
DOCUMENTED_ELSEWHERE = {
    "call", "build", "compute_output_shape", "get_config", "save_own_variables",
    "load_own_variables", "count_macs",
}  # fmt: skip
CLI_PROTOCOL = {"add_arguments", "run"}


def _api(tree: ast.AST):
    """The module's functions and the methods of its classes (not functions inside functions):
    (qualified name, node)."""
    stack = [("", tree)]
    while stack:
        prefix, node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                stack.append((f"{prefix}{child.name}.", child))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield f"{prefix}{child.name}", child


@pytest.mark.parametrize("module", sorted(MODULES))
def test_public_functions_say_what_they_do(module):
    skip = DOCUMENTED_ELSEWHERE | (CLI_PROTOCOL if module.startswith("amls2.cli.") else set())
    bare = [
        name
        for name, node in _api(ast.parse(MODULES[module].read_text(encoding="utf-8")))
        if not any(part.startswith("_") for part in name.split("."))
        if name.rsplit(".", 1)[-1] not in skip and ast.get_docstring(node) is None
    ]
    assert not bare, f"{module}: public functions without a docstring: {bare}"


# The reporting figure modules: the only code that imports matplotlib (the rest of the package
# computes; these draw).
FIGURE_MODULES = {
    f"amls2.reporting.{name}"
    for name in ("plots", "comparison", "diagrams", "hero", "figure_helpers", "notebook_figures")
}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_the_figure_modules_import_matplotlib(module):
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    uses = any(name.split(".")[0] in ("matplotlib", "adjustText") for name in found)
    assert module in FIGURE_MODULES or not uses, f"{module} imports matplotlib"
