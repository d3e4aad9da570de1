"""Write docs/errors.md from the error-code registry in cvfl.errors (``--check``: compare only).

Run from the repository root with the package importable::

    PYTHONPATH=src python tools/errors_doc.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from cvfl.errors import CODES, EXIT_CODES, ErrorCode

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "errors.md"

HEADER = """\
# Error codes and exit codes

<!-- Generated from cvfl.errors.CODES by tools/errors_doc.py: edit the registry, then run
`PYTHONPATH=src python tools/errors_doc.py`. tests/test_errors.py fails when this file is stale
or when src/cvfl raises a code that is not registered. -->

Every error cvfl raises on purpose prints a stable code in brackets, e.g.
`error [protocol.hello] session hello mismatch: seed: expected 7, seen 8`, and ends the `cvfl`
command with the exit code of its class. Scripts should match on the code, not the message.
A party that stops tells its peer the code too: the peer then fails with `[<peer's code>]` in its
own message and exits 4 (`ProtocolError`: the peer stopped and said why).

## Exit codes

| exit | error class |
|---|---|
| 0 | success |
"""


def render() -> str:
    """The whole of docs/errors.md."""
    lines = [HEADER.rstrip("\n")]
    lines += [f"| {code} | `{cls.__name__}` |" for cls, code in EXIT_CODES.items()]
    lines += ["| 130 / 143 | stopped by Ctrl-C / SIGTERM |", ""]
    lines += ["## Codes", "", "| code | exit | class | meaning |", "|---|---|---|---|"]
    lines += [_row(entry) for entry in CODES.values()]
    return "\n".join(lines) + "\n"


def _row(entry: ErrorCode) -> str:
    if entry.kind is None:
        return f"| `{entry.code}` | varies | varies | {entry.meaning} |"
    return f"| `{entry.code}` | {entry.exit_code} | `{entry.kind.__name__}` | {entry.meaning} |"


def main(argv: list[str]) -> int:
    """Write (or with ``--check`` compare) docs/errors.md; 1 when the check finds it stale."""
    text = render()
    if "--check" in argv:
        if OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} is stale: run tools/errors_doc.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
