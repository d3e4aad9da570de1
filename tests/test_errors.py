"""The error-code registry: every code src/cvfl raises is registered, documented and exits right."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from cvfl import errors
from cvfl.cli import app as cli_app
from cvfl.errors import CODES, EXIT_CODES, CvflError, exit_code_of

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "cvfl"
# The classes of errors.py: constructing one always names the code (the default is a fallback).
BASES = {cls.__name__ for cls in EXIT_CODES} | {"PeerStoppedError"}


def _sources() -> list[tuple[Path, ast.Module]]:
    return [
        (path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
        for path in sorted(SRC.rglob("*.py"))
        if "wire" not in path.relative_to(SRC).parts
    ]


SOURCES = _sources()


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')}"


def _code_values(value: ast.expr) -> tuple[list[str], list[str]]:
    """(literal codes, expressions that are neither a literal nor a forwarded code)."""
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return [value.value], []
    if isinstance(value, ast.Name | ast.Attribute):  # forwarding a code already checked
        return [], []
    if isinstance(value, ast.BoolOp):  # e.g. ``peer_code or "workers.enrol_refused"``
        literals: list[str] = []
        bad: list[str] = []
        for operand in value.values:
            more, worse = _code_values(operand)
            literals += more
            bad += worse
        return literals, bad
    return [], [ast.unparse(value)]


def _code_keywords() -> list[tuple[str, ast.Call, ast.expr]]:
    found = []
    for path, tree in SOURCES:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                found += [
                    (_where(path, node), node, k.value) for k in node.keywords if k.arg == "code"
                ]
    return found


def _called_name(call: ast.Call) -> str:
    func = call.func
    return (
        func.id
        if isinstance(func, ast.Name)
        else func.attr
        if isinstance(func, ast.Attribute)
        else ""
    )


def test_the_scan_sees_the_codes_it_should() -> None:
    literals = {c for _, _, v in _code_keywords() for c in _code_values(v)[0]}
    assert {"protocol.hello", "peer.gone", "sealing.wrong_key", "ratls.parse"} <= literals
    assert len(literals) > 150


def test_every_code_literal_in_src_is_registered() -> None:
    missing = [
        f"{where}: {code}"
        for where, _, value in _code_keywords()
        for code in _code_values(value)[0]
        if code not in CODES
    ]
    assert not missing, "register these in cvfl.errors.CODES:\n" + "\n".join(missing)


def test_codes_are_literals_not_built_at_run_time() -> None:
    built = [
        f"{where}: code={expr}"
        for where, _, value in _code_keywords()
        for expr in _code_values(value)[1]
    ]
    assert not built, (
        "pass the whole code as a literal (f-strings hide it from the registry):\n"
        + "\n".join(built)
    )


def test_every_error_of_errors_py_is_raised_with_an_explicit_code() -> None:
    uncoded = [
        f"{_where(path, node)}: {_called_name(node)}(...)"
        for path, tree in SOURCES
        if path.name != "errors.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and _called_name(node) in BASES
        and not any(k.arg == "code" for k in node.keywords)
    ]
    assert not uncoded, "name the code:\n" + "\n".join(uncoded)


def test_a_literal_code_is_raised_with_its_registered_class() -> None:
    wrong = []
    for where, call, value in _code_keywords():
        name = _called_name(call)
        if name not in BASES:
            continue
        for code in _code_values(value)[0]:
            kind = CODES[code].kind if code in CODES else None
            if kind is not None and kind.__name__ != name and name != "PeerStoppedError":
                wrong.append(f"{where}: {code} raised as {name}, registered as {kind.__name__}")
    assert not wrong, "\n".join(wrong)


def test_every_default_code_is_registered_with_its_class() -> None:
    for cls in EXIT_CODES:
        assert CODES[cls.default_code].kind is cls


def _registry_assignment(tree: ast.Module) -> ast.AST:
    return next(
        node
        for node in tree.body
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id == "CODES"
    )


def test_every_registered_code_is_still_used() -> None:
    used: set[str] = set()
    for path, tree in SOURCES:
        skip = set(ast.walk(_registry_assignment(tree))) if path.name == "errors.py" else set()
        used |= {
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n not in skip
        }
    stale = sorted(set(CODES) - used)
    assert not stale, f"registered but never raised: {stale}"


def test_codes_are_well_formed_and_meanings_one_line() -> None:
    for code, entry in CODES.items():
        assert entry.code == code
        concern, _, what = code.partition(".")
        assert concern.isidentifier() and what and what.replace("_", "a").isalnum(), code
        assert entry.meaning and "\n" not in entry.meaning and len(entry.meaning) < 160, code


def _errors_doc() -> ModuleType:
    spec = importlib.util.spec_from_file_location("errors_doc", REPO / "tools" / "errors_doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_errors_md_is_generated_from_the_registry() -> None:
    text = (REPO / "docs" / "errors.md").read_text(encoding="utf-8")
    assert text == _errors_doc().render(), "docs/errors.md is stale: run tools/errors_doc.py"
    for code, entry in CODES.items():
        assert f"| `{code}` | {entry.exit_code or 'varies'} |" in text


class _Special(errors.AttestationError):
    """A subclass outside errors.py exits like its base."""


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        *[(cls("boom", code=cls.default_code), code) for cls, code in EXIT_CODES.items()],
        (errors.PeerStoppedError("the peer stopped", code="config.checkpoint_changed"), 4),
        (_Special("refused", code="attestation.refused"), 5),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, CvflError) else str(value),
)
def test_the_cli_exits_with_the_documented_code(
    error: CvflError,
    expected: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def failing(args: list[str] | None = None) -> None:
        raise error

    monkeypatch.setattr(cli_app, "_registered", [True])
    monkeypatch.setattr(cli_app, "app", failing)
    with pytest.raises(SystemExit) as info:
        cli_app.main([])
    assert info.value.code == expected == exit_code_of(error)
    assert f"[{error.code}]" in capsys.readouterr().err
