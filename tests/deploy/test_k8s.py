"""deploy/k8s: one party's workers, the scale-out environment, ports, mounts and security."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from cvfl.train.config import JobConfig, load_job
from cvfl.workers.context import context_from_env
from tests.deploy.files import (
    K8S,
    POD_INDEX_LABEL,
    Kustomization,
    env_of,
    find,
    job_paths,
    load_kustomization,
    load_yaml,
    parse_dockerfile,
    replicas,
    under,
)

ROLES = ("leader", "follower")
OVERLAYS = [K8S / role for role in ROLES]


@pytest.fixture(scope="module", params=ROLES)
def party(request: pytest.FixtureRequest) -> tuple[str, Kustomization]:
    role: str = request.param
    return role, load_kustomization(K8S / role)


def _sts(kust: Kustomization) -> dict[str, Any]:
    (sts,) = find(kust.objects, "StatefulSet")
    return sts


def _worker(sts: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = sts["spec"]["template"]["spec"]["containers"]
    (container,) = [c for c in containers if c["name"] == "cvfl"]
    return container


def _job_file(kust: Kustomization) -> Path:
    """The job file the overlay's ConfigMap cvfl-job is generated from."""
    (gen,) = [g for g in kust.spec["configMapGenerator"] if g["name"] == "cvfl-job"]
    (entry,) = gen["files"]
    name: str = entry.split("=")[-1]
    return kust.folder / name


def _job(kust: Kustomization) -> JobConfig:
    return load_job(_job_file(kust))


def _mounts(sts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Mount path -> {volume, readOnly} of the worker container."""
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    out = {}
    for mount in _worker(sts)["volumeMounts"]:
        out[mount["mountPath"]] = {
            "volume": volumes[mount["name"]],
            "readOnly": mount.get("readOnly", False),
        }
    return out


def _mount_of(path: Path, mounts: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    found = [(t, m) for t, m in mounts.items() if under(path, t)]
    assert found, f"{path} is not under any mounted path ({sorted(mounts)})"
    return max(found, key=lambda item: len(item[0]))


def test_overlays_reference_files_that_exist() -> None:
    for folder in [*OVERLAYS, K8S / "base", K8S / "components" / "sgx"]:
        spec = load_yaml(folder / "kustomization.yaml")[0]
        listed = [*spec.get("resources", []), *spec.get("components", [])]
        listed += [p["path"] for p in spec.get("patches", []) if "path" in p]
        listed += [f.split("=")[-1] for g in spec.get("configMapGenerator", []) for f in g["files"]]
        for entry in listed:
            assert (folder / entry).exists(), f"{folder}: {entry} does not exist"


def test_overlay_patches_target_objects_of_the_base(party: tuple[str, Kustomization]) -> None:
    _, kust = party
    for entry in kust.spec.get("patches", []):
        for patch in load_yaml(kust.folder / entry["path"]):
            name = patch["metadata"]["name"]
            assert find(kust.objects, patch["kind"], name), f"patch for missing {name}"


def test_job_file_is_mounted_where_the_worker_reads_it(party: tuple[str, Kustomization]) -> None:
    role, kust = party
    sts = _sts(kust)
    worker = _worker(sts)
    assert "command" not in worker, "the image's entrypoint (cvfl) runs"
    assert worker["args"][0] == "run", "every worker runs the job's steps, as the enclave does"
    config = worker["args"][worker["args"].index("--config") + 1]
    _, mount = _mount_of(Path(config), _mounts(sts))
    assert mount["readOnly"]
    assert mount["volume"]["configMap"]["name"] == "cvfl-job"
    assert Path(config).name == _job_file(kust).name
    assert _job(kust).role == role
    assert "align" not in _job(kust).job.steps, "each worker pod would align: once per party"


def test_every_job_path_is_mounted(party: tuple[str, Kustomization]) -> None:
    _, kust = party
    job, sts = _job(kust), _sts(kust)
    mounts = _mounts(sts)
    paths = job_paths(job)
    assert {"job.workdir", "data.path", "sealing.key_file"} <= set(paths)
    for path in paths.values():
        _mount_of(path, mounts)
    _, work = _mount_of(job.job.workdir, mounts)
    assert not work["readOnly"], "the workdir must be writable"
    claim_name = work["volume"]["persistentVolumeClaim"]["claimName"]
    (claim,) = find(kust.objects, "PersistentVolumeClaim", claim_name)
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "all workers share the workdir"


def test_sealing_key_comes_from_a_secret_read_only(party: tuple[str, Kustomization]) -> None:
    _, kust = party
    job, sts = _job(kust), _sts(kust)
    spec = sts["spec"]["template"]["spec"]
    assert job.sealing is not None and job.sealing.key_file is not None
    _, keys = _mount_of(job.sealing.key_file, _mounts(sts))
    assert keys["readOnly"]
    assert keys["volume"]["emptyDir"]["medium"] == "Memory", "the key never touches a disk"
    (init,) = spec["initContainers"]
    secret_volumes = {v["name"]: v for v in spec["volumes"] if "secret" in v}
    init_mounts = {m["name"]: m for m in init["volumeMounts"]}
    (secret_name,) = [n for n in init_mounts if n in secret_volumes]
    assert init_mounts[secret_name].get("readOnly") is True
    # The copy is mode 0600, owned by the worker's user, into the worker's key volume.
    source, dest = init["command"][-2:]
    assert init["command"][:3] == ["install", "-m", "0600"]
    assert source.startswith(init_mounts[secret_name]["mountPath"] + "/")
    assert Path(dest) == job.sealing.key_file
    assert [m for m in init["volumeMounts"] if m["name"] == keys["volume"]["name"]]


def test_statefulset_environment_gives_every_worker_its_context(
    party: tuple[str, Kustomization],
) -> None:
    _, kust = party
    sts = _sts(kust)
    env = env_of(_worker(sts))
    field = env["RANK"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert field == f"metadata.labels['{POD_INDEX_LABEL}']"
    count = replicas(kust, sts["metadata"]["name"])
    job = _job(kust)
    for index in range(count):
        # What the kubelet gives pod <index>; cvfl reads it exactly as it will in the pod.
        values = {k: v["value"] for k, v in env.items() if "value" in v}
        values["RANK"] = str(index)
        context = context_from_env(values)
        assert context is not None
        assert context.rank == index
        assert context.world_size == count == job.train.workers
        assert context.master_addr == f"{sts['metadata']['name']}-0.{sts['spec']['serviceName']}"


def test_headless_service_serves_rank_0s_ports(party: tuple[str, Kustomization]) -> None:
    _, kust = party
    sts = _sts(kust)
    (svc,) = find(kust.objects, "Service", sts["spec"]["serviceName"])
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    values = {k: v["value"] for k, v in env_of(_worker(sts)).items() if "value" in v}
    context = context_from_env({**values, "RANK": "0"})
    assert context is not None
    ports = {p["port"] for p in svc["spec"]["ports"]}
    assert ports == {context.master_port, context.enrol_port}
    container_ports = {p["containerPort"] for p in _worker(sts)["ports"]}
    assert {context.master_port, context.enrol_port} <= container_ports


def test_leader_exposes_port_listen_plus_i_of_worker_i() -> None:
    kust = load_kustomization(K8S / "leader")
    job, sts = _job(kust), _sts(kust)
    listen = int(job.peer.listen.rsplit(":", 1)[1])
    count = replicas(kust, sts["metadata"]["name"])
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    exposed = {}
    for svc in find(kust.objects, "Service"):
        if svc["spec"].get("clusterIP") == "None":
            continue
        selector = dict(svc["spec"]["selector"])
        index = int(selector.pop(POD_INDEX_LABEL))
        assert selector.items() <= pod_labels.items()
        (port,) = svc["spec"]["ports"]
        assert port["port"] == port["targetPort"]
        exposed[index] = port["port"]
    assert exposed == {i: listen + i for i in range(count)}
    patch = load_yaml(K8S / "leader" / "patch-peer-ports.yaml")[0]
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    assert {p["containerPort"] for p in container["ports"]} == set(exposed.values())


def test_follower_exposes_nothing_and_dials_the_leaders_port() -> None:
    follower = load_kustomization(K8S / "follower")
    leader = _job(load_kustomization(K8S / "leader"))
    assert [s["metadata"]["name"] for s in find(follower.objects, "Service")] == ["cvfl-workers"]
    job = _job(follower)
    assert job.peer.connect.rsplit(":", 1)[1] == leader.peer.listen.rsplit(":", 1)[1]
    assert job.train.workers == leader.train.workers


def test_pods_run_non_root_with_a_read_only_root(party: tuple[str, Kustomization]) -> None:
    _, kust = party
    spec = _sts(kust)["spec"]["template"]["spec"]
    uid = int(parse_dockerfile(K8S.parent / "Dockerfile").args_in_stage(-1)["CVFL_UID"])
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == uid != 0
    assert spec["automountServiceAccountToken"] is False
    for container in [*spec["containers"], *spec.get("initContainers", [])]:
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True, container["name"]
        assert ctx["allowPrivilegeEscalation"] is False, container["name"]
        assert ctx["capabilities"]["drop"] == ["ALL"], container["name"]
        assert container["resources"]["requests"] and container["resources"]["limits"]
    tmp = _mount_of(Path("/tmp"), _mounts(_sts(kust)))[1]
    assert "emptyDir" in tmp["volume"], "a writable /tmp on a read-only root"


def test_sgx_component_requests_the_device_plugin_resources() -> None:
    folder = K8S / "components" / "sgx"
    spec = load_yaml(folder / "kustomization.yaml")[0]
    assert spec["kind"] == "Component"
    (patch,) = [load_yaml(folder / p["path"])[0] for p in spec["patches"] if "path" in p]
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    limits = container["resources"]["limits"]
    for name in ("sgx.intel.com/epc", "sgx.intel.com/enclave", "sgx.intel.com/provision"):
        assert name in limits, name
    epc = limits["sgx.intel.com/epc"]
    template = (K8S.parent / "gramine" / "Dockerfile").read_text()
    size = re.search(r"ARG ENCLAVE_SIZE=(\d+)G", template)
    assert size and epc == f"{size.group(1)}Gi", "EPC request matches the enclave size"
    for overlay in OVERLAYS:
        text = (overlay / "kustomization.yaml").read_text()
        assert "../components/sgx" in text, f"{overlay.name} shows how to enable SGX"
