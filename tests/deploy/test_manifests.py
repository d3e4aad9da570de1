"""Every file under deploy/ parses, and every `cvfl` command the deployment runs exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvfl.train.config import load_job
from tests.deploy.files import (
    DEPLOY,
    K8S,
    check_invocation,
    cvfl_calls_in_shell,
    dockerfiles,
    find,
    load_kustomization,
    load_yaml,
    manifest_defines,
    parse_dockerfile,
    render_manifest,
)

ALL_FILES = sorted(p for p in DEPLOY.rglob("*") if p.is_file())


def _kind(path: Path) -> str:
    if path.name == "Dockerfile":
        return "dockerfile"
    if path.name.endswith(".dockerignore"):
        return "dockerignore"
    return {".yaml": "yaml", ".yml": "yaml", ".toml": "job", ".template": "manifest"}.get(
        path.suffix, "unknown"
    )


def test_deploy_folder_is_not_empty() -> None:
    kinds = {_kind(p) for p in ALL_FILES}
    assert {"dockerfile", "yaml", "job", "manifest"} <= kinds


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_file_parses(path: Path) -> None:
    kind = _kind(path)
    assert kind != "unknown", f"{path}: no parser for this kind of file; add one to this test"
    if kind == "dockerfile":
        assert parse_dockerfile(path).instructions
    elif kind == "dockerignore":
        lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
        assert "**/*.key" in lines, f"{path}: sealing keys must never reach the build context"
        assert lines[0] == "**", f"{path}: start from nothing and list what the build needs"
    elif kind == "yaml":
        docs = load_yaml(path)
        assert docs and all(isinstance(d, dict) for d in docs), path
    elif kind == "job":
        # A job file that does not load is a failure (cvfl train would refuse it the same way).
        job = load_job(path)
        assert job.role in ("leader", "follower")
    else:
        (dockerfile,) = [p for p in dockerfiles() if p.parent == path.parent]
        assert render_manifest(path, manifest_defines(parse_dockerfile(dockerfile)))


def _compose_calls() -> list[tuple[str, list[str]]]:
    (compose,) = load_yaml(DEPLOY / "compose.yaml")
    calls = []
    for name, service in compose["services"].items():
        entrypoint = service.get("entrypoint", ["cvfl"])
        command = service.get("command", [])
        if entrypoint == ["cvfl"]:
            calls.append((f"compose {name}", command))
        elif entrypoint == ["/bin/sh", "-c"]:
            (script,) = command
            found = cvfl_calls_in_shell(script)
            assert found, f"compose {name}: its script runs no cvfl command"
            calls.extend((f"compose {name}", argv) for argv in found)
        else:
            pytest.fail(f"compose {name}: unexpected entrypoint {entrypoint}")
    return calls


def _k8s_calls() -> list[tuple[str, list[str]]]:
    base = load_kustomization(K8S / "base")
    calls = []
    for sts in find(base.objects, "StatefulSet"):
        spec = sts["spec"]["template"]["spec"]
        for container in spec["containers"]:
            if "command" not in container:  # the image's entrypoint: cvfl
                calls.append((f"k8s {container['name']}", container["args"]))
    return calls


def _dockerfile_calls() -> list[tuple[str, list[str]]]:
    calls = []
    for path in dockerfiles():
        parsed = parse_dockerfile(path)
        entry = [i for i in parsed.stage(-1) if i.keyword == "ENTRYPOINT"]
        cmd = [i for i in parsed.stage(-1) if i.keyword == "CMD"]
        if entry and entry[-1].exec_form() == ["cvfl"] and cmd:
            calls.append((str(path.relative_to(DEPLOY)), cmd[-1].exec_form() or []))
    return calls


def _gramine_calls() -> list[tuple[str, list[str]]]:
    path = DEPLOY / "gramine" / "Dockerfile"
    manifest = render_manifest(
        DEPLOY / "gramine" / "cvfl.manifest.template", manifest_defines(parse_dockerfile(path))
    )
    argv = manifest["loader"]["argv"]
    assert argv[1:4] == ["-m", "cvfl", "run"], f"the enclave must run `cvfl run`: {argv}"
    return [("gramine manifest", argv[3:])]


def all_cvfl_calls() -> list[tuple[str, list[str]]]:
    """Every cvfl command line the deployment files run."""
    return _compose_calls() + _k8s_calls() + _dockerfile_calls() + _gramine_calls()


def test_deployment_runs_cvfl_commands() -> None:
    paths = {" ".join(check_invocation(argv)) for _, argv in all_cvfl_calls()}
    assert {"run", "data synth", "keys new"} <= paths


@pytest.mark.parametrize("where,argv", all_cvfl_calls(), ids=str)
def test_every_cvfl_command_and_option_exists(where: str, argv: list[str]) -> None:
    check_invocation(argv)


def test_cli_checker_refuses_unknown_commands_and_options() -> None:
    with pytest.raises(AssertionError, match="no sub-command"):
        check_invocation(["trian", "--config", "x"])
    with pytest.raises(AssertionError, match="no option"):
        check_invocation(["train", "--configs", "x"])
    with pytest.raises(AssertionError, match="no sub-command"):
        check_invocation(["data", "synthesize"])
    assert check_invocation(["data", "synth", "--no-shuffle"]) == ["data", "synth"]
