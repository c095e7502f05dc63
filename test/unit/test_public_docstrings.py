"""Every public module, class, function and method of ros2_erl_vlm says what it is."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ros2_erl_vlm"


def _is_setter(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter") for d in node.decorator_list)


def _missing(tree: ast.Module, where: str) -> list[str]:
    out = [] if ast.get_docstring(tree) else [f"{where}: module"]

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                if node.name.startswith("_") or (not isinstance(node, ast.ClassDef) and _is_setter(node)):
                    continue
                if not ast.get_docstring(node):
                    out.append(f"{where}:{node.lineno}: {prefix}{node.name}")
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{prefix}{node.name}.")

    visit(tree.body, "")
    return out


def test_public_api_has_docstrings() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 40
    missing = [m for f in files for m in _missing(ast.parse(f.read_text()), str(f.relative_to(PACKAGE)))]
    assert not missing, "missing docstrings:\n" + "\n".join(missing)
