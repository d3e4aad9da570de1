"""The job file: validated, frozen sections loaded from TOML at the boundary.

Relative paths are resolved against the job file's folder.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from cvfl.attestation import AttestationConfig
from cvfl.bridge.reliable import Liveness
from cvfl.configload import bounds, load_section
from cvfl.data.columns import ColumnsSpec, parse_columns
from cvfl.data.tables import FeatureKind
from cvfl.errors import ConfigError, PeerUnavailableError, mismatch
from cvfl.models.spec import ModelSpec
from cvfl.privacy.config import PrivacySection
from cvfl.psi.config import PsiConfig
from cvfl.roles import ROLES, Role
from cvfl.sealing import SealingConfig

STEPS = ("align", "train", "fallback", "predict")  # the enclave commands, in pipeline order
DEFAULT_STEPS = ("align", "train")
MAX_WORKERS = 256
MAX_STALENESS = 16  # [train] staleness: forward passes the follower may run ahead
PLACEHOLDER = "{worker}"
_POSITIVE = bounds(low=0, low_open=True)


def parse_steps(value: object) -> tuple[str, ...]:
    """Validate ``[job] steps``: a non-empty list of known commands, no repeats, pipeline order.

    Raises:
        ConfigError: naming ``[job] steps`` with the expected and the seen value.
    """
    expected = f"a non-empty list of {', '.join(STEPS)} in that order, each at most once"
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise ConfigError(mismatch("[job] steps", expected, repr(value)), code="config.steps")
    steps = tuple(value)
    unknown = [step for step in steps if step not in STEPS]
    if unknown:
        raise ConfigError(
            mismatch("[job] steps", f"names from {', '.join(STEPS)}", repr(unknown[0])),
            code="config.steps",
        )
    if len(set(steps)) != len(steps):
        raise ConfigError(
            mismatch("[job] steps", "each step at most once", repr(list(steps))),
            code="config.steps",
        )
    in_order = sorted(steps, key=STEPS.index)
    if list(steps) != in_order:
        raise ConfigError(
            mismatch("[job] steps", f"pipeline order {in_order!r}", repr(list(steps))),
            code="config.steps",
        )
    return steps


@dataclass(frozen=True)
class JobSection:
    """``[job]``: identity of the job and this party."""

    id: str
    role: Role
    seed: int = 0
    workdir: Path = Path("cvfl-out")
    plaintext_outputs: bool = False
    steps: tuple[str, ...] = field(default=DEFAULT_STEPS, metadata={"parse": parse_steps})

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", parse_steps(self.steps))
        if self.role not in ROLES:
            raise ConfigError(
                f"[job] role: expected leader or follower, seen {self.role!r}", code="config.role"
            )
        if not self.id:
            raise ConfigError("[job] id must not be empty", code="config.job")
        if not isinstance(self.plaintext_outputs, bool):  # a string "false" is not false
            raise ConfigError(
                mismatch("[job] plaintext_outputs", "true or false", repr(self.plaintext_outputs)),
                code="config.job",
            )


@dataclass(frozen=True)
class DataSection:
    """``[data]``: this party's table.

    ``reader`` is how training reads it: ``memory`` (the whole table in memory, the default) or
    ``stream`` (row groups read a window of ``shuffle_blocks`` blocks of ``block_rows`` rows per
    worker at a time: :mod:`cvfl.train.stream`); both parties must agree on all three.

    ``columns`` is the ``[data.columns]`` table (:mod:`cvfl.data.columns`): with it, the
    party's own columns are preprocessed (fitted on its training rows) and ``kind`` is unused;
    without it, the table must already be numeric or integer codes, as ``kind`` says.
    """

    path: Path
    kind: FeatureKind = FeatureKind.CATEGORICAL
    id_column: str = "example_id"
    label_column: str = "label"
    holdout_fraction: float = field(
        default=0.2, metadata=bounds(low=0, high=1, low_open=True, high_open=True)
    )
    columns: ColumnsSpec | None = field(default=None, metadata={"parse": parse_columns})
    reader: Literal["memory", "stream"] = "memory"
    block_rows: int = field(default=65536, metadata=bounds(low=1, high=1 << 24))
    shuffle_blocks: int = field(default=1, metadata=bounds(low=1, high=1 << 16))

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ConfigError("[data] holdout_fraction must be in (0, 1)", code="config.data")


@dataclass(frozen=True)
class TrainSection:
    """``[train]``: optimisation and schedule (both parties must agree)."""

    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = field(default=1e-3, metadata=bounds(low=0, low_open=True))
    batch_size: int = field(default=32, metadata=bounds(low=1))
    epochs: int = field(default=1, metadata=bounds(low=1))
    max_steps: int = field(default=0, metadata=bounds(low=0))
    eval_batch_size: int = field(default=1024, metadata=bounds(low=1))
    checkpoint_every: int = field(default=0, metadata=bounds(low=0))
    checkpoint_every_s: float = field(default=60.0, metadata=bounds(low=0))
    threads: int = field(default=0, metadata=bounds(low=0))
    workers: int = field(default=1, metadata=bounds(low=1, high=MAX_WORKERS))
    wire_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    staleness: int = field(default=0, metadata=bounds(low=0, high=MAX_STALENESS))
    device: Literal["auto", "cpu", "cuda"] = "auto"
    early_stopping_metric: str = ""
    early_stopping_patience: int = field(default=3, metadata=bounds(low=1))
    track: Literal["none", "tensorboard", "mlflow"] = "none"
    track_dir: Path | None = None  # tensorboard: None is <workdir>/tensorboard
    track_uri: str = ""  # mlflow: "" is a file: store <workdir>/mlruns

    @property
    def early_stopping(self) -> bool:
        """Whether training stops early on ``early_stopping_metric`` (an empty name: off)."""
        return bool(self.early_stopping_metric)

    def __post_init__(self) -> None:
        _check_intervals(self.checkpoint_every, self.checkpoint_every_s)
        _check_tracking(self.track, self.track_dir, self.track_uri)
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(
                f"[train] optimizer: expected sgd or adam, seen {self.optimizer!r}",
                code="config.train",
            )
        for name in ("batch_size", "epochs", "eval_batch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"[train] {name} must be positive", code="config.train")
        if self.lr <= 0:
            raise ConfigError("[train] lr must be positive", code="config.train")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError(
                mismatch("[train] workers", f"1 to {MAX_WORKERS}", self.workers),
                code="config.train",
            )
        if self.early_stopping and self.workers > 1:
            raise ConfigError(
                mismatch("[train] workers", "1 with early_stopping_metric set", self.workers),
                code="config.train",
            )
        if isinstance(self.staleness, bool) or not isinstance(self.staleness, int):
            raise ConfigError(
                mismatch("[train] staleness", "a whole number of steps", repr(self.staleness)),
                code="config.train",
            )
        if not 0 <= self.staleness <= MAX_STALENESS:
            raise ConfigError(
                mismatch("[train] staleness", f"0 to {MAX_STALENESS}", self.staleness),
                code="config.train",
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(
                mismatch("[train] device", "auto, cpu or cuda", repr(self.device)),
                code="config.train",
            )
        if self.device == "cuda" and self.workers > 1:  # the workers' group reduces on the host
            raise ConfigError(
                mismatch("[train] workers", '1 with device = "cuda"', self.workers),
                code="config.train",
            )
        if self.staleness and self.workers > 1:  # DDP reduces once per forward and backward
            raise ConfigError(
                mismatch("[train] workers", "1 with staleness > 0", self.workers),
                code="config.train",
            )
        if self.workers > self.batch_size:
            raise ConfigError(
                mismatch(
                    "[train] batch_size",
                    f"at least [train] workers ({self.workers})",
                    self.batch_size,
                ),
                code="config.train",
            )


def _check_tracking(track: str, folder: Path | None, uri: str) -> None:
    """Validate ``[train] track`` and the one of ``track_dir`` / ``track_uri`` it uses."""
    if track not in ("none", "tensorboard", "mlflow"):
        raise ConfigError(
            mismatch("[train] track", '"none", "tensorboard" or "mlflow"', repr(track)),
            code="config.track",
        )
    if folder is not None and track != "tensorboard":
        raise ConfigError(
            mismatch(
                "[train] track_dir", f'[train] track = "tensorboard" (track is {track!r})', "set"
            ),
            code="config.track",
        )
    if uri and track != "mlflow":
        raise ConfigError(
            mismatch("[train] track_uri", f'[train] track = "mlflow" (track is {track!r})', "set"),
            code="config.track",
        )
    scheme, colon, rest = uri.partition(":")
    if uri and (not colon or not rest or not scheme.isascii() or not scheme.isalnum()):
        raise ConfigError(
            mismatch(
                "[train] track_uri", "a URI such as file:///path or https://host:5000", repr(uri)
            ),
            code="config.track",
        )


def _check_intervals(every: object, every_s: object) -> None:
    """Validate the checkpoint intervals: whole steps and seconds, 0 meaning off."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise ConfigError(
            mismatch("[train] checkpoint_every", "a whole number of steps >= 0", repr(every)),
            code="config.train",
        )
    if (
        isinstance(every_s, bool)
        or not isinstance(every_s, int | float)
        or not math.isfinite(every_s)
        or every_s < 0
    ):
        raise ConfigError(
            mismatch("[train] checkpoint_every_s", "a number of seconds >= 0", repr(every_s)),
            code="config.train",
        )


@dataclass(frozen=True)
class PeerSection:
    """``[peer]``: where the leader listens or the follower dials, and how it is protected."""

    listen: str = "127.0.0.1:7788"
    connect: str = "127.0.0.1:7788"
    security: Literal["ratls", "insecure"] = "ratls"
    connect_timeout: float = field(default=60.0, metadata=_POSITIVE)
    step_timeout: float = field(default=300.0, metadata=_POSITIVE)
    port_file: Path | None = None
    heartbeat_interval: float = field(default=1.0, metadata=_POSITIVE)
    heartbeat_timeout: float = field(default=5.0, metadata=_POSITIVE)
    give_up_after: float = field(default=120.0, metadata=_POSITIVE)
    reliable: bool = True

    def leader_address(self) -> str:
        """``connect``, with the port read from ``port_file`` when one is configured.

        A leader that listens on port 0 writes its port to that file (same machine only); ask
        again before each attempt, since a restarted leader may listen on a new port.

        Raises:
            PeerUnavailableError: the file is not there (yet).
        """
        if self.port_file is None:
            return self.connect
        try:
            port = int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            raise PeerUnavailableError(
                f"{self.port_file}: the leader has not written its port yet",
                code="peer.unreachable",
            ) from None
        return f"{self.connect.rsplit(':', 1)[0]}:{port}"

    def for_worker(self, worker: int) -> PeerSection:
        """The addresses of worker pair ``worker``.

        An address containing ``{worker}`` (e.g. ``leader-{worker}.example.org:7788``) gets the
        worker's index in its place and keeps its port; any other address keeps its host and
        gets port + ``worker`` (port 0 stays 0: any free port). With a ``port_file``, worker
        i > 0 uses ``<port_file>.<i>``.
        """
        if worker == 0 and not any(PLACEHOLDER in a for a in (self.listen, self.connect)):
            return self
        return replace(
            self,
            listen=_worker_address(self.listen, worker),
            connect=_worker_address(self.connect, worker),
            port_file=(
                None
                if self.port_file is None or worker == 0
                else self.port_file.with_name(f"{self.port_file.name}.{worker}")
            ),
        )

    @property
    def liveness(self) -> Liveness:
        """The bridge session's liveness settings."""
        return Liveness(self.heartbeat_interval, self.heartbeat_timeout, self.give_up_after)

    def __post_init__(self) -> None:
        if self.security not in ("ratls", "insecure"):
            raise ConfigError(
                f"[peer] security: expected ratls or insecure, seen {self.security!r}",
                code="config.peer",
            )


def _worker_address(address: str, worker: int) -> str:
    if PLACEHOLDER in address:
        return address.replace(PLACEHOLDER, str(worker))
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(mismatch("[peer] address", "host:port", address), code="config.peer")
    number = int(port)
    if number and number + worker > 65535:
        raise ConfigError(
            mismatch(f"[peer] port of worker {worker}", "at most 65535", number + worker),
            code="config.peer",
        )
    return f"{host}:{number + worker if number else 0}"


@dataclass(frozen=True)
class JobConfig:
    """A whole job file for one party."""

    source: Path
    job: JobSection
    data: DataSection
    model: ModelSpec
    train: TrainSection = field(default_factory=TrainSection)
    peer: PeerSection = field(default_factory=PeerSection)
    attestation: AttestationConfig | None = None
    sealing: SealingConfig | None = None
    psi: PsiConfig | None = None
    privacy: PrivacySection = field(default_factory=PrivacySection)

    def __post_init__(self) -> None:
        check_task_settings(self.model, self.train, self.privacy)

    @property
    def training_table(self) -> Path:
        """The table training reads: the aligned output of ``[psi]`` if any, else ``[data]``."""
        return self.psi.output if self.psi is not None else self.data.path

    @property
    def role(self) -> Role:
        """This party's role."""
        return self.job.role


def check_task_settings(model: ModelSpec, train: TrainSection, privacy: PrivacySection) -> None:
    """Checks across sections that depend on ``[model] task``.

    Raises:
        ConfigError: an early-stopping metric the task does not have (``config.train``), or a
            label defence that needs 0/1 labels with another task (``config.privacy``).
    """
    from cvfl.train.metrics import METRICS

    names = METRICS[model.task]
    if train.early_stopping and train.early_stopping_metric not in names:
        raise ConfigError(
            mismatch(
                "[train] early_stopping_metric",
                f"one of {', '.join(names)} (task = {model.task!r})",
                repr(train.early_stopping_metric),
            ),
            code="config.train",
        )
    if model.task == "binary":
        return
    if privacy.defence == "marvell":
        raise ConfigError(
            mismatch("[privacy] defence", f"not marvell with task = {model.task!r}", "marvell"),
            code="config.privacy",
        )
    if privacy.label_epsilon > 0:
        raise ConfigError(
            mismatch(
                "[privacy] label_epsilon", f"0 with task = {model.task!r}", privacy.label_epsilon
            ),
            code="config.privacy",
        )


def outputs_sealed(cfg: JobConfig) -> bool:
    """Whether the job's artifacts are sealed: written, and read back, only in sealed form.

    True with a ``[sealing]`` table (whatever ``plaintext_outputs`` says); False only with
    ``[job] plaintext_outputs = true`` and no ``[sealing]``. The answer comes from the job file
    alone, never from the files on disk.

    Raises:
        ConfigError: neither ``[sealing]`` nor ``plaintext_outputs = true`` (``config.sealing``).
    """
    if cfg.sealing is not None:
        return True
    if cfg.job.plaintext_outputs:
        return False
    raise ConfigError(
        f"{cfg.source}: no [sealing] section, so checkpoints and exports would be plaintext; "
        'add [sealing] (e.g. provider = "file", key_file = "party.key" made by '
        "`cvfl keys new`) or ask for plaintext by name with [job] plaintext_outputs = true",
        code="config.sealing",
    )


def read_job_toml(path: Path) -> dict[str, Any]:
    """Parse a job file's TOML (errors name the file)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such job file", code="config.missing_file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", code="config.toml") from exc


def load_job(path: Path) -> JobConfig:
    """Load and validate a job file."""
    return job_from_mapping(read_job_toml(path), path)


def job_from_mapping(raw: Mapping[str, Any], source: Path) -> JobConfig:
    """Validate an already-parsed job table."""
    # [predict] belongs to `cvfl predict` (cvfl.serve parses it), [serve] to `cvfl serve`
    # (cvfl.online parses it); training ignores both.
    known = {
        *("job", "data", "model", "train", "peer", "attestation", "sealing", "psi", "predict"),
        *("privacy", "serve"),
    }
    for name in sorted(set(raw) - known):
        near = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"did you mean [{near[0]}]?" if near else f"valid: {', '.join(sorted(known))}"
        raise ConfigError(f"{source}: [{name}]: unknown section; {hint}", code="config.unknown_key")
    for required in ("job", "data"):
        if required not in raw:
            raise ConfigError(f"{source}: missing section [{required}]", code="config.missing")
    base = source.parent
    cfg = JobConfig(
        source=source,
        job=load_section(JobSection, "job", raw["job"], base),
        data=load_section(DataSection, "data", raw["data"], base),
        model=ModelSpec.from_toml_table(raw.get("model", {})),
        train=load_section(TrainSection, "train", raw.get("train", {}), base),
        peer=load_section(PeerSection, "peer", raw.get("peer", {}), base),
        attestation=(
            AttestationConfig.from_toml_table(raw["attestation"], base_dir=base)
            if "attestation" in raw
            else None
        ),
        sealing=(
            SealingConfig.from_toml_table(raw["sealing"], base_dir=base)
            if "sealing" in raw
            else None
        ),
        psi=PsiConfig.from_toml_table(raw["psi"], base_dir=base) if "psi" in raw else None,
        privacy=PrivacySection.from_toml_table(raw.get("privacy", {})),
    )
    if cfg.data.columns is not None and cfg.model.kind == "widedeep":
        raise ConfigError(
            mismatch(
                f"{source}: [model] kind with [data.columns]",
                '"mlp" (or "custom"); wide&deep takes integer codes without [data.columns]',
                "widedeep",
            ),
            code="config.model",
        )
    return cfg
