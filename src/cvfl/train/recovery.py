"""Coordinated checkpoints and the resume negotiation (docs/protocol.md, section 5).

The leader chooses the step; each side writes its checkpoint atomically, then a small record
``{step, digest}`` (the digest of the checkpoint's plaintext). When the peer reports its own
digest for that step, the record is rewritten with it: a *commit*, proof that the peer wrote that
step. On a new session both sides exchange their records and resume from the newest step both
hold. A peer that lacks a step for which we hold its commit has lost or rolled back files, and
is refused; so is a peer whose checkpoint differs from the digest it reported.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cvfl.bridge.fields import Fields
from cvfl.bridge.serde import CheckpointState
from cvfl.errors import ProtocolError, mismatch
from cvfl.logs import get_logger
from cvfl.sealing.artifacts import SUFFIX, Artifacts
from cvfl.train import checkpoint
from cvfl.train.binding import Binding
from cvfl.train.records import Record, encode_record, parse_record

log = get_logger(__name__)
RECORD_PURPOSE = "cvfl/checkpoint-record"
_STEP = re.compile(r"-step-(\d+)\.json")


@dataclass
class CheckpointStore:
    """A party's checkpoints and their records in ``folder`` (the newest ``keep`` are kept).

    ``binding`` is what the checkpoints this store writes are bound to (recorded with each).
    """

    folder: Path
    role: str
    artifacts: Artifacts
    keep: int = 3
    binding: Binding | None = None

    def _record_path(self, step: int) -> Path:
        return self.folder / f"{self.role}-step-{step:09d}.json"

    def save(self, step: int, data: bytes) -> bytes:
        """Write the checkpoint of ``step`` and its record; return the plaintext digest."""
        digest = hashlib.sha256(data).digest()
        path = checkpoint.checkpoint_path(self.folder, self.role, step)
        self.artifacts.write(path, data, checkpoint.PURPOSE)
        self._write_record(CheckpointState(step, digest))
        return digest

    def commit(self, step: int, digest: bytes, peer_digest: bytes) -> None:
        """Record the peer's digest for ``step``, then drop checkpoints beyond ``keep``."""
        self._write_record(CheckpointState(step, digest, peer_digest))
        self._prune()

    def _write_record(self, state: CheckpointState) -> None:
        fields = self.binding.fields if self.binding is not None else None
        self.write_record(Record(state, fields))

    def write_record(self, record: Record) -> None:
        """Write (or replace) the record of ``record``'s step."""
        path = self._record_path(record.state.step)
        self.artifacts.write(path, encode_record(record), RECORD_PURPOSE)

    def rebind(self, record: Record, fields: Fields) -> None:
        """Bind the checkpoint of ``record`` to ``fields`` (a resume with changes, on purpose)."""
        self.write_record(Record(record.state, fields, rebound_from=record.binding_digest))

    def records(self) -> tuple[Record, ...]:
        """The records on disk, oldest first (a checkpoint without a record does not count)."""
        if not self.folder.is_dir():
            return ()
        found = []
        for name in self._record_names():
            path = self.folder / name
            found.append(parse_record(self.artifacts.read(path, RECORD_PURPOSE), path))
        return tuple(sorted(found, key=lambda r: r.state.step))

    def inventory(self) -> tuple[CheckpointState, ...]:
        """The states of :meth:`records`, oldest first."""
        return tuple(r.state for r in self.records())

    def files_of(self, step: int) -> list[Path]:
        """The files of ``step`` on disk: its checkpoint and its record, sealed or not."""
        names = (checkpoint.checkpoint_path(self.folder, self.role, step), self._record_path(step))
        paths = [p for n in names for p in (n, n.with_name(n.name + SUFFIX))]
        return [p for p in paths if p.exists()]

    def _record_names(self) -> list[str]:
        """The records' file names, a record and its twin (``.sealed`` or not) counted once.

        Reading a record by either name checks both (a sealed job refuses a plaintext twin).
        """
        names: dict[str, str] = {}
        for path in sorted(self.folder.glob(f"{self.role}-step-*.json*")):
            if _STEP.search(path.name) is None or path.name.startswith("."):
                continue
            names.setdefault(path.name.removesuffix(SUFFIX), path.name)
        return sorted(names.values())

    def load(self, step: int, expected_digest: bytes) -> bytes:
        """The plaintext of the checkpoint of ``step``, checked against its record."""
        path = checkpoint.checkpoint_path(self.folder, self.role, step)
        data = self.artifacts.read(path, checkpoint.PURPOSE)
        seen = hashlib.sha256(data).digest()
        if seen != expected_digest:
            raise ProtocolError(
                mismatch(f"{path.name} digest", expected_digest.hex()[:16], seen.hex()[:16]),
                code="protocol.checkpoint_digest",
            )
        return data

    def _prune(self) -> None:
        states = self.inventory()
        for state in states[: max(0, len(states) - self.keep)]:
            for path in (checkpoint.checkpoint_path(self.folder, self.role, state.step),):
                for candidate in (path, path.with_name(path.name + SUFFIX)):
                    candidate.unlink(missing_ok=True)
            for candidate in (self._record_path(state.step),):
                candidate.unlink(missing_ok=True)
                candidate.with_name(candidate.name + SUFFIX).unlink(missing_ok=True)


def resume_step(
    mine: tuple[CheckpointState, ...], theirs: tuple[CheckpointState, ...], peer_role: str
) -> int:
    """The newest step both sides hold (0: start over), after checking the peer's records.

    Raises:
        ProtocolError: the peer's checkpoint differs from what it reported when it wrote it, or
            the peer lacks a step it is known to have written (a rollback).
    """
    their_steps = {s.step: s for s in theirs}
    for state in mine:
        if not state.peer_digest:
            continue
        peer = their_steps.get(state.step)
        if peer is not None and peer.digest != state.peer_digest:
            raise ProtocolError(
                mismatch(
                    f"the {peer_role}'s checkpoint of step {state.step} (digest recorded when it "
                    "was written)",
                    state.peer_digest.hex()[:16],
                    peer.digest.hex()[:16],
                ),
                code="protocol.checkpoint_digest",
            )
    committed = max((s.step for s in mine if s.peer_digest), default=0)
    newest = max(their_steps, default=0)
    if committed > newest:
        raise ProtocolError(
            f"rollback refused: the {peer_role} holds checkpoints up to step {newest}, but this "
            f"side holds its commit for step {committed} (the {peer_role} wrote it); its newer "
            "checkpoints were lost or replaced with older ones (if it was started with --fresh "
            "or --resume-from on purpose, give this party the same option)",
            code="protocol.rollback",
        )
    common = {s.step for s in mine} & set(their_steps)
    return max(common, default=0)
