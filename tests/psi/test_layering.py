"""PSI depends on the channel-security interface, never on its RA-TLS implementation."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cvfl.psi
from cvfl.bridge.security import PlaintextSecurity

PSI = Path(cvfl.psi.__file__).parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted(PSI.rglob("*.py")), ids=lambda p: p.name)
def test_psi_never_imports_ratls(path: Path) -> None:
    assert not any(name.startswith("cvfl.ratls") for name in _imports(path))


def test_plaintext_channel_attests_nothing() -> None:
    security = PlaintextSecurity()
    assert security.attester is None and security.local_certificate is None
