"""A job that seals its outputs reads its export back only sealed (``cvfl predict``).

A plaintext ``<role>.safetensors`` dropped in the workdir — in place of the sealed export, next
to it, or written over it — is refused with a SealingError naming the file; only a job with
``[job] plaintext_outputs = true`` (and no ``[sealing]``) reads a plaintext export.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cvfl.bridge.security import PlaintextSecurity
from cvfl.cli.app import main
from cvfl.errors import ConfigError, SealingError
from cvfl.models.export import export_half, load_half
from cvfl.sealing import Artifacts
from cvfl.serve import prepare_predict
from cvfl.serve.halves import default_export, load_scoring_half
from cvfl.train.config import JobConfig, job_from_mapping
from cvfl.train.party import load_party
from tests.conftest import job_tables, keys_of
from tests.serve.helpers import export_untrained, section

Jobs = Callable[..., tuple[JobConfig, JobConfig]]


def _plaintext_export(cfg: JobConfig, folder: Path) -> Path:
    """Write ``cfg``'s half with the export writer, unsealed, into ``folder``.

    The spec is the sealed export's own, so the plaintext copy passes every other check.
    """
    spec = load_half(default_export(cfg), keys_of(cfg), sealed=True).spec
    weights, _ = export_half(folder, cfg.role, load_party(cfg).model, spec, Artifacts(None))
    return weights


@pytest.fixture
def sealed_leader(small_job: Jobs) -> JobConfig:
    lead, _ = small_job()
    export_untrained(lead)
    assert default_export(lead).name == "leader.safetensors.sealed"
    return lead


def _refused(cfg: JobConfig, tmp: Path) -> SealingError:
    with pytest.raises(SealingError) as info:
        prepare_predict(cfg, section(cfg, tmp), PlaintextSecurity())
    assert info.value.code == "sealing.unexpected_plaintext"
    assert "expected a sealed file, seen a plaintext one" in info.value.message
    return info.value


def test_plaintext_export_instead_of_the_sealed_one_is_refused(
    sealed_leader: JobConfig, tmp_path: Path
) -> None:
    export = default_export(sealed_leader)
    plain = _plaintext_export(sealed_leader, tmp_path / "elsewhere")
    export.unlink()
    export.with_name("leader.json.sealed").unlink()
    for made in (plain, plain.with_name("leader.json")):
        made.rename(export.parent / made.name)
    error = _refused(sealed_leader, tmp_path)
    assert error.message.startswith(str(export.parent / "leader.safetensors") + ":")


def test_plaintext_bytes_in_the_sealed_files_place_are_refused(
    sealed_leader: JobConfig, tmp_path: Path
) -> None:
    export = default_export(sealed_leader)
    plain = _plaintext_export(sealed_leader, tmp_path / "elsewhere")
    export.write_bytes(plain.read_bytes())  # same name, plaintext content
    error = _refused(sealed_leader, tmp_path)
    assert error.message.startswith(f"{export}:")


@pytest.mark.parametrize("name", ["leader.safetensors", "leader.json"])
def test_plaintext_twin_beside_the_sealed_export_is_refused(
    sealed_leader: JobConfig, tmp_path: Path, name: str
) -> None:
    plain = _plaintext_export(sealed_leader, tmp_path / "elsewhere")
    twin = default_export(sealed_leader).parent / name
    twin.write_bytes(plain.with_name(name).read_bytes())
    error = _refused(sealed_leader, tmp_path)
    assert error.message.startswith(f"{twin}:")


def test_an_explicit_export_path_is_read_sealed_only(
    sealed_leader: JobConfig, tmp_path: Path
) -> None:
    plain = _plaintext_export(sealed_leader, tmp_path / "elsewhere")
    with pytest.raises(SealingError) as info:
        load_scoring_half(plain, sealed_leader, None)
    assert info.value.code == "sealing.unexpected_plaintext"
    assert info.value.message.startswith(f"{plain}:")


def test_plaintext_job_reads_plaintext_and_refuses_sealed(small_job: Jobs, tmp_path: Path) -> None:
    sealed, _ = small_job()
    export_untrained(sealed)
    plain = _without_sealing(small_job(job__plaintext_outputs=True)[0])
    export_untrained(plain)  # the same workdir: leader.safetensors beside the sealed one
    assert default_export(plain).name == "leader.safetensors"
    assert prepare_predict(plain, section(plain, tmp_path), PlaintextSecurity()).table.rows == 600
    default_export(plain).write_bytes(default_export(sealed).read_bytes())
    with pytest.raises(SealingError) as info:
        prepare_predict(plain, section(plain, tmp_path), PlaintextSecurity())
    assert info.value.code == "sealing.unexpected_sealed"
    assert info.value.message.startswith(f"{default_export(plain)}: expected a plaintext file")


def test_neither_sealing_nor_plaintext_outputs_is_a_config_error(
    small_job: Jobs, tmp_path: Path
) -> None:
    lead, _ = small_job()
    bare = _without_sealing(lead)
    with pytest.raises(ConfigError) as info:
        prepare_predict(bare, section(bare, tmp_path), PlaintextSecurity())
    assert info.value.code == "config.sealing"


def _without_sealing(cfg: JobConfig) -> JobConfig:
    import dataclasses

    return dataclasses.replace(cfg, sealing=None)


def test_cvfl_predict_refuses_a_planted_plaintext_export(
    sealed_leader: JobConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = default_export(sealed_leader)
    plain = _plaintext_export(sealed_leader, tmp_path / "elsewhere")
    export.unlink()
    plain.rename(export.parent / plain.name)
    config = _job_file(tmp_path, sealed_leader)
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--config", str(config), "--input", str(sealed_leader.data.path)])
    assert stop.value.code == SealingError.exit_code
    err = capsys.readouterr().err
    planted = export.parent / "leader.safetensors"
    assert f"[sealing.unexpected_plaintext] {planted}: expected a sealed file" in err


def _job_file(tmp: Path, cfg: JobConfig) -> Path:
    """The leader's job file (TOML) of the ``small_job`` fixture."""
    raw: dict[str, Any] = job_tables(tmp, cfg.data.path, "leader")
    path = tmp / "leader.toml"
    path.write_text("\n".join(_toml(raw)) + "\n")
    assert job_from_mapping(raw, path).job == cfg.job
    return path


def _toml(raw: dict[str, Any]) -> list[str]:
    lines = []
    for name, table in raw.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    return lines
