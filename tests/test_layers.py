"""The layering (docs/architecture.md, "Layers"): the import-linter contracts hold, the ``movid`` command has
both sides' commands, and library code leaves the process environment alone (only entry points set it)."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("movid", "model", "pipeline", "stages", "schemas")
# modules whose ``main`` is an entry point: they may set the libraries' environment there
ENTRY_POINTS = {"movid/cli.py", "pipeline/cli.py", "model/cli.py", "model/train.py", "model/tiny.py"}


def _mutations(tree: ast.AST) -> list[int]:
    """Lines that write os.environ: item assignment or deletion, setdefault / update / pop / clear, putenv."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del):
            target = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "putenv" or node.func.attr == "unsetenv":
                lines.append(node.lineno)
                continue
            if node.func.attr not in ("setdefault", "update", "pop", "clear", "popitem"):
                continue
            target = node.func.value
        else:
            continue
        if isinstance(target, ast.Attribute) and target.attr == "environ":
            lines.append(node.lineno)
    return lines


def test_library_code_does_not_set_environment_variables():
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            lines = _mutations(ast.parse(path.read_text()))
            if lines and rel not in ENTRY_POINTS:
                found[rel] = lines
    assert not found, f"os.environ written outside the entry points: {found}"
    # the check itself sees a write
    assert _mutations(ast.parse("import os\nos.environ['A'] = '1'\nos.environ.setdefault('B', '2')")) == [2, 3]


def test_movid_has_both_sides_commands():
    from model.cli import add_commands as consumer
    from movid.cli import build_parser
    from pipeline.cli import build_parser as data_parser

    def commands(parser):
        return set(next(a for a in parser._actions if a.dest == "command").choices)

    data = commands(data_parser())
    assert data == {"sample-data", "build", "inspect", "stages", "validate", "requeue", "report"}
    assert commands(build_parser()) == data | {"export", "score", "evaluate", "train", "generate"}
    assert callable(consumer)


@pytest.mark.skipif(shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None,
                    reason="import-linter is not installed (pip install -e '.[dev]')")  # fmt: skip
def test_import_contracts_hold():
    exe = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run([str(exe)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "0 broken" in r.stdout
