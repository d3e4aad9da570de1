"""Validated configuration for one party's alignment: the job, its data, its peer and ``[psi]``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Required, TypedDict, cast

from cvfl.attestation.evidence import TCB_STATUSES
from cvfl.configload import check_table_name, load_section
from cvfl.errors import ConfigError, mismatch
from cvfl.roles import ROLES, Role

if TYPE_CHECKING:
    from cvfl.sealing import KeyProvider

DuplicatePolicy = Literal["error", "drop"]
MODES = ("ecdh", "fast")
GROUP_NAMES = ("x25519", "ristretto255")
DEFAULT_GROUP = "x25519"
FAST_TCB_DEFAULT: tuple[str, ...] = ("UpToDate",)


def _get(table: Mapping[str, object], key: str, kind: type, where: str, default: object) -> object:
    value = table.get(key)
    if value is None:
        value = default
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if value is not None and (
        not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))
    ):
        raise ConfigError(
            mismatch(f"{where}.{key}", kind.__name__, type(value).__name__), code="config.type"
        )
    return value


def _path(value: object, base: Path | None) -> Path | None:
    if value is None:
        return None
    path = Path(cast(str, value))
    return path if path.is_absolute() or base is None else base / path


class AlignOptions(TypedDict, total=False):
    """The keywords of one party's alignment (:func:`cvfl.psi.align` and both modes)."""

    keys: Required[KeyProvider | None]  # seal the aligned table (None: plaintext, if asked for)
    on_bound: Callable[[int], None] | None  # the leader: told the port it listens on


@dataclass(frozen=True)
class PsiConfig:
    """The job's ``[psi]`` table.

    Attributes:
        output: where this party's aligned table goes, in the format its name says (``.parquet``
            or ``.csv``, optionally followed by ``.sealed``) whatever the input's format.
        report: where the JSON report goes (default: ``output`` + ``.report.json``).
        plaintext_output: write the aligned table unsealed (must be asked for by name).
        batch_size: points per message (and per batched validation: larger batches spread its
            fixed cost, 40 modular exponentiations for x25519, over more points).
        threads: worker threads for the group arithmetic (0 = every core of this process).
        spill_threshold: records held in memory per store before spilling (sealed) to disk.
        spill_dir: folder for spill files (default: the system temporary folder).
        duplicates: ``"error"`` (default) or ``"drop"`` (keep each id's first row).
        window: own batches in flight awaiting the peer's answer.
        connect_timeout_s: how long each side waits for the other to connect (the leader
            listens only once it has blinded its own ids, which takes minutes at 2^20).
        timeout_s: the longest the whole exchange may take.
        mode: ``"ecdh"`` (default) or ``"fast"`` (keyed hashes between attested enclaves).
        group: the ECDH group, ``"x25519"`` (default: faster here) or ``"ristretto255"``;
            both parties must agree (it is in the hello).
        insecure_fast_mode: allow fast mode without real, up-to-date SGX evidence on both
            sides (simulated evidence or a plaintext channel); development only, logged loudly.
        fast_tcb_statuses: TCB statuses of the peer's platform that fast mode accepts
            (default only ``UpToDate``); the channel's attestation policy applies as well.
        max_peer_items: the largest set the peer may announce (None: 4 x this party's own
            item count); a larger one is refused before any point is answered or sent.
        state_dir: ECDH mode with a sealed output: the folder of the saved state that lets an
            interrupted alignment resume (default: the output's path + ``.psi-state``).
        checkpoint_batches: ECDH mode: save the exchange's state every this many answered own
            batches (and at least every 20 s).
    """

    output: Path
    report: Path | None = None
    plaintext_output: bool = False
    batch_size: int = 16384
    threads: int = 0
    spill_threshold: int = 1 << 20
    spill_dir: Path | None = None
    duplicates: DuplicatePolicy = "error"
    window: int = 64
    connect_timeout_s: float = 600.0
    timeout_s: float = 3600.0
    mode: str = "ecdh"
    group: str = DEFAULT_GROUP
    insecure_fast_mode: bool = False
    fast_tcb_statuses: tuple[str, ...] = FAST_TCB_DEFAULT
    max_peer_items: int | None = None
    state_dir: Path | None = None
    checkpoint_batches: int = 64

    def __post_init__(self) -> None:
        check_table_name("[psi] output", self.output)
        limit = self.max_peer_items
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ConfigError(
                mismatch("[psi] max_peer_items", "a positive integer", repr(limit)),
                code="config.type",
            )
        if limit is not None and limit < 1:
            raise ConfigError(
                mismatch("[psi] max_peer_items", "a positive integer", limit), code="config.range"
            )
        for name, low in (
            ("batch_size", 1),
            ("threads", 0),
            ("spill_threshold", 1),
            ("window", 1),
            ("checkpoint_batches", 1),
        ):
            if getattr(self, name) < low:
                raise ConfigError(
                    mismatch(f"[psi] {name}", f">= {low}", getattr(self, name)), code="config.range"
                )
        for name in ("connect_timeout_s", "timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    mismatch(f"[psi] {name}", "> 0", getattr(self, name)), code="config.range"
                )
        if self.duplicates not in ("error", "drop"):
            raise ConfigError(
                mismatch("[psi] duplicates", "'error' or 'drop'", repr(self.duplicates)),
                code="config.value",
            )
        if self.mode not in MODES:
            raise ConfigError(
                mismatch("[psi] mode", f"one of {list(MODES)}", repr(self.mode)),
                code="config.value",
            )
        if self.group not in GROUP_NAMES:
            raise ConfigError(
                mismatch("[psi] group", f"one of {list(GROUP_NAMES)}", repr(self.group)),
                code="config.value",
            )
        unknown = sorted(set(self.fast_tcb_statuses) - TCB_STATUSES)
        if unknown or not self.fast_tcb_statuses:
            raise ConfigError(
                mismatch(
                    "[psi] fast_tcb_statuses",
                    f"a non-empty subset of {sorted(TCB_STATUSES)}",
                    unknown or "[]",
                ),
                code="config.value",
            )

    @property
    def state_path(self) -> Path:
        """The resume state's folder (explicit, or derived from the output's)."""
        return self.state_dir or self.output.with_name(self.output.name + ".psi-state")

    @property
    def report_path(self) -> Path:
        """The report's path (explicit, or derived from the output's)."""
        return self.report or self.output.with_name(self.output.name + ".report.json")

    @classmethod
    def from_toml_table(
        cls, table: Mapping[str, object], *, base_dir: Path | None = None
    ) -> PsiConfig:
        """Build from the ``[psi]`` table; relative paths resolve against ``base_dir``.

        Every key is checked by :func:`cvfl.configload.load_section` (types, unknown keys,
        the required ``output``), then by :meth:`__post_init__` (ranges and values).
        """
        return load_section(cls, "psi", table, base_dir)


@dataclass(frozen=True)
class AlignJob:
    """Who this party is and what it aligns: ``[job]`` id/role, ``[data]``, ``[peer]``.

    Attributes:
        job_id: the job's id; both parties must agree (it also separates the hash domain).
        role: ``"leader"`` (serves) or ``"follower"`` (connects).
        data: the party's Parquet or CSV table.
        id_column: the column holding example ids.
        address: ``[peer] listen`` for the leader, ``[peer] connect`` for the follower.
        seed: ``[job] seed``; with the job id it keys the aligned order (:mod:`cvfl.psi.order`).
    """

    job_id: str
    role: Role
    data: Path
    id_column: str
    address: str
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.job_id:
            raise ConfigError(mismatch("job.id", "a non-empty string", "''"), code="config.value")
        if self.role not in ROLES:
            raise ConfigError(
                mismatch("job.role", "'leader' or 'follower'", repr(self.role)),
                code="config.value",
            )

    @property
    def peer_role(self) -> Role:
        """The other party's role."""
        return "follower" if self.role == "leader" else "leader"

    @classmethod
    def from_toml(
        cls, doc: Mapping[str, object], *, base_dir: Path | None = None, role: str | None = None
    ) -> AlignJob:
        """Read ``[job]``, ``[data]`` and ``[peer]`` from a parsed job TOML (other keys ignored)."""
        job, data, peer = (_table(doc, name) for name in ("job", "data", "peer"))
        chosen = role or cast(str | None, _get(job, "role", str, "job", None))
        if chosen not in ROLES:
            raise ConfigError(
                mismatch("job.role", "'leader' or 'follower'", repr(chosen)), code="config.value"
            )
        key = "listen" if chosen == "leader" else "connect"
        address = cast(str | None, _get(peer, key, str, "peer", None))
        path = _path(_get(data, "path", str, "data", None), base_dir)
        if address is None or path is None:
            missing = f"peer.{key}" if address is None else "data.path"
            raise ConfigError(mismatch(missing, "a value", "nothing"), code="config.key")
        return cls(
            job_id=cast(str, _get(job, "id", str, "job", "")),
            role=chosen,
            data=path,
            id_column=cast(str, _get(data, "id_column", str, "data", "example_id")),
            # alignment is one stream: worker 0's address when the job names one per worker
            address=address.replace("{worker}", "0"),
            seed=cast(int, _get(job, "seed", int, "job", 0)),
        )


def _table(doc: Mapping[str, object], name: str) -> Mapping[str, object]:
    value = doc.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(
            mismatch(f"[{name}]", "a table", type(value).__name__), code="config.type"
        )
    return cast(Mapping[str, object], value)
