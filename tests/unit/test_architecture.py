"""The house rules, checked: imports run one way, and only tap_nylas/sdk/ reaches into the SDK."""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
from pathlib import Path

import pytest

from tap_nylas.sdk import TOUCHED, TOUCHED_ATTRIBUTES
from tap_nylas.tap import TapNylas

PACKAGE = Path(__file__).resolve().parents[2] / "tap_nylas"

#: Top to bottom: a module may import only modules of the layers below its own
#: (the README's module map says the same in words). TYPE_CHECKING imports count too.
LAYERS = [
    {"__main__"},
    {"tap"},
    {"streams"},
    {"history"},
    {"partitioned"},
    {"client"},
    {"services", "versions", "selection", "output"},
    {"scheduler", "directory", "sdk", "throttle"},
    {"progress", "inputs", "coverage"},
    {"slicing", "pagination", "transport", "normalize", "schemas", ""},
    {"errors"},
]


def _modules() -> dict[str, Path]:
    """Module name relative to the package ("" for the package itself; sdk.* folded in sdk)."""
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _node(module: str) -> str:
    return module.split(".", maxsplit=1)[0] if module.startswith("sdk") else module


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules `path` imports, at run time or for type checking."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tap_nylas"):
            base = node.module.removeprefix("tap_nylas").lstrip(".")
            names = [f"{base}.{a.name}".lstrip(".") for a in node.names]
            names = [n if n in modules else base for n in names]
        elif isinstance(node, ast.Import):
            names = [
                a.name.removeprefix("tap_nylas").lstrip(".")
                for a in node.names
                if a.name.startswith("tap_nylas")
            ]
        found.update(names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = {_node(m) for m in _imports(path, modules)} - {_node(name)}
        graph.setdefault(_node(name), set()).update(edges)
    return graph


def test_every_module_has_a_layer() -> None:
    assert set(_graph()) == set().union(*LAYERS)


def test_imports_run_one_way_down_the_layers() -> None:
    layer = {module: n for n, modules in enumerate(LAYERS) for module in modules}
    upward = [
        f"{module or 'tap_nylas'} imports {dep or 'tap_nylas'}"
        for module, deps in _graph().items()
        for dep in deps
        if layer[dep] <= layer[module]
    ]
    assert upward == []


def test_no_import_cycle() -> None:
    graph = _graph()
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        seen[module] = 1
        for dep in sorted(graph[module]):
            assert seen.get(dep) != 1, " -> ".join([*path, dep])
            if dep not in seen:
                visit(dep, [*path, dep])
        seen[module] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module, [module])


def test_the_layer_check_sees_a_back_edge(tmp_path: Path) -> None:
    # The walker must see an import hidden under TYPE_CHECKING, as the old client.py had.
    source = tmp_path / "mod.py"
    source.write_text(
        "import typing as t\nif t.TYPE_CHECKING:\n    from tap_nylas.scheduler import Partition\n"
    )
    assert _imports(source, _modules()) == {"scheduler"}


def _private_sdk_reach(path: Path) -> list[str]:
    """Private SDK names used by `path`: imports of private modules, private attributes."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("singer_sdk"):
            module = node.module or ""
            private = [a.name for a in node.names if a.name.startswith("_")]
            if any(part.startswith("_") for part in module.split(".")) or private:
                found.append(f"line {node.lineno}: from {module} import …")
        if isinstance(node, ast.Attribute) and node.attr in TOUCHED_ATTRIBUTES:
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


def test_only_the_sdk_seam_reaches_into_sdk_internals() -> None:
    reaches = {
        str(path.relative_to(PACKAGE)): found
        for path in PACKAGE.rglob("*.py")
        if "sdk" not in path.relative_to(PACKAGE).parts and (found := _private_sdk_reach(path))
    }
    assert reaches == {}


def test_the_seam_check_sees_a_private_reach(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from singer_sdk.helpers._state import StateWriter\n"
        "def f(stream):\n    return stream._state_manager\n"
    )
    assert len(_private_sdk_reach(source)) == 2


def _resolve(qualified: str) -> object:
    module, _, member = qualified.partition(":")
    found: object = importlib.import_module(module)
    for name in member.split("."):
        found = getattr(found, name)
    return found


@pytest.mark.parametrize("qualified", sorted(TOUCHED))
def test_touched_sdk_members_keep_their_signature(qualified: str) -> None:
    # An SDK upgrade that renames or re-signs one of these fails here: read tap_nylas/sdk/.
    member = _resolve(qualified)
    if isinstance(member, property):
        member = member.fget
    signature = inspect.signature(member)  # type: ignore[arg-type]
    bare = signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=signature.empty,
    )
    assert str(bare) == TOUCHED[qualified]


def test_touched_sdk_attributes_still_exist(config: dict) -> None:
    tap = TapNylas(config=config)
    stream = tap.streams["messages"]
    present = {name for name in TOUCHED_ATTRIBUTES if hasattr(stream, name) or hasattr(tap, name)}
    assert present == set(TOUCHED_ATTRIBUTES)


def test_layers_are_disjoint() -> None:
    assert all(not (a & b) for a, b in itertools.combinations(LAYERS, 2))
