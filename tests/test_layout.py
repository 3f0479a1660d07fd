"""The design card's layers as import rules, read from the source with `ast`.

Routers are HTTP only and share nothing but the web helpers named here; services hold the rules
and never reach up into a router; app/crypto is pure and stands alone; and no module of app
imports, however indirectly, a module that imports it back. An import inside a function counts:
a cycle put off until a call is still a cycle. Only imports under `if TYPE_CHECKING:` do not.
"""

import ast
from dataclasses import dataclass
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"

# The web helpers routers share. Everything else in app/routers serves its own routes.
SHARED_WEB_HELPERS = {"app.routers.cookies", "app.routers.uploads"}
# A shared helper that lives in a router module: the JSON register and its HTML twin answer CSV
# with one function.
SHARED_ROUTER_NAMES = {
    ("app.routers.api_register", "csv_response"),
    ("app.routers.api_register", "pdf_response"),
}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # the module that runs: a submodule named, else the package or module
    name: str | None  # the name taken from the target by `from ... import`, if any
    line: int


def _module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(APP.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import in the tree, at any depth, except the branches run only by type checkers."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [node]
    found: list[ast.Import | ast.ImportFrom] = []
    for field, value in ast.iter_fields(node):
        if isinstance(node, ast.If) and field == "body" and _is_type_checking(node.test):
            continue
        children = value if isinstance(value, list) else [value]
        for child in children:
            if isinstance(child, ast.AST):
                found.extend(_import_nodes(child))
    return found


def _absolute(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer if MODULES[importer].name == "__init__.py" else importer.rpartition(".")[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def _imports(importer: str) -> list[Import]:
    tree = ast.parse(MODULES[importer].read_text(encoding="utf-8"))
    found = []
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            found += [Import(importer, alias.name, None, node.lineno) for alias in node.names]
            continue
        module = _absolute(importer, node)
        for alias in node.names:
            submodule = f"{module}.{alias.name}"
            if submodule in MODULES:
                found.append(Import(importer, submodule, None, node.lineno))
            else:
                found.append(Import(importer, module, alias.name, node.lineno))
    return [each for each in found if each.target in MODULES]


IMPORTS = {module: _imports(module) for module in MODULES}


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def _where(each: Import) -> str:
    name = f" ({each.name})" if each.name else ""
    return f"{each.importer}:{each.line} imports {each.target}{name}"


def test_the_modules_are_found() -> None:
    assert {"app.routers.billing", "app.services.leaving", "app.crypto.aead"} <= MODULES.keys()
    assert any(each.target == "app.services.billing" for each in IMPORTS["app.routers.billing"])


def test_a_router_imports_of_other_routers_only_the_shared_web_helpers() -> None:
    breaches = [
        _where(each)
        for module, imports in IMPORTS.items()
        if _in(module, "app.routers")
        for each in imports
        if _in(each.target, "app.routers")
        and each.target != module
        and (
            (each.name or "").startswith("_")
            or (
                each.target not in SHARED_WEB_HELPERS
                and (each.target, each.name) not in SHARED_ROUTER_NAMES
            )
        )
    ]
    assert breaches == []


def test_a_service_never_imports_a_router() -> None:
    breaches = [
        _where(each)
        for module, imports in IMPORTS.items()
        if _in(module, "app.services")
        for each in imports
        if _in(each.target, "app.routers")
    ]
    assert breaches == []


def test_crypto_imports_nothing_of_the_app_but_crypto() -> None:
    breaches = [
        _where(each)
        for module, imports in IMPORTS.items()
        if _in(module, "app.crypto")
        for each in imports
        if not _in(each.target, "app.crypto")
    ]
    assert breaches == []


def _cycles() -> list[list[Import]]:
    """One cycle through each strongly connected group of modules (Tarjan's algorithm)."""
    edges = {module: sorted({each.target for each in IMPORTS[module]}) for module in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in edges[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == module:
                    break
            if len(group) > 1 or module in edges[module]:
                groups.append(group)

    for module in MODULES:
        if module not in index:
            visit(module)
    return [_cycle_in(sorted(group)) for group in groups]


def _cycle_in(group: list[str]) -> list[Import]:
    """The shortest way from the group's first module back to itself, import by import."""
    start = group[0]
    paths: dict[str, list[Import]] = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for each in IMPORTS[module]:
                if each.target == start:
                    return [*paths[module], each]
                if each.target in group and each.target not in paths:
                    paths[each.target] = [*paths[module], each]
                    following.append(each.target)
        frontier = following
    raise AssertionError(f"no cycle in {group}")


def test_no_module_imports_itself_back_through_others() -> None:
    cycles = [" -> ".join(_where(each) for each in cycle) for cycle in _cycles()]
    assert cycles == []


def test_an_import_in_a_function_counts_and_one_for_type_checkers_does_not() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from app.main import create_app\n"
        "else:\n"
        "    from app import db\n"
        "def run() -> None:\n"
        "    from app.services import leaving\n"
    )
    modules = [node.module for node in _import_nodes(tree) if isinstance(node, ast.ImportFrom)]
    assert modules == ["typing", "app", "app.services"]
