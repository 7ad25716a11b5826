"""The architecture rule: services never import each other; chimp.shared imports no service."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "chimp"
SERVICES = ("training", "serving", "frontend")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("area", [*SERVICES, "shared"])
def test_area_imports_only_itself_and_shared(area: str) -> None:
    forbidden = {f"chimp.{s}" for s in SERVICES if s != area}
    offenders = []
    for path in sorted((SRC / area).rglob("*.py")):
        for module in imported_modules(path):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                offenders.append(f"{path.relative_to(SRC)} imports {module}")
    assert offenders == []
