"""The container images: pinned bases, non-root, no keys baked in; the Gramine manifest."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import PurePosixPath
from typing import Any

import pytest

from cvfl.train.config import load_job
from tests.deploy.files import (
    DEPLOY,
    REPO,
    Dockerfile,
    dockerfiles,
    job_paths,
    manifest_defines,
    parse_dockerfile,
    render_manifest,
    render_manifest_text,
    under,
)

BASE = DEPLOY / "Dockerfile"
GRAMINE = DEPLOY / "gramine" / "Dockerfile"
TEMPLATE = DEPLOY / "gramine" / "cvfl.manifest.template"
PINNED_TAG = re.compile(r"^[^:@\s]+:\d+\.\d+(\.\d+)?[-\w.]*(@sha256:[0-9a-f]{64})?$")
ENV_PAIR = re.compile(r'(\w+)=("[^"]*"|\S+)')


def _final_user(parsed: Dockerfile) -> str:
    users = [i.args for i in parsed.stage(-1) if i.keyword == "USER"]
    assert users, f"{parsed.path}: the final stage sets no USER (it would run as root)"
    return users[-1]


def _env(parsed: Dockerfile) -> dict[str, str]:
    values: dict[str, str] = {}
    for ins in parsed.stage(-1):
        if ins.keyword == "ENV":
            values.update((k, v.strip('"')) for k, v in ENV_PAIR.findall(ins.args))
    return values


def _runs(parsed: Dockerfile, stage: int) -> list[str]:
    return [parsed.expand(i.args, stage) for i in parsed.stage(stage) if i.keyword == "RUN"]


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_base_images_are_pinned(path: Any) -> None:
    parsed = parse_dockerfile(path)
    aliases: set[str] = set()
    for image, alias in parsed.froms():
        if image not in aliases:
            assert PINNED_TAG.match(image), f"{path}: base image {image!r} is not pinned"
            assert not image.endswith(":latest"), image
        if alias:
            aliases.add(alias)


def test_python_base_is_311_slim_bookworm() -> None:
    images = {image for image, _ in parse_dockerfile(BASE).froms()}
    assert len(images) == 1, f"builder and final stage must share one base: {images}"
    (image,) = images
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image


def test_base_image_is_multi_stage_with_slim_final_stage() -> None:
    parsed = parse_dockerfile(BASE)
    froms = parsed.froms()
    assert len(froms) >= 2 and froms[0][1], "a named builder stage, then the final stage"
    copies = [i.args for i in parsed.stage(-1) if i.keyword == "COPY"]
    assert any(f"--from={froms[0][1]}" in c for c in copies), "the final stage copies the venv"
    assert not any(i.keyword == "RUN" and "pip install" in i.args for i in parsed.stage(-1))


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_runs_as_a_fixed_non_root_user(path: Any) -> None:
    user = _final_user(parse_dockerfile(path)).split(":")
    assert all(part.isdigit() for part in user), f"{path}: USER must be numeric, seen {user}"
    assert int(user[0]) != 0 and int(user[-1]) != 0


def test_user_is_the_one_the_base_image_creates() -> None:
    parsed = parse_dockerfile(BASE)
    uid = parsed.args_in_stage(-1)["CVFL_UID"]
    creates = " ".join(_runs(parsed, -1))
    assert f"--uid {uid}" in creates and f"--gid {uid}" in creates
    assert _final_user(parsed) == f"{uid}:{uid}"
    assert _final_user(parse_dockerfile(GRAMINE)).split(":")[0] == uid


def test_entrypoint_workdir_and_environment() -> None:
    parsed = parse_dockerfile(BASE)
    (entry,) = [i for i in parsed.stage(-1) if i.keyword == "ENTRYPOINT"]
    assert entry.exec_form() == ["cvfl"]
    workdirs = [i.args for i in parsed.stage(-1) if i.keyword == "WORKDIR"]
    assert workdirs[-1] == "/work"
    env = _env(parsed)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert env["PATH"].startswith(_venv(parsed) + "/bin")
    assert not any(i.keyword == "HEALTHCHECK" for i in parsed.instructions)
    assert "HEALTHCHECK" in BASE.read_text(), "say in a comment why there is no health check"


def _venv(parsed: Dockerfile) -> str:
    (make,) = [r for r in _runs(parsed, 0) if " -m venv " in r]
    return shlex.split(make)[-1]


def test_torch_is_the_pinned_cpu_build_and_cvfl_comes_from_pyproject() -> None:
    parsed = parse_dockerfile(BASE)
    runs = " ".join(_runs(parsed, 0))
    # torch==2.13.0 is pinned, with its hash, in the lock the image installs (tests/deploy/
    # test_locks.py); PyTorch's CPU index is where the image finds that CPU build.
    assert "-r requirements/runtime.lock" in runs
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in runs
    lock = (REPO / "requirements" / "runtime.lock").read_text()
    assert re.search(r"^torch==2\.13\.0 ", lock, re.M)
    copied = {i.args.split()[0] for i in parsed.stage(0) if i.keyword == "COPY"}
    assert "pyproject.toml" in copied and "src" in copied
    assert (REPO / "pyproject.toml").exists() and (REPO / "src" / "cvfl").is_dir()
    # The Makefile installs the same torch the image does, from the development lock.
    dev = (REPO / "requirements" / "dev.lock").read_text()
    assert (
        re.search(r"^torch==2\.13\.0 ", dev, re.M)
        and "requirements/dev.lock" in (REPO / "Makefile").read_text()
    )


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_no_keys_are_baked_in(path: Any) -> None:
    parsed = parse_dockerfile(path)
    for ins in parsed.instructions:
        if ins.keyword in ("COPY", "ADD"):
            sources = [w for w in ins.args.split()[:-1] if not w.startswith("--")]
            for source in sources:
                assert not re.search(r"\.(key|pem)$|keys?/", source), f"{path}: copies {source}"
        if ins.keyword in ("ENV", "ARG"):
            assert not re.search(r"KEY\s*=\s*\S{16,}", ins.args), f"{path}: a key in {ins.args}"
        if ins.keyword == "RUN" and "--key" in ins.args:
            assert "--mount=type=secret" in ins.args, f"{path}: a signing key outside a secret"


# ---- the Gramine variant ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def gramine() -> Dockerfile:
    return parse_dockerfile(GRAMINE)


@pytest.fixture(scope="module")
def manifest(gramine: Dockerfile) -> dict[str, Any]:
    return render_manifest(TEMPLATE, manifest_defines(gramine))


def test_gramine_stage_builds_on_the_base_image(gramine: Dockerfile) -> None:
    (image, _), *_ = gramine.froms()
    assert image.split(":")[0] == "cvfl"
    assert image.split(":")[1] == _project_version()


def _project_version() -> str:
    text = (REPO / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"', text, re.M)
    assert match
    return match.group(1)


def test_gramine_is_pinned_from_its_apt_repository(gramine: Dockerfile) -> None:
    runs = " ".join(_runs(gramine, -1))
    assert "https://packages.gramineproject.io/" in runs
    assert "signed-by=" in runs
    match = re.search(r"\bgramine=(\S+)", runs.replace('"', ""))
    assert match and re.fullmatch(r"\d+\.\d+(\.\d+)?", match.group(1)), "apt install gramine=X.Y"


def test_manifest_entrypoint_is_the_venv_python_the_base_image_makes(
    manifest: dict[str, Any],
) -> None:
    venv = _venv(parse_dockerfile(BASE))
    assert "--copies" in " ".join(_runs(parse_dockerfile(BASE), 0)), "a real file, not a symlink"
    assert manifest["libos"]["entrypoint"] == f"{venv}/bin/python"
    assert manifest["loader"]["entrypoint"]["uri"].startswith("file:")
    assert manifest["loader"]["argv"][0] == manifest["libos"]["entrypoint"]
    assert "insecure__use_cmdline_argv" not in manifest["loader"]
    mounts = {m["path"]: m for m in manifest["fs"]["mounts"]}
    assert mounts[venv]["uri"] == f"file:{venv}"


def test_manifest_is_production_sgx_with_dcap(manifest: dict[str, Any]) -> None:
    sgx = manifest["sgx"]
    assert sgx["remote_attestation"] == "dcap"
    assert sgx["debug"] is False
    assert isinstance(sgx["max_threads"], int) and sgx["max_threads"] > 0
    assert re.fullmatch(r"\d+[GM]", sgx["enclave_size"])


def test_trusted_files_are_code_only_and_the_job_folder_is_an_allowed_input(
    manifest: dict[str, Any], gramine: Dockerfile
) -> None:
    defines = manifest_defines(gramine)
    job_dir = defines["job_dir"]
    trusted = manifest["sgx"]["trusted_files"]
    for root in (f"{defines['python_prefix']}/lib/", f"{defines['venv']}/"):
        assert f"file:{root}" in trusted, root
    for uri in trusted:
        path = uri.removeprefix("file:")
        assert not under(path, job_dir) and not under(job_dir, path), (
            f"{uri} would measure the job folder {job_dir}"
        )
    # The job folder, and nothing else, is read unmeasured: everything else the enclave reads is
    # measured code or authenticated-encrypted data.
    assert manifest["sgx"]["allowed_files"] == [f"file:{job_dir}/"]
    mounts = {m["path"]: m for m in manifest["fs"]["mounts"]}
    argv = manifest["loader"]["argv"]
    config = PurePosixPath(argv[argv.index("--config") + 1])
    (job_mount,) = [p for p in mounts if under(config, p)]
    assert mounts[job_mount]["uri"] == f"file:{job_dir}"
    assert mounts[job_mount].get("type") is None, "a plain (host) mount: the operator writes it"


def test_enclave_runs_the_one_entrypoint(manifest: dict[str, Any]) -> None:
    argv = manifest["loader"]["argv"]
    assert argv[1:] == ["-m", "cvfl", "run", "--config", "/etc/cvfl/job.toml"]
    # Imports come from measured files only, never from the working directory.
    assert manifest["loader"]["env"]["PYTHONSAFEPATH"] == "1"


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_a_party_build_passes_nothing_role_specific(role: str, gramine: Dockerfile) -> None:
    text = GRAMINE.read_text()
    assert "deploy/gramine/jobs" not in text, "no job file is copied into the image"
    for ins in gramine.instructions:
        if ins.keyword in ("ARG", "COPY", "ADD"):
            assert not re.search(r"ROLE|leader|follower", ins.args, re.I), ins.args


def test_leader_and_follower_builds_render_the_same_manifest(gramine: Dockerfile) -> None:
    """Whatever each party passes to its build (its role, say), the manifest is byte-identical."""
    rendered = {
        role: render_manifest_text(
            TEMPLATE, manifest_defines(gramine, {"ROLE": role, "PARTY": role})
        )
        for role in ("leader", "follower")
    }
    assert rendered["leader"] == rendered["follower"]
    settings = [ln for ln in rendered["leader"].splitlines() if not ln.lstrip().startswith("#")]
    assert not re.search(r"leader|follower", "\n".join(settings))
    manifest = tomllib.loads(rendered["leader"])
    job_dir = manifest_defines(gramine)["job_dir"]
    assert not [u for u in manifest["sgx"]["trusted_files"] if under(u[len("file:") :], job_dir)]
    # A build argument that does change the manifest is seen by this comparison.
    other = render_manifest_text(TEMPLATE, manifest_defines(gramine, {"ENCLAVE_SIZE": "8G"}))
    assert other != rendered["leader"]


def test_venv_holds_no_bytecode() -> None:
    """A .pyc records its source's mtime: two builds of one commit would measure differently."""
    parsed = parse_dockerfile(BASE)
    assert _env_of_stage(parsed, 0).get("PIP_NO_COMPILE") == "1"
    runs = " ".join(_runs(parsed, 0))
    assert "-name __pycache__" in runs and "-name '*.pyc'" in runs


def _env_of_stage(parsed: Dockerfile, stage: int) -> dict[str, str]:
    values: dict[str, str] = {}
    for ins in parsed.stage(stage):
        if ins.keyword == "ENV":
            values.update((k, v.strip('"')) for k, v in ENV_PAIR.findall(ins.args))
    return values


def test_data_and_workdir_are_encrypted_mounts(manifest: dict[str, Any]) -> None:
    mounts = {m["path"]: m for m in manifest["fs"]["mounts"]}
    for path in ("/data", "/work"):
        assert mounts[path].get("type") == "encrypted", path
        assert mounts[path]["key_name"], path
    assert manifest["fs"]["start_dir"] == "/work"
    assert "insecure__keys" not in manifest["fs"]


def test_workers_environment_passes_through(manifest: dict[str, Any]) -> None:
    env = manifest["loader"]["env"]
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "CVFL_ENROL_PORT"):
        assert env[name] == {"passthrough": True}, name
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_gramine_job_fits_the_enclave(role: str, manifest: dict[str, Any]) -> None:
    job = load_job(DEPLOY / "gramine" / "jobs" / f"{role}.toml")
    assert job.role == role
    assert job.job.steps == ("align", "train"), "the enclave aligns, then trains"
    assert job.attestation is not None and job.attestation.provider == "gramine"
    assert not job.attestation.policy.allow_simulated
    mounts = {m["path"]: m for m in manifest["fs"]["mounts"]}
    paths = job_paths(job)
    assert {"job.workdir", "data.path", "psi.output"} <= set(paths)
    for path in paths.values():
        assert any(under(path, p) and m.get("type") == "encrypted" for p, m in mounts.items()), (
            f"{path} is not under an encrypted mount"
        )
    # One key, one use: cvfl's own sealing key differs from the encrypted /work mount's, and it
    # is bound to the enclave's code (mrenclave), not to whoever signed it.
    assert job.sealing is not None and job.sealing.provider == "gramine"
    assert job.sealing.gramine_key == "mrenclave"
    assert f"_sgx_{job.sealing.gramine_key}" != mounts["/work"]["key_name"]


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_gramine_job_pins_the_same_enclave_and_the_peers_terms(role: str) -> None:
    """Checked on the TOML itself, so it holds whatever the loader's version accepts."""
    raw = tomllib.loads((DEPLOY / "gramine" / "jobs" / f"{role}.toml").read_text())
    policy = raw["attestation"]["policy"]
    assert policy["allowed_tcb_statuses"] == ["UpToDate"]
    assert policy["identities"] == [{"same_as_self": True}], "no mr_signer-only identity"
    assert policy["peer"] == {
        "sealing": ["gramine"],
        "plaintext_outputs": False,
        "psi_modes": ["ecdh"],
    }
