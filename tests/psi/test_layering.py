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


@pytest.mark.parametrize(
    "path", sorted(PSI.rglob("*.py")), ids=lambda p: p.relative_to(PSI).as_posix()
)
def test_psi_never_imports_ratls(path: Path) -> None:
    assert not any(name.startswith("cvfl.ratls") for name in _imports(path))


def test_layering_walks_both_protocol_subpackages() -> None:
    walked = {p.relative_to(PSI).as_posix() for p in PSI.rglob("*.py")}
    assert {"ecdh/run.py", "ecdh/exchange.py", "fast/run.py", "fast/key.py"} <= walked


def test_shared_modules_import_neither_protocol() -> None:
    """Modules at the top of cvfl.psi serve both modes; only the runner picks one."""
    for path in PSI.glob("*.py"):
        if path.name in {"runner.py", "__init__.py"}:
            continue
        protocol = {n for n in _imports(path) if n.startswith(("cvfl.psi.ecdh", "cvfl.psi.fast"))}
        assert not protocol, f"{path.name} imports {sorted(protocol)}"


def test_plaintext_channel_attests_nothing() -> None:
    security = PlaintextSecurity()
    assert security.attester is None and security.local_certificate is None
