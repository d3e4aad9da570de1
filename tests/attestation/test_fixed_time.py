"""``[attestation] verify_at`` is refused on a live channel unless ``allow_fixed_time = true``.

A fixed verification time silently stops collateral expiry from being checked, so every command
that builds a channel to a live peer from a job (train, predict, align) refuses it, naming the
key; ``allow_fixed_time = true`` allows it with a WARNING. ``cvfl attest verify --at`` (offline
checks of a recorded quote) keeps its fixed time: tests/attestation/test_attest_cli.py.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from cvfl.attestation import AttestationConfig, Policy, check_live_channel
from cvfl.cli.app import main
from cvfl.errors import ConfigError
from cvfl.ratls import RatlsSecurity
from cvfl.train.channel import security_for
from cvfl.train.config import JobConfig, PeerSection

from .conftest import T_VALID

Jobs = Callable[..., tuple[JobConfig, JobConfig]]
SIMULATED = Policy(allow_simulated=True, allow_any_identity=True)


def _fixed(allow: bool) -> AttestationConfig:
    return AttestationConfig(
        provider="simulated", verify_at=T_VALID, allow_fixed_time=allow, policy=SIMULATED
    )


def _refusal(info: pytest.ExceptionInfo[ConfigError]) -> None:
    assert info.value.code == "config.verify_at"
    assert info.value.message.startswith("attestation.verify_at: expected unset on a live channel")
    assert f"seen {T_VALID}" in info.value.message


@pytest.mark.parametrize("value", ["true", "false", 1, 0, None, []])
def test_allow_fixed_time_must_be_a_boolean(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        AttestationConfig.from_toml_table({"allow_fixed_time": value})
    assert "attestation.allow_fixed_time: expected true or false" in info.value.message
    with pytest.raises(ConfigError):
        AttestationConfig(allow_fixed_time=value)  # type: ignore[arg-type]


def test_allow_fixed_time_parses_and_defaults_to_false() -> None:
    assert not AttestationConfig.from_toml_table({}).allow_fixed_time
    table = {"verify_at": T_VALID, "allow_fixed_time": True}
    assert AttestationConfig.from_toml_table(table).allow_fixed_time


def test_live_channel_refuses_a_fixed_time() -> None:
    with pytest.raises(ConfigError) as info:
        check_live_channel(_fixed(allow=False))
    _refusal(info)


def test_allowed_fixed_time_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cvfl"):
        check_live_channel(_fixed(allow=True))
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert "collateral expiry is NOT checked" in warned[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cvfl"):
        check_live_channel(AttestationConfig(provider="simulated", policy=SIMULATED))
    assert not caplog.records  # the clock: nothing to say


def test_train_and_predict_channel_refuse_a_fixed_time(small_job: Jobs) -> None:
    lead, _ = small_job()
    ratls = dataclasses.replace(lead.peer, security="ratls")
    assert isinstance(ratls, PeerSection)
    refused = dataclasses.replace(lead, peer=ratls, attestation=_fixed(allow=False))
    with pytest.raises(ConfigError) as info:
        security_for(refused, "train")
    _refusal(info)
    allowed = dataclasses.replace(refused, attestation=_fixed(allow=True))
    assert isinstance(security_for(allowed, "train"), RatlsSecurity)


def test_cvfl_align_refuses_a_fixed_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "leader.toml").write_text(
        f"""
[job]
id = "j"
role = "leader"

[data]
path = "leader.parquet"

[peer]
listen = "127.0.0.1:0"

[psi]
output = "aligned.parquet"
plaintext_output = true

[attestation]
provider = "simulated"
verify_at = {T_VALID}

[attestation.policy]
allow_simulated = true
allow_any_identity = true
"""
    )
    with pytest.raises(SystemExit) as stop:
        main(["align", "--config", str(tmp_path / "leader.toml")])
    assert stop.value.code == ConfigError.exit_code
    err = capsys.readouterr().err
    assert "[config.verify_at] attestation.verify_at: expected unset on a live channel" in err
    assert not (tmp_path / "aligned.parquet").exists()
