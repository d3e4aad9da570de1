"""Regenerate the protobuf and gRPC modules of cvfl.wire from ``proto/cvfl/wire/*.proto``.

Usage: ``python tools/regen_proto.py [OUT_DIR]``. With no argument it writes into ``src/`` of the
checkout; tests pass a temporary folder and compare the result with the committed files.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROTO_ROOT = REPO / "proto"


def proto_files() -> list[Path]:
    """Return the .proto sources, sorted."""
    return sorted((PROTO_ROOT / "cvfl" / "wire").glob("*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Generate code for every proto into ``out_root`` (a ``src``-like folder); return files."""
    from grpc_tools import protoc

    out_root.mkdir(parents=True, exist_ok=True)
    plugin = shutil.which("protoc-gen-mypy_grpc", path=str(Path(sys.executable).parent))
    if plugin is None:
        raise RuntimeError("protoc-gen-mypy_grpc not found beside the interpreter")
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--plugin=protoc-gen-mypy_grpc={plugin}",
        f"--mypy_grpc_out={out_root}",
        *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    return sorted((out_root / "cvfl" / "wire").glob("*_pb2*.py*"))


def main() -> None:
    """Regenerate into the checkout's ``src``."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "src"
    for path in generate(out):
        print(path)


if __name__ == "__main__":
    main()
