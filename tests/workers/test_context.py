"""context_from_env: torchrun/Kubernetes variables, each invalid one named with expected/seen."""

from __future__ import annotations

import pytest

from cvfl.errors import ConfigError
from cvfl.workers import WorkerContext, context_from_env

GOOD = {"RANK": "1", "WORLD_SIZE": "3", "MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "29500"}


def test_absent_means_no_group() -> None:
    assert context_from_env({}) is None
    assert context_from_env({"MASTER_ADDR": "x", "MASTER_PORT": "1"}) is None


def test_valid_with_default_enrol_port() -> None:
    ctx = context_from_env(GOOD)
    assert ctx == WorkerContext(1, 3, "10.0.0.5", 29500, 29501)
    assert not ctx.is_root
    assert ctx.enrol_bind_address == "0.0.0.0:29501"
    assert ctx.enrol_target == "10.0.0.5:29501"


def test_valid_explicit_enrol_port_and_loopback() -> None:
    ctx = context_from_env(
        {**GOOD, "RANK": "0", "MASTER_ADDR": "localhost", "CVFL_ENROL_PORT": " 4000 "}
    )
    assert ctx is not None and ctx.is_root and ctx.enrol_port == 4000
    assert ctx.enrol_bind_address == "127.0.0.1:4000"
    for host in ("127.0.0.1", "127.1.2.3", "::1", "LOCALHOST"):
        assert WorkerContext(0, 2, host, 1000, 1001).loopback
    assert WorkerContext(0, 2, "::1", 1000, 1001).enrol_target == "[::1]:1001"
    assert not WorkerContext(0, 2, "rank0.svc", 1000, 1001).loopback


def test_single_worker() -> None:
    ctx = context_from_env({"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "h", "MASTER_PORT": "5"})
    assert ctx == WorkerContext(0, 1, "h", 5, 6)


BAD = [
    ({"RANK": "3"}, "RANK", "0..2", "seen 3"),
    ({"RANK": "-1"}, "RANK", "0..2", "'-1'"),
    ({"RANK": "one"}, "RANK", "an integer 0..2", "'one'"),
    ({"RANK": None}, "RANK", "an integer 0..2", "unset"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE", "1..4096", "seen 0"),
    ({"WORLD_SIZE": "2.5"}, "WORLD_SIZE", "an integer", "'2.5'"),
    ({"WORLD_SIZE": None}, "WORLD_SIZE", "an integer", "unset"),
    ({"MASTER_ADDR": None}, "MASTER_ADDR", "a host name or address", "unset"),
    ({"MASTER_ADDR": " "}, "MASTER_ADDR", "a host name or address", "''"),
    ({"MASTER_ADDR": "a b"}, "MASTER_ADDR", "a host name or address", "'a b'"),
    ({"MASTER_PORT": "0"}, "MASTER_PORT", "1..65535", "seen 0"),
    ({"MASTER_PORT": "70000"}, "MASTER_PORT", "1..65535", "seen 70000"),
    ({"MASTER_PORT": "http"}, "MASTER_PORT", "a port 1..65535", "'http'"),
    ({"MASTER_PORT": None}, "MASTER_PORT", "a port", "unset"),
    ({"CVFL_ENROL_PORT": "65536"}, "CVFL_ENROL_PORT", "1..65535", "seen 65536"),
    ({"CVFL_ENROL_PORT": "x"}, "CVFL_ENROL_PORT", "a port", "'x'"),
    ({"CVFL_ENROL_PORT": "29500"}, "CVFL_ENROL_PORT", "other than MASTER_PORT 29500", "29500"),
    ({"MASTER_PORT": "65535"}, "CVFL_ENROL_PORT", "set explicitly", "unset"),
]


@pytest.mark.parametrize(("changes", "name", "expected", "seen"), BAD)
def test_each_invalid_variable_is_named(
    changes: dict[str, str | None], name: str, expected: str, seen: str
) -> None:
    env = {**GOOD}
    for key, value in changes.items():
        if value is None:
            env.pop(key)
        else:
            env[key] = value
    with pytest.raises(ConfigError) as info:
        context_from_env(env)
    assert info.value.code == "workers.env"
    message = info.value.message
    assert message.startswith(f"{name}: expected"), message
    assert expected in message and seen in message, message
