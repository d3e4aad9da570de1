"""A job that seals its outputs reads its checkpoints and aligned table back only sealed.

A plaintext file planted where a sealed one belongs is refused with a SealingError naming the
file, whatever is on disk beside it; the user's own ``[data] path`` table stays readable in
plaintext, and a ``plaintext_outputs`` job (no ``[sealing]``) reads plaintext artifacts.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cvfl.data import write_arrow
from cvfl.errors import SealingError
from cvfl.psi.output import write_table
from cvfl.sealing import is_sealed
from cvfl.train import checkpoint
from cvfl.train.config import JobConfig
from cvfl.train.party import checkpoint_store, load_party, restore_to, write_checkpoint
from tests.conftest import keys_of

Jobs = Callable[..., tuple[JobConfig, JobConfig]]


def _refusal(info: pytest.ExceptionInfo[SealingError], path: Path) -> None:
    assert info.value.code == "sealing.unexpected_plaintext"
    assert info.value.message.startswith(f"{path}: expected a sealed file, seen a plaintext one")


@pytest.fixture
def checkpointed(small_job: Jobs) -> tuple[JobConfig, bytes, Path]:
    """A sealed leader with a real checkpoint of step 5; (config, plaintext, sealed file)."""
    lead, _ = small_job()
    party = load_party(lead)
    write_checkpoint(party, 5, {"note": "step five"})
    store = checkpoint_store(party)
    sealed = checkpoint.checkpoint_path(store.folder, "leader", 5).with_suffix(
        ".safetensors.sealed"
    )
    assert is_sealed(sealed)
    state = store.inventory()[0]
    plaintext = store.load(5, state.digest)
    assert restore_to(load_party(lead), 5, store.inventory()) == {"note": "step five"}
    return lead, plaintext, sealed


def test_plaintext_checkpoint_in_the_sealed_files_place_is_refused(
    checkpointed: tuple[JobConfig, bytes, Path],
) -> None:
    lead, plaintext, sealed = checkpointed
    sealed.write_bytes(plaintext)  # the very bytes the record's digest names
    party = load_party(lead)
    with pytest.raises(SealingError) as info:
        restore_to(party, 5, checkpoint_store(party).inventory())
    _refusal(info, sealed)


def test_plaintext_checkpoint_beside_the_sealed_one_is_refused(
    checkpointed: tuple[JobConfig, bytes, Path],
) -> None:
    lead, plaintext, sealed = checkpointed
    twin = sealed.with_name(sealed.name.removesuffix(".sealed"))
    twin.write_bytes(plaintext)
    party = load_party(lead)
    with pytest.raises(SealingError) as info:
        restore_to(party, 5, checkpoint_store(party).inventory())
    _refusal(info, twin)


def test_planted_plaintext_checkpoint_record_is_refused(
    checkpointed: tuple[JobConfig, bytes, Path],
) -> None:
    lead, _, sealed = checkpointed
    record = sealed.with_name("leader-step-000000009.json")
    record.write_text(json.dumps({"step": 9, "digest": "00" * 32, "peer": ""}))
    with pytest.raises(SealingError) as info:
        checkpoint_store(load_party(lead)).inventory()
    _refusal(info, record)


def _aligned_job(small_job: Jobs, tmp: Path, **overrides: object) -> tuple[JobConfig, Path]:
    """A leader training on ``tmp/aligned/leader.parquet.sealed`` (written as align does)."""
    out = tmp / "aligned" / "leader.parquet.sealed"
    lead, _ = small_job(psi__output=str(out), **overrides)
    return lead, out


def test_plaintext_aligned_table_in_place_of_the_sealed_one_is_refused(
    small_job: Jobs, tmp_path: Path
) -> None:
    lead, out = _aligned_job(small_job, tmp_path)
    table = pq.read_table(lead.data.path)
    out.parent.mkdir()
    write_table(table, "parquet", out, keys_of(lead))  # cvfl align's writer
    assert load_party(lead).table.rows == table.num_rows
    write_arrow(table, out)  # the same rows, plaintext, under the sealed name
    with pytest.raises(SealingError) as info:
        load_party(lead)
    _refusal(info, out)


def test_users_own_table_is_read_in_plaintext_by_a_sealed_job(small_job: Jobs) -> None:
    lead, _ = small_job()
    assert lead.sealing is not None and lead.psi is None
    assert not is_sealed(lead.data.path)
    assert load_party(lead).table.rows == 600


def test_plaintext_outputs_job_reads_a_plaintext_aligned_table(
    small_job: Jobs, tmp_path: Path
) -> None:
    lead, out = _aligned_job(
        small_job, tmp_path, job__plaintext_outputs=True, psi__plaintext_output=True
    )
    lead = dataclasses.replace(lead, sealing=None)
    table = pq.read_table(lead.data.path)
    out.parent.mkdir()
    write_table(table, "parquet", out, None)
    assert load_party(lead).table.rows == table.num_rows
    sealed_twin, _ = _aligned_job(small_job, tmp_path)
    write_table(table, "parquet", out, keys_of(sealed_twin))
    with pytest.raises(SealingError) as info:
        load_party(lead)
    assert info.value.code == "sealing.unexpected_sealed"
    assert info.value.message.startswith(f"{out}: expected a plaintext file")
