"""Pure code imports no I/O, clock or randomness: `model`, `crypto`, `rules`, PBFT decisions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tally"
PURE = ("model", "crypto", "rules")
FORBIDDEN = {
    "time", "random", "os", "socket", "asyncio", "threading", "subprocess", "datetime",
    "secrets", "lmdb", "sqlite3", "sqlalchemy", "httpx", "fastapi", "uvicorn", "requests",
    "tally.store", "tally.node", "tally.consensus", "tally.client", "tally.cli", "tally.bench",
    "tally.wallet", "tally.services", "tally.explorer",
}  # fmt: skip


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)


@pytest.mark.parametrize("layer", PURE)
def test_pure_layer_imports_nothing_with_side_effects(layer: str) -> None:
    modules = sorted((SRC / layer).rglob("*.py"))
    assert modules, f"no modules found in {layer}"
    offenders = {
        str(path.relative_to(SRC)): sorted(n for n in _imports(path) if _forbidden(n))
        for path in modules
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_check_notices_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("import os\nfrom time import monotonic\n")
    assert {n for n in _imports(module) if _forbidden(n)} == {"os", "time"}


PBFT_DECISIONS = ("messages.py", "actions.py", "replica.py")
"""The PBFT decision logic: messages and timer events in, actions out (issue 5)."""


@pytest.mark.parametrize("module", PBFT_DECISIONS)
def test_pbft_decision_logic_is_pure(module: str) -> None:
    path = SRC / "consensus" / "pbft" / module
    pure_siblings = {f"tally.consensus.pbft.{name.removesuffix('.py')}" for name in PBFT_DECISIONS}
    offenders = sorted(n for n in _imports(path) if _forbidden(n) and n not in pure_siblings)
    assert offenders == []
