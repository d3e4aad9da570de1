"""kill -9 a party during the ECDH exchange, rerun both: the alignment resumes, same tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from cvfl.psi import read_aligned
from cvfl.sealing import FileKeyProvider
from tests.e2e.jobs import Party, write_small_job

pytestmark = pytest.mark.e2e
PSI = "batch_size = 16\ncheckpoint_batches = 8\nwindow = 4"
ROLES = ("leader", "follower")


def _job(folder: Path) -> None:
    write_small_job(folder, align=True)
    for role in ROLES:
        path = folder / f"{role}.toml"
        text = path.read_text()
        line = f'output = "aligned/{role}.parquet.sealed"'
        assert line in text, text
        path.write_text(text.replace(line, f"{line}\n{PSI}"))


def _align(folder: Path) -> dict[str, Party]:
    return {role: Party(folder, "align", "--config", f"{role}.toml") for role in ROLES}


def _tables(folder: Path) -> list[pa.Table]:
    return [
        read_aligned(
            folder / "aligned" / f"{role}.parquet.sealed",
            FileKeyProvider(folder / "keys" / f"{role}.key"),
            "parquet",
        )
        for role in ROLES
    ]


def test_kill_during_the_exchange_then_rerun_resumes(tmp_path: Path) -> None:
    cut, whole = tmp_path / "cut", tmp_path / "whole"
    _job(cut)
    shutil.copytree(cut, whole)  # same tables (and times), keys and port
    for party in _align(whole).values():
        assert party.finish(120) == 0, party.output
    baseline = _tables(whole)

    parties = _align(cut)
    # the follower's fourth checkpoint: well inside the exchange (it saves every 8 answers)
    seen = parties["follower"].wait_for("exchange state saved (32 own batches", 60)
    assert seen, parties["follower"].output
    parties["follower"].proc.kill()
    parties["follower"].proc.wait()
    assert parties["leader"].finish(60) != 0, parties["leader"].output
    assert not (cut / "aligned" / "follower.parquet.sealed").exists()
    assert (cut / "aligned" / "follower.parquet.sealed.psi-state" / "manifest.sealed").exists()

    parties = _align(cut)
    for role, party in parties.items():
        assert party.finish(120) == 0, f"{role}:\n{party.output}"
        said = " ".join(party.output.split())
        assert "psi: resuming session" in said, said
        assert "starting over" not in said
    assert _tables(cut) == baseline
    for role in ROLES:
        assert not (cut / "aligned" / f"{role}.parquet.sealed.psi-state").exists()
