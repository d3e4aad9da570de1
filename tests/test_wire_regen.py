"""The committed generated code in cvfl.wire matches what the .proto sources produce."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def _load_regen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("regen_proto", REPO / "tools" / "regen_proto.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerating_changes_nothing(tmp_path: Path) -> None:
    regen = _load_regen()
    produced = regen.generate(tmp_path)
    assert produced, "no generated files"
    committed = sorted((REPO / "src" / "cvfl" / "wire").glob("*_pb2*.py*"))
    assert [p.name for p in produced] == [p.name for p in committed]
    for new, old in zip(produced, committed, strict=True):
        assert new.read_bytes() == old.read_bytes(), f"{old.name} is stale: run `make proto`"
