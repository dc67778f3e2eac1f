"""Code-quality gates that run with the suite: the sans-IO rule, ruff and mypy --strict."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_PROTOCOLS = {
    "anyio",
    "trio",
    "asyncio",
    "socket",
    "ssl",
    "time",
    "selectors",
    "threading",
    "sniffio",
    "tricorn.config",
    "tricorn.server",
}


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against tricorn.protocols
                base = "tricorn" if node.level == 2 else "tricorn.protocols"
                names.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                names.add(node.module)
    return names


def _breaks_rule(module: str) -> bool:
    return any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN_IN_PROTOCOLS)


@pytest.mark.parametrize(
    "path", sorted((ROOT / "tricorn" / "protocols").glob("*.py")), ids=lambda p: p.name
)
def test_protocols_are_sans_io(path: Path) -> None:
    bad = sorted(module for module in _imported_modules(path) if _breaks_rule(module))
    assert not bad, f"{path.name} imports {bad}: tricorn/protocols/ must stay sans-IO"


def test_config_imports_nothing_else_of_tricorn() -> None:
    for path in (ROOT / "tricorn" / "config").glob("*.py"):
        for module in _imported_modules(path):
            assert not module.startswith(("tricorn.server", "tricorn.protocols", "tricorn.cli")), (
                f"{path.name} imports {module}"
            )


#: A function longer than this says why, in a comment beginning "Long on purpose:".
MAX_FUNCTION_LINES = 60


def test_no_long_function_without_a_reason() -> None:
    too_long = []
    for path in sorted((ROOT / "tricorn").rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            assert node.end_lineno is not None
            body = lines[node.lineno - 1 : node.end_lineno]
            if len(body) > MAX_FUNCTION_LINES and not any(
                "# Long on purpose:" in line for line in body
            ):
                too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({len(body)})")
    assert not too_long, "functions over 60 lines without a reason: " + ", ".join(too_long)


def _run(*command: str) -> None:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_lint() -> None:
    _run(sys.executable, "-m", "ruff", "check", ".")


def test_ruff_format() -> None:
    _run(sys.executable, "-m", "ruff", "format", "--check", ".")


def test_mypy_strict() -> None:
    _run(sys.executable, "-m", "mypy")
