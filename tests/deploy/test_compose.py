"""deploy/compose.yaml: both parties, their own keys and workdirs, paths that are mounted."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from cvfl.attestation.simulated import SIM_MR_SIGNER
from cvfl.train.config import JobConfig, load_job
from tests.deploy.files import (
    DEPLOY,
    cvfl_calls_in_shell,
    job_paths,
    load_yaml,
    option_value,
    parse_dockerfile,
    under,
)

ROLES = ("leader", "follower")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    docs: list[dict[str, Any]] = load_yaml(DEPLOY / "compose.yaml")
    (doc,) = docs
    return doc


def _mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Container path -> (source, read-only) for a service's short-syntax volumes and tmpfs."""
    out = {}
    for entry in service.get("volumes", []):
        source, target, *mode = entry.split(":")
        out[target] = (source, "ro" in mode)
    for target in service.get("tmpfs", []):
        out[target] = ("tmpfs", False)
    return out


def _job(compose: dict[str, Any], role: str) -> tuple[JobConfig, dict[str, tuple[str, bool]]]:
    service = compose["services"][role]
    config = option_value(service["command"], "--config")
    mounts = _mounts(service)
    source, read_only = mounts[config]
    assert read_only, "the job file is mounted read-only"
    return load_job(DEPLOY / source), mounts


def _mount_of(path: Path, mounts: dict[str, tuple[str, bool]]) -> tuple[str, tuple[str, bool]]:
    found = [(t, m) for t, m in mounts.items() if under(path, t)]
    assert found, f"{path} is not under any mounted path ({sorted(mounts)})"
    return max(found, key=lambda item: len(item[0]))


@pytest.mark.parametrize("role", ROLES)
def test_party_runs_its_own_job_through_cvfl_run(compose: dict[str, Any], role: str) -> None:
    job, _ = _job(compose, role)
    assert compose["services"][role]["command"][0] == "run"
    assert job.role == role
    assert job.job.steps == ("train",), "the synthetic tables are aligned: train only"


@pytest.mark.parametrize("role", ROLES)
def test_every_job_path_is_mounted(compose: dict[str, Any], role: str) -> None:
    job, mounts = _job(compose, role)
    paths = job_paths(job)
    assert {"job.workdir", "data.path", "sealing.key_file"} <= set(paths)
    for path in paths.values():
        _mount_of(path, mounts)
    target, (_, read_only) = _mount_of(job.job.workdir, mounts)
    assert not read_only, f"the workdir {target} must be writable"


def test_each_party_has_its_own_key_and_workdir_volume(compose: dict[str, Any]) -> None:
    seen: dict[str, str] = {}
    for role in ROLES:
        job, mounts = _job(compose, role)
        assert job.sealing is not None and job.sealing.key_file is not None
        for path in (job.sealing.key_file, job.job.workdir):
            _, (volume, _) = _mount_of(path, mounts)
            assert volume in compose["volumes"], f"{volume} is a named volume"
            assert volume not in seen, f"{volume} is shared by {seen.get(volume)} and {role}"
            seen[volume] = role


def test_data_comes_from_the_synth_service(compose: dict[str, Any]) -> None:
    synth = compose["services"]["synth"]
    assert synth["command"][:2] == ["data", "synth"]
    out = option_value(synth["command"], "--out")
    command = synth["command"]
    fmt = option_value(command, "--format") if "--format" in command else "parquet"
    synth_volume = _mounts(synth)[out][0]
    for role in ROLES:
        job, mounts = _job(compose, role)
        target, (volume, read_only) = _mount_of(job.data.path, mounts)
        assert volume == synth_volume and read_only
        assert PurePosixPath(job.data.path).relative_to(target) == PurePosixPath(f"{role}.{fmt}")
        assert job.psi is None, "the synthetic tables are already aligned"
        assert float(option_value(synth["command"], "--overlap")) == 1.0
        assert "--shuffle" not in synth["command"]
        assert compose["services"][role]["depends_on"]["synth"]["condition"] == (
            "service_completed_successfully"
        )


@pytest.mark.parametrize("role", ROLES)
def test_key_service_writes_the_key_the_job_reads(compose: dict[str, Any], role: str) -> None:
    job, mounts = _job(compose, role)
    service = compose["services"][f"{role}-key"]
    (call,) = cvfl_calls_in_shell(service["command"][0])
    assert call[:2] == ["keys", "new"]
    written = PurePosixPath(call[2])
    assert job.sealing is not None and PurePosixPath(job.sealing.key_file or "") == written
    key_target, (key_volume, _) = _mount_of(Path(written), _mounts(service))
    assert mounts[key_target][0] == key_volume
    assert f"test -f {written}" in service["command"][0], "a second `up` keeps the key"
    deps = compose["services"][role]["depends_on"]
    assert deps[f"{role}-key"]["condition"] == "service_completed_successfully"


def test_parties_agree_on_workers_and_address(compose: dict[str, Any]) -> None:
    leader, _ = _job(compose, "leader")
    follower, _ = _job(compose, "follower")
    assert leader.train.workers == follower.train.workers == 2
    host, port = follower.peer.connect.rsplit(":", 1)
    assert host == "leader" and host in compose["services"]
    assert int(port) == int(leader.peer.listen.rsplit(":", 1)[1])
    assert leader.peer.listen.startswith("0.0.0.0:"), "reachable from the follower's container"
    published = {int(p.split(":")[-1]) for p in compose["services"]["leader"].get("ports", [])}
    assert published == {int(port) + i for i in range(leader.train.workers)}
    assert "leader" in compose["services"]["follower"]["depends_on"]


@pytest.mark.parametrize("role", ROLES)
def test_simulated_tee_is_opted_into_by_name(compose: dict[str, Any], role: str) -> None:
    job, _ = _job(compose, role)
    assert job.attestation is not None and job.attestation.provider == "simulated"
    policy = job.attestation.policy
    assert policy.allow_simulated
    assert [i.mr_signer for i in policy.identities] == [SIM_MR_SIGNER]


def test_services_run_the_image_as_its_non_root_user(compose: dict[str, Any]) -> None:
    dockerfile = parse_dockerfile(DEPLOY / "Dockerfile")
    uid = dockerfile.args_in_stage(-1)["CVFL_UID"]
    for name, service in compose["services"].items():
        assert service["user"] == f"{uid}:{uid}", name
        assert service["image"] == "cvfl:0.1.0", name
        assert service.get("read_only") is True, name
