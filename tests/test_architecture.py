"""The shape of the package (docs/architecture.md): imports go one way, the wings hold the
modules, the library never imports the CLI's packages."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "motionxfer"
NAME = PACKAGE.name


def module_files() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def imported_modules(path: Path, name: str, known: dict[str, Path]) -> list[tuple[str, bool]]:
    """(module of this package imported, whether the import is inside a function) for every
    import statement anywhere in the file: module level, in functions, under TYPE_CHECKING."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    inside = {id(node) for function in ast.walk(tree)
              if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
              for node in ast.walk(function) if node is not function}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{alias.name}" for alias in node.names] + [prefix]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target not in (name, NAME):
                found.append((target, id(node) in inside))
    return found


def import_graph() -> tuple[dict[str, set[str]], dict[str, int]]:
    known = module_files()
    edges: dict[str, set[str]] = {name: set() for name in known}
    local: dict[str, int] = {}
    for name, path in known.items():
        for target, in_function in imported_modules(path, name, known):
            edges[name].add(target)
            local[name] = local.get(name, 0) + in_function
    return edges, local


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), and self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges[node]:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_cycle_through_a_function_local_import(tmp_path: Path) -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    module = tmp_path / "module.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      f"    from {NAME}.pose import skeleton\n"
                      f"def late():\n    import {NAME}.io.video\n")
    known = module_files()
    assert sorted(imported_modules(module, f"{NAME}.probe", known)) == [
        (f"{NAME}.io.video", True), (f"{NAME}.pose", False), (f"{NAME}.pose.skeleton", False)]


def test_no_import_cycle_counting_every_import() -> None:
    edges, _ = import_graph()
    assert cycles(edges) == []


def test_the_library_imports_at_the_top_only_the_cli_defers_it() -> None:
    """Function-local imports of the package stay in the CLI's command bodies, which import
    the library when they run so that `--help` answers without loading torch."""
    _, local = import_graph()
    outside_cli = {name: count for name, count in local.items()
                   if count and not name.startswith(f"{NAME}.cli")}
    assert outside_cli == {}


def test_the_wings_hold_the_modules() -> None:
    top = [path.name for path in PACKAGE.glob("*.py")]
    assert len(top) <= 15, sorted(top)
    for wing in ("io", "pose", "training", "inference", "evaluation", "networks", "cli"):
        assert (PACKAGE / wing / "__init__.py").is_file()


def test_the_library_never_imports_typer_or_rich() -> None:
    for name, path in module_files().items():
        if name.startswith(f"{NAME}.cli"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] in ("typer", "rich") for n in names), name


# What each wing may import besides itself (docs/architecture.md, "Which way the imports go").
ALLOWED = {
    "io": ("errors", "progress"),
    "pose": ("errors", "progress", "io", "parsing.global_alignment"),
    "networks": ("errors", "progress", "io", "pose", "model_cache"),
    "parsing": ("errors", "progress", "io"),
    "background": ("errors", "progress", "io", "pose"),
    "texture": ("errors", "progress", "io", "pose", "parsing", "background"),
    "animation": ("errors", "progress", "io", "networks"),
}
FORBIDDEN = {
    "training": ("inference", "evaluation.evaluate", "evaluation.protocols", "evaluation.report",
                 "demo", "cli"),
    "inference": ("training", "evaluation", "demo", "cli"),
    "evaluation": ("demo", "cli"),
}


def wing(module: str) -> str:
    return module.removeprefix(f"{NAME}.")


def test_imports_go_one_way_between_wings() -> None:
    edges, _ = import_graph()
    wrong = []
    for module, targets in edges.items():
        here = wing(module)
        top = here.split(".")[0]
        for target in targets:
            there = wing(target)
            if there.split(".")[0] == top:
                continue
            if top in ALLOWED and not there.startswith(ALLOWED[top]):
                wrong.append((here, there))
            if top in FORBIDDEN and there.startswith(FORBIDDEN[top]):
                wrong.append((here, there))
            if there.startswith("cli") and top not in ("cli", "__main__"):
                wrong.append((here, there))
    assert wrong == []
