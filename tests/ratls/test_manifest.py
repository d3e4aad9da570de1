"""The Gramine manifest template renders to valid TOML with the keys an attested run needs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "gramine" / "cvfl.manifest.template"
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
VALUES = {
    "entrypoint": "/usr/bin/python3.11",
    "arch_libdir": "/lib/x86_64-linux-gnu",
    "gramine_runtimedir": "/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc",
    "python_stdlib": "/usr/lib/python3.11",
    "site_packages": "/opt/cvfl/venv/lib/python3.11/site-packages",
    "cvfl_src": "/opt/cvfl/src",
    "job_dir": "/srv/job",
    "data_dir": "/srv/data",
    "output_dir": "/srv/out",
    "role": "leader",
    "log_level": "error",
    "isvprodid": "7",
    "isvsvn": "3",
    "enclave_size": "8G",
    "max_threads": "64",
}


def render(text: str, values: dict[str, str]) -> str:
    """Substitute ``{{ name }}`` placeholders (the subset of Jinja the template uses)."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"no value for placeholder {name!r}")
        return values[name]

    return PLACEHOLDER.sub(sub, text)


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    text = TEMPLATE.read_text(encoding="utf-8")
    assert "{%" not in text, "the template must stay within plain {{ name }} placeholders"
    rendered = render(text, VALUES)
    assert "{{" not in rendered and "}}" not in rendered
    return tomllib.loads(rendered)


def test_every_placeholder_has_a_value() -> None:
    used = set(PLACEHOLDER.findall(TEMPLATE.read_text(encoding="utf-8")))
    assert used == set(VALUES)


def test_runs_cvfl_train_with_a_fixed_command(manifest: dict[str, Any]) -> None:
    assert manifest["libos"]["entrypoint"] == VALUES["entrypoint"]
    argv = manifest["loader"]["argv"]
    assert argv[0] == VALUES["entrypoint"] and "train" in argv
    assert argv[argv.index("--config") + 1] == "/cvfl/job/leader.toml"
    # The command it names exists: `cvfl train --config FILE` (the role comes from the file).
    from typer.testing import CliRunner

    from cvfl.cli.app import _register, app

    _register()
    help_text = CliRunner().invoke(app, ["train", "--help"]).output
    assert "--config" in help_text
    assert "insecure__use_cmdline_argv" not in manifest["loader"]


def test_production_sgx_with_dcap(manifest: dict[str, Any]) -> None:
    sgx = manifest["sgx"]
    assert sgx["remote_attestation"] == "dcap"
    assert sgx["debug"] is False
    assert sgx["isvprodid"] == 7 and sgx["isvsvn"] == 3
    assert sgx["enclave_size"] == "8G" and sgx["max_threads"] == 64


def test_python_and_package_are_trusted(manifest: dict[str, Any]) -> None:
    trusted = manifest["sgx"]["trusted_files"]
    for path in ("entrypoint", "python_stdlib", "site_packages", "cvfl_src", "job_dir"):
        assert any(item.startswith(f"file:{VALUES[path]}") for item in trusted), path
    assert not any(VALUES["output_dir"] in item for item in trusted)


def test_outputs_go_to_an_encrypted_mount_with_a_sealing_key(manifest: dict[str, Any]) -> None:
    mounts = {m["path"]: m for m in manifest["fs"]["mounts"]}
    out = mounts["/cvfl/out"]
    assert out["type"] == "encrypted"
    assert out["uri"] == f"file:{VALUES['output_dir']}"
    assert out["key_name"] in ("_sgx_mrenclave", "_sgx_mrsigner")
    assert "insecure__keys" not in manifest.get("fs", {})
    assert manifest["fs"]["start_dir"] == "/cvfl/out"
