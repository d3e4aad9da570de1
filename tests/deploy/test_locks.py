"""The hash-pinned locks: complete, consistent with pyproject.toml, and what every install uses."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
import shlex
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.files import (
    DEPLOY,
    REPO,
    Locked,
    dockerfiles,
    parse_dockerfile,
    parse_lock,
    read_lock,
)

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
RUNTIME = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
TEST = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["test"]]
BUILD = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]


def _lock_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cvfl_lock_tool", REPO / "tools" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


LOCK_TOOL = _lock_tool()


@pytest.fixture(scope="module")
def runtime() -> dict[str, Locked]:
    return read_lock("runtime.lock")


@pytest.fixture(scope="module")
def dev() -> dict[str, Locked]:
    return read_lock("dev.lock")


def _check_pinned(requirements: list[Requirement], lock: dict[str, Locked], name: str) -> None:
    for req in requirements:
        key = canonicalize_name(req.name)
        assert key in lock, f"{name}: {req} is not pinned"
        entry = lock[key]
        assert entry.hashes, f"{name}: {key} has no hash"
        assert req.specifier.contains(entry.version, prereleases=True), (
            f"{name}: {key}=={entry.version} does not satisfy pyproject's {req}"
        )


def test_runtime_lock_pins_every_runtime_and_build_dependency(runtime: dict[str, Locked]) -> None:
    _check_pinned(RUNTIME + BUILD, runtime, "runtime.lock")
    for req in TEST:
        if canonicalize_name(req.name) not in {canonicalize_name(r.name) for r in RUNTIME}:
            assert canonicalize_name(req.name) not in runtime, f"{req.name} is a test tool"


def test_dev_lock_pins_runtime_test_and_build_dependencies(dev: dict[str, Locked]) -> None:
    _check_pinned(RUNTIME + TEST + BUILD, dev, "dev.lock")


def test_torch_is_the_exact_cpu_release(runtime: dict[str, Locked], dev: dict[str, Locked]) -> None:
    assert runtime["torch"].version == dev["torch"].version == "2.13.0"
    assert runtime["torch"] == dev["torch"]


def test_runtime_is_dev_restricted(runtime: dict[str, Locked], dev: dict[str, Locked]) -> None:
    """The image runs the versions (and files) the tests ran."""
    for name, entry in runtime.items():
        assert dev.get(name) == entry, f"{name}: runtime {entry}, dev {dev.get(name)}"


def _closure(roots: list[Requirement]) -> dict[str, str]:
    """Names and installed versions reachable from ``roots`` in this environment."""
    seen: dict[str, str] = {}
    pending = list(roots)
    while pending:
        req = pending.pop()
        name = canonicalize_name(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen[name] = importlib.metadata.version(name)
        for sub in importlib.metadata.requires(name) or []:
            parsed = Requirement(sub)
            if parsed.marker is None or parsed.marker.evaluate({"extra": ""}):
                pending.append(parsed)
    return seen


@pytest.mark.parametrize(
    ("lock_name", "roots"), [("runtime.lock", RUNTIME), ("dev.lock", RUNTIME + TEST)]
)
def test_every_transitive_dependency_is_pinned(lock_name: str, roots: list[Requirement]) -> None:
    lock = read_lock(lock_name)
    reachable = _closure(roots)
    for name, installed in reachable.items():
        locked = lock.get(name)
        assert locked is not None, f"{lock_name}: {name} (a dependency) is not pinned"
        if locked.version != installed.split("+", 1)[0]:
            pytest.skip(f"this environment has {name} {installed}, not the locked {locked.version}")


# ---- every install goes through the locks ---------------------------------------------------


def _pip_installs(commands: list[str]) -> list[list[str]]:
    """The arguments of every ``pip install`` in shell command lines."""
    found = []
    for command in commands:
        lexer = shlex.shlex(command.replace("\\\n", " "), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
        for index in range(len(words) - 1):
            if words[index].endswith("pip") and words[index + 1] == "install":
                rest = words[index + 2 :]
                stops = [i for i, w in enumerate(rest) if set(w) <= set("();<>|&")]
                found.append(rest[: stops[0]] if stops else rest)
    return found


def _check_installs(installs: list[list[str]], lock: str, where: str) -> None:
    assert installs, f"{where} installs nothing"
    from_lock = 0
    for args in installs:
        if "--no-deps" in args:
            assert "-r" not in args, f"{where}: {args}"
            continue
        assert "--require-hashes" in args, f"{where}: pip install without --require-hashes: {args}"
        assert args[args.index("-r") + 1] == lock, f"{where}: installs from {args}, not {lock}"
        from_lock += 1
    assert from_lock == 1, f"{where}: expected one install from {lock}, seen {from_lock}"


def test_image_installs_from_the_runtime_lock_with_hashes() -> None:
    for path in dockerfiles():
        parsed = parse_dockerfile(path)
        runs = [parsed.expand(i.args, i.stage) for i in parsed.instructions if i.keyword == "RUN"]
        installs = _pip_installs(runs)
        if path == DEPLOY / "Dockerfile":
            _check_installs(installs, "requirements/runtime.lock", str(path))
            copies = [i.args.split() for i in parsed.stage(0) if i.keyword == "COPY"]
            assert any(c[0] == "requirements/runtime.lock" for c in copies)
            ignore = (path.parent / "Dockerfile.dockerignore").read_text().splitlines()
            assert "!requirements/runtime.lock" in ignore, "the lock must reach the build"
        else:
            assert not installs, f"{path}: installs Python packages outside the lock"


def test_makefile_installs_from_the_dev_lock_with_hashes() -> None:
    text = (REPO / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*:?=\s*(.*)$", text, re.M))
    recipe = [line.strip() for line in text.splitlines() if line.startswith("\t")]
    expanded = [
        re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), line)
        for line in recipe
    ]
    _check_installs(_pip_installs(expanded), "requirements/dev.lock", "Makefile")
    stamp_rule = re.search(r"^\$\(STAMP\):(.*)$", text, re.M)
    assert stamp_rule and "$(LOCK)" in stamp_rule.group(1), "a changed lock reinstalls"


# ---- tools/lock.py ---------------------------------------------------------------------------


def test_lock_tool_reads_pip_reports(tmp_path: Path) -> None:
    wheel = tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"not really a wheel")
    report: dict[str, Any] = {
        "install": [
            {
                "metadata": {"name": "torch", "version": "2.13.0+cpu"},
                "download_info": {"url": wheel.as_uri(), "archive_info": {}},
            },
            {
                "metadata": {"name": "Typing_Extensions", "version": "4.15.0"},
                "download_info": {
                    "url": "https://files.example/t.whl",
                    "archive_info": {"hashes": {"sha256": "ab" * 32}},
                },
            },
            {
                "metadata": {"name": "cbor2", "version": "6.3.0"},
                "download_info": {
                    "url": "https://files.example/c.whl",
                    "archive_info": {"hash": "sha256=" + "cd" * 32},
                },
            },
        ]
    }
    pins = LOCK_TOOL.pins_from_report(report)
    assert [(p.name, p.version) for p in pins] == [
        ("cbor2", "6.3.0"),
        ("torch", "2.13.0"),
        ("typing-extensions", "4.15.0"),
    ]
    assert pins[1].hashes == (hashlib.sha256(b"not really a wheel").hexdigest(),)
    assert pins[0].hashes == ("cd" * 32,) and pins[2].hashes == ("ab" * 32,)
    report["install"][1]["download_info"]["archive_info"] = {}
    with pytest.raises(ValueError, match="typing-extensions: expected a sha256"):
        LOCK_TOOL.pins_from_report(report)


def test_lock_tool_pins_torch_from_pyproject() -> None:
    runtime, test, build = LOCK_TOOL.project_requirements(PYPROJECT)
    assert "torch==2.13.0" in runtime and not any(r.startswith("torch>") for r in runtime)
    assert (
        len(runtime) == len(RUNTIME) and len(test) == len(TEST) and build == [str(r) for r in BUILD]
    )


_names = st.from_regex(r"[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,5})?", fullmatch=True)
_versions = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}", fullmatch=True)
_hashes = st.lists(st.binary(min_size=32, max_size=32).map(bytes.hex), min_size=1, max_size=3)


@given(st.dictionaries(_names, st.tuples(_versions, _hashes), max_size=8))
def test_rendered_locks_parse_back(entries: dict[str, tuple[str, list[str]]]) -> None:
    pins = [LOCK_TOOL.Pin(n, v, tuple(h)) for n, (v, h) in entries.items()]
    parsed = parse_lock(LOCK_TOOL.render(pins, title="t", name="x.lock"))
    assert parsed == {n: Locked(v, tuple(sorted(set(h)))) for n, (v, h) in entries.items()}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("torch>=2.4 \\\n    --hash=sha256:" + "a" * 64, "expected name==version"),
        ("torch==2.13.0", "has no hash"),
        ("torch==2.13.0 --hash=sha256:abc", "expected --hash=sha256:<64 hex>"),
        ("torch==2.13.0 --index-url=x", "expected --hash"),
        ("a==1 --hash=sha256:" + "a" * 64 + "\na==2 --hash=sha256:" + "b" * 64, "listed twice"),
    ],
)
def test_lock_parser_refuses_what_pip_would_not_hash_check(text: str, needle: str) -> None:
    with pytest.raises(AssertionError, match=re.escape(needle)):
        parse_lock(text)
