"""cvfl.api: a stop on one side tells the other, factories by import path, refusals."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from cvfl import api
from cvfl.errors import ConfigError, CvflError, PeerStoppedError
from cvfl.models.spec import ModelSpec
from cvfl.train import NoProgress
from cvfl.train.party import load_party
from cvfl.train.stop import STOPPED

from .jobs import mapping, pair, tables
from .models import FollowerNet


def test_a_follower_stopped_on_request_tells_the_leader(tmp_path: Path) -> None:
    leader, follower = pair(tmp_path, "one-side")
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def run(job: Any, **options: Any) -> None:
        try:
            outcome[job.role] = api.train(job, **options)
        except BaseException as exc:
            outcome[job.role] = exc

    def progress(step: int, total: int, loss: float | None) -> None:
        assert loss is None  # the follower never sees the loss
        if step == 7:
            stop.set()

    threads = [
        threading.Thread(target=run, args=(leader,)),
        threading.Thread(target=run, args=(follower,), kwargs={"progress": progress, "stop": stop}),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    mine, theirs = outcome["follower"], outcome["leader"]
    assert isinstance(mine, CvflError) and mine.code == STOPPED
    assert isinstance(theirs, PeerStoppedError) and theirs.code == STOPPED
    assert "the follower stopped: [train.stopped]" in theirs.message
    from cvfl.train.party import checkpoint_store

    for cfg in (leader, follower):  # step 5 is committed on both sides (each holds the peer's)
        store = checkpoint_store(load_party(cfg))
        assert {s.step for s in store.inventory() if s.peer_digest} == {5}


def test_a_progress_object_is_used_as_it_is(tmp_path: Path) -> None:
    class Count(NoProgress):
        def __init__(self) -> None:
            self.steps: list[int] = []

        def step(self, number: int, loss: float | None) -> None:
            self.steps.append(number)

    shown = Count()
    result = api.run_local(*pair(tmp_path, "count"), progress=shown)
    assert shown.steps == list(range(1, 21)) and result.leader.steps == 20


def nested_factory() -> Any:
    def follower(spec: ModelSpec, num_features: int) -> nn.Module:
        return nn.Linear(num_features, spec.cut_width)

    return follower


@pytest.mark.parametrize("factory", [lambda spec, n: nn.Linear(n, 2), nested_factory()])
def test_factories_without_an_import_path_are_refused(factory: Any) -> None:
    with pytest.raises(ConfigError, match="module-level function or class") as info:
        api.factory_path(factory)
    assert info.value.code == "config.model"


def test_factories_are_recorded_by_import_path() -> None:
    assert api.factory_path(FollowerNet) == "tests.api.models:FollowerNet"
    assert api.factory_path("pkg.mod:fn") == "pkg.mod:fn"


def test_run_local_refuses_swapped_roles_and_remote_peers(tmp_path: Path) -> None:
    leader, follower = pair(tmp_path, "refused")
    with pytest.raises(ConfigError, match="leader_job: \\[job\\] role: expected leader"):
        api.run_local(follower, leader)
    raw = mapping("follower", tables()[1], "remote-follower", 7788)
    raw["peer"]["connect"] = "10.0.0.1:7788"
    remote = api.build_job(raw, tmp_path)
    with pytest.raises(ConfigError, match=r"a loopback address, seen 10\.0\.0\.1") as info:
        api.run_local(leader, remote)
    assert info.value.code == "config.peer"


def test_train_refuses_several_workers(tmp_path: Path) -> None:
    leader, _ = pair(tmp_path, "workers")
    many = replace(leader, train=replace(leader.train, workers=2))
    with pytest.raises(ConfigError, match="1 \\(several workers: `cvfl train`") as info:
        api.train(many)
    assert info.value.code == "config.train"


def test_as_job_loads_a_path_and_refuses_other_things(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        api.as_job(tmp_path / "missing.toml")
    assert info.value.code == "config.missing_file"
    with pytest.raises(TypeError, match="JobConfig or a job file's path"):
        api.as_job(42)  # type: ignore[arg-type]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    role=st.one_of(st.text(max_size=12), st.sampled_from(["leader", "follower"]), st.none()),
    table=st.one_of(st.integers(), st.text(max_size=8), st.none()),
)
def test_build_job_refuses_bad_roles_and_tables_with_config_errors(
    tmp_path: Path, role: Any, table: Any
) -> None:
    raw = mapping("leader", "leader.parquet", "fuzz", 7788)
    raw["job"]["role"] = role
    raw["data"]["path"] = table
    try:
        cfg = api.build_job(raw, tmp_path)
    except ConfigError:
        return
    assert cfg.role in ("leader", "follower") and isinstance(table, str)
    assert cfg.data.path == tmp_path / table


def test_a_table_folder_others_may_read_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "open-leader" / "tables"
    folder.mkdir(parents=True)
    folder.chmod(0o755)
    with pytest.raises(ConfigError, match="no access for group or others") as info:
        pair(tmp_path, "open")
    assert info.value.code == "config.data"
    assert not list(folder.iterdir())  # nothing was written there
