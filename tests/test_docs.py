"""The threat model in docs/security.md names the tests that back it: each must exist."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `tests/x.py` or `tests/x.py::name`, and `::name` continuing the file named last.
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`")


def _tests_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    }


def test_every_test_the_security_document_names_exists() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    current: Path | None = None
    named = missing = 0
    for match in REFERENCE.finditer(text):
        file, name = match.groups()
        if file is None and name is None:
            continue
        if file is not None:
            current = ROOT / file
            assert current.is_file(), file
        if name is not None:
            assert current is not None, name
            named += 1
            if name not in _tests_of(current):
                missing += 1
                print(f"missing: {current.relative_to(ROOT)}::{name}")  # noqa: T201
    assert named > 30
    assert missing == 0
