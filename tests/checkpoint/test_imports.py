"""The checkpoint package sits below the backbone: it speaks state dicts and architectures and
never imports the model, so there is no import cycle between the two."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import dinoreg_dense.arch


@pytest.mark.parametrize("module", ["dinoreg_dense.checkpoint", "dinoreg_dense.arch"])
def test_checkpoint_imports_no_backbone_module(module):
    probe = (
        f"import sys, {module}\n"
        "print(' '.join(m for m in sys.modules if m.startswith('dinoreg_dense.backbones')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"{module} imported {result.stdout.strip()}"


def test_arch_module_is_a_leaf():
    source = Path(dinoreg_dense.arch.__file__).read_text()
    imported = [
        node.module or ""
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom)
        and (node.level or "dinoreg_dense" in (node.module or ""))
    ]
    imported += [
        alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.startswith("dinoreg_dense")
    ]
    assert imported == []
