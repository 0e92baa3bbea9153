"""The engine imports nothing but NumPy and the standard library."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "backprop"
SERVICE_PACKAGES = ["flask", "flask_smorest", "marshmallow", "apispec", "rq", "redis", "yaml"]
ALLOWED = sys.stdlib_module_names | {"numpy"}


SCRIPT = """
import json, sys
import backprop
loaded = [name for name in {packages!r} if name in sys.modules]
print(json.dumps([backprop.__file__, loaded]))
"""


def test_importing_the_engine_loads_no_service_package():
    code = SCRIPT.format(packages=SERVICE_PACKAGES)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    path, loaded = json.loads(done.stdout)
    assert Path(path).resolve() == ENGINE / "__init__.py"
    assert loaded == []


def imported_names(tree: ast.AST) -> set[str]:
    """Top-level package names of every absolute import anywhere in the module."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def relative_targets(tree: ast.AST) -> set[str]:
    return {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level > 0
    }


MODULES = sorted(ENGINE.glob("*.py"))


def test_the_engine_has_the_expected_modules():
    names = {path.stem for path in MODULES}
    assert {"activations", "losses", "optimizers", "network", "trainer", "model"} <= names


@pytest.mark.parametrize("path", MODULES, ids=[path.name for path in MODULES])
def test_module_imports_only_numpy_stdlib_and_the_engine(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    assert imported_names(tree) <= ALLOWED
    siblings = {module.stem for module in MODULES} | {""}
    assert relative_targets(tree) <= siblings
