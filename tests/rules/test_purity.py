"""`tally.model` and `tally.rules` do no I/O, read no clock, draw no randomness.

STYLE.md §1.3: a test fails if they import `time`, `random`, `os`, `socket`, `asyncio`, or
any database or HTTP library, or a layer above them.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "tally"
FORBIDDEN = {
    "time",
    "random",
    "secrets",
    "os",
    "socket",
    "asyncio",
    "threading",
    "subprocess",
    "lmdb",
    "sqlite3",
    "sqlalchemy",
    "http",
    "urllib",
    "httpx",
    "fastapi",
    "uvicorn",
    "requests",
}
LAYERS_ALLOWED = {
    "model": {"tally.model", "tally.crypto"},
    "rules": {"tally.rules", "tally.model", "tally.crypto"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


FILES = [path for layer in sorted(LAYERS_ALLOWED) for path in sorted((SRC / layer).glob("*.py"))]


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pure_layer_imports_no_io_clock_or_randomness(path):
    for name in imported_modules(path):
        assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pure_layer_imports_only_itself_and_layers_below(path):
    allowed = LAYERS_ALLOWED[path.parent.name]
    for name in imported_modules(path):
        if name == "tally" or name.startswith("tally."):
            assert any(name == a or name.startswith(a + ".") for a in allowed), (
                f"{path.parent.name}/{path.name} imports {name}"
            )


def test_both_layers_were_scanned():
    assert {p.parent.name for p in FILES} == {"model", "rules"}
    assert len(FILES) >= 15
