"""The pieces of a resumable alignment: durable stores, the manifest, the answer log, binding."""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.errors import AlignmentError, SealingError
from cvfl.psi import AlignJob, serde
from cvfl.psi.ecdh.saving import ANSWER_LOG, MANIFEST, AnswerLog, StateFolder, binding_of
from cvfl.psi.ecdh.state import (
    Blinded,
    Intersected,
    Manifest,
    SessionState,
    encode_manifest,
    parse_manifest,
)
from cvfl.psi.spill import BUCKETS, BucketStore, Durable, StoreState, keys_from_bytes
from cvfl.sealing import new_key_file

from .conftest import psi_config, write_table


def _records(n: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    keys = keys_from_bytes(secrets.token_bytes(32 * n))
    return keys, np.arange(start, start + n, dtype=np.int64)


def _all(store: BucketStore) -> set[tuple[bytes, int]]:
    return {
        (bytes(k), int(r))
        for keys, rows in store.sorted_buckets()
        for k, r in zip(keys, rows, strict=True)
    }


def test_durable_store_commit_reopen_round_trip_ignores_later_files(tmp_path: Path) -> None:
    durable = Durable(tmp_path / "state", new_key_file(tmp_path / "k.hex"))
    durable.folder.mkdir()
    store = BucketStore("own", threshold=50, spill_dir=None, durable=durable)
    store.add(*_records(120))  # spills past the threshold
    store.add(*_records(10, 120))  # pending in memory
    committed = store.commit()
    expected = _all(store)
    assert committed.count == 130 and len(expected) == 130
    store.add(*_records(80, 130))  # spilled after the commit: must not come back
    assert store.spills > committed.spills
    store.close()
    assert list(durable.folder.glob("own-b*.sealed")), "a durable store keeps its files"
    again = BucketStore.reopen("own", threshold=50, durable=durable, state=committed)
    assert again.count == 130
    assert _all(again) == expected
    kept = {name for files in committed.files for name in files}
    assert {p.name for p in durable.folder.glob("own-b*.sealed")} == kept
    again.drop()
    assert not list(durable.folder.glob("own-b*.sealed"))


def _manifest(session: bool, done: bool) -> Manifest:
    empty = StoreState(0, 0, tuple(() for _ in range(BUCKETS)))
    files = tuple((f"own-d-b{b:02d}-00000.sealed",) if b == 3 else () for b in range(BUCKETS))
    held = SessionState(
        secrets.token_bytes(32), 9, b'{"a":1}', 2, 3, StoreState(5, 1, files), empty
    )
    return Manifest(
        binding={"job_id": "j", "batch_size": 7},
        log_key=secrets.token_bytes(32),
        blinded=Blinded(secrets.token_bytes(32), 10, 1, empty),
        session=held if session else None,
        intersected=Intersected(9, 2) if done else None,
    )


@given(session=st.booleans(), done=st.booleans())
def test_manifest_round_trip(session: bool, done: bool) -> None:
    manifest = _manifest(session, done)
    assert parse_manifest(encode_manifest(manifest)) == manifest


@settings(max_examples=200)
@given(data=st.binary(max_size=300))
def test_manifest_parser_refuses_any_bytes_cleanly(data: bytes) -> None:
    try:
        parse_manifest(data)
    except AlignmentError as exc:
        assert exc.code == "psi.bad_state"


@settings(max_examples=200)
@given(position=st.integers(min_value=0), value=st.sampled_from([-1, "x", None, 1.5, [], {}]))
def test_manifest_parser_names_a_bad_field(position: int, value: object) -> None:
    """Replacing any one value of a valid manifest is refused (or, if still valid, read)."""
    import json

    doc = json.loads(encode_manifest(_manifest(True, False)))
    paths: list[list[str]] = []

    def walk(node: object, path: list[str]) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                paths.append([*path, key])
                walk(child, [*path, key])

    walk(doc, [])
    path = paths[position % len(paths)]
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    try:
        parse_manifest(json.dumps(doc).encode())
    except AlignmentError as exc:
        assert exc.code == "psi.bad_state"
        assert "psi state" in exc.message


def _folder(tmp_path: Path, **cfg: object) -> tuple[StateFolder, AlignJob]:
    data = write_table(tmp_path / "leader.parquet", ["a", "b"], "l")
    job = AlignJob("job-1", "leader", data, "id", "127.0.0.1:0")
    config = psi_config(tmp_path, "leader", **cfg)
    keys = new_key_file(tmp_path / "k.hex")
    return StateFolder(config.state_path, keys, binding_of(job, config)), job


def test_binding_mismatch_discards_the_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, job = _folder(tmp_path)
    folder.save(dataclasses.replace(_manifest(True, False), binding=folder.binding))
    assert folder.load() is not None
    later = os.stat(job.data).st_mtime_ns + 1_000_000_000
    os.utime(job.data, ns=(later, later))
    moved = StateFolder(folder.folder, folder.keys, binding_of(job, psi_config(tmp_path, "leader")))
    with caplog.at_level(logging.WARNING, logger="cvfl.psi"):
        assert moved.load() is None
    assert "input_mtime_ns: expected" in caplog.text
    assert not (folder.folder / MANIFEST).exists()


def test_other_batch_size_is_another_run(tmp_path: Path) -> None:
    folder, job = _folder(tmp_path)
    folder.save(dataclasses.replace(_manifest(False, False), binding=folder.binding))
    other = StateFolder(
        folder.folder, folder.keys, binding_of(job, psi_config(tmp_path, "leader", batch_size=8))
    )
    assert other.load() is None


def test_tampered_manifest_is_refused_naming_the_folder(tmp_path: Path) -> None:
    folder, _ = _folder(tmp_path)
    folder.save(dataclasses.replace(_manifest(True, False), binding=folder.binding))
    path = folder.folder / MANIFEST
    data = bytearray(path.read_bytes())
    data[-5] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(SealingError) as info:
        folder.load()
    assert str(folder.folder) in info.value.message
    assert "delete that folder" in info.value.message
    assert path.exists(), "a refused state is kept for the operator to look at"


def test_answer_log_survives_a_torn_record_and_refuses_a_changed_one(tmp_path: Path) -> None:
    key, session = secrets.token_bytes(32), secrets.token_bytes(32)
    path = tmp_path / ANSWER_LOG
    log = AnswerLog(path, key, session)
    digests = [secrets.token_bytes(32) for _ in range(3)]
    for i, digest in enumerate(digests):
        log.append(i + 5, digest)
    with open(path, "ab") as handle:
        handle.write(b"\x01" * 30)  # a record cut short by a crash
    again = AnswerLog(path, key, session)
    assert again.entries == [(i + 5, d) for i, d in enumerate(digests)]
    assert again.items_before(2) == 11
    data = bytearray(path.read_bytes())
    data[8] ^= 1  # record 0's item count
    path.write_bytes(bytes(data))
    with pytest.raises(AlignmentError) as info:
        AnswerLog(path, key, session)
    assert info.value.code == "psi.bad_state"
    assert "record 0" in info.value.message
    with pytest.raises(AlignmentError):
        AnswerLog(path, key, secrets.token_bytes(32))  # another session's log


@given(
    nonce=st.binary(max_size=40),
    resume=st.none()
    | st.builds(
        serde.Resume, st.binary(max_size=40), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)
    ),
)
def test_hello_with_nonce_and_resume_round_trip(nonce: bytes, resume: serde.Resume | None) -> None:
    hello = serde.PsiHello("j", "leader", 3, "ecdh", 7, "x25519", nonce=nonce, resume=resume)
    frame = serde.hello_to_proto(hello)
    parsed = type(frame).FromString(frame.SerializeToString())
    assert serde.hello_from_proto(parsed.hello) == hello
