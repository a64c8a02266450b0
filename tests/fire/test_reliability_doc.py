"""RELIABILITY.md stays true: every test it names as proof exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_named_in_reliability_md_exists():
    text = (ROOT / "RELIABILITY.md").read_text(encoding="utf-8")
    named = re.findall(r"`([\w/]+\.py)::(test_\w+)`", text)
    assert len(named) >= 20, "RELIABILITY.md names too few tests"
    missing = []
    for path, name in named:
        source = ROOT / "tests" / path
        functions = set()
        if source.exists():
            functions = {n.name for n in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
                         if isinstance(n, ast.FunctionDef)}
        if name not in functions:
            missing.append(f"{path}::{name}")
    assert not missing, f"RELIABILITY.md names tests that do not exist: {missing}"
