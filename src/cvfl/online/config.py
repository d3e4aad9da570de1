"""The ``[serve]`` section of a job file (``cvfl serve``), read beside the training sections.

Relative paths resolve against the job file's folder, like the rest of the job file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cvfl.configload import bounds, check_table_name, load_section
from cvfl.errors import ConfigError, mismatch
from cvfl.train.config import JobConfig, job_from_mapping, read_job_toml


def host_port(key: str, address: str) -> tuple[str, int]:
    """Split ``host:port`` (port 0 to 65535), naming ``[serve] key`` when it is not one."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(mismatch(f"[serve] {key}", "host:port", address), code="config.serve")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class ServeSection:
    """``[serve]``: what a party serves and, for the leader, how it takes requests.

    Attributes:
        table: This party's feature table, indexed by the id column (Parquet or CSV, sealed or
            not; the export's feature columns, extra columns ignored).
        export: This party's exported half (default ``<workdir>/export/<role>.safetensors``,
            sealed or not as the job says).
        grpc_listen: Leader: where ``cvfl.v1.Scoring`` listens (port 0: any free port).
        http_listen: Leader: where the HTTP/JSON API listens (port 0: any free port).
        max_wait_ms: Leader: how long a request waits for others to join its micro-batch.
        max_batch: Leader: the most ids in one micro-batch sent to the follower.
        max_request_ids: Leader: the most ids in one request.
        follower_timeout: Leader: seconds to wait for the follower's activations before the
            batch gets the fallback.
        fallback: Leader: what an id the split model cannot score gets: ``not_scorable`` (a
            result saying why), or ``leader_only`` (a score of the leader-only model, made by
            ``cvfl fallback``, for ids whose leader features are at hand).
        fallback_export: Leader: the leader-only model (default
            ``<workdir>/export/leader-only.safetensors``, sealed or not as the job says).
        peer_fingerprint: If set, the peer's half must have exactly this parameter fingerprint.
        drain_seconds: On SIGTERM, how long requests in flight may still finish.
        port_file: Leader: where to write the chosen ports as JSON (``grpc``, ``http``,
            ``bridge``).
        threads: PyTorch intra-op threads (0: every core; the default 1 suits small batches).
        cache_ids: Rows of this party's table whose per-row outputs (the follower's
            activations, the leader's bottom tower) are kept while an export is loaded
            (:mod:`cvfl.online.cache`): a table of at most this many rows is computed whole at
            load, a larger one keeps the rows used most recently; 0: no cache.
        tls_cert: Leader: a PEM certificate (chain) for both request APIs; with ``tls_key``
            they speak TLS only (:mod:`cvfl.online.tls`). Neither: plaintext.
        tls_key: Leader: the PEM private key of ``tls_cert``.
        tls_client_ca: Leader: PEM CA certificates; when set, clients must present a
            certificate they issued (mutual TLS).
    """

    table: Path
    export: Path | None = None
    grpc_listen: str = "127.0.0.1:7790"
    http_listen: str = "127.0.0.1:7791"
    max_wait_ms: float = field(default=2.0, metadata=bounds(low=0.0, high=1000.0))
    max_batch: int = field(default=256, metadata=bounds(low=1, high=65536))
    max_request_ids: int = field(default=1024, metadata=bounds(low=1, high=65536))
    follower_timeout: float = field(default=1.0, metadata=bounds(low=0.0, low_open=True))
    fallback: Literal["not_scorable", "leader_only"] = "not_scorable"
    fallback_export: Path | None = None
    peer_fingerprint: str = ""
    drain_seconds: float = field(default=5.0, metadata=bounds(low=0.0))
    port_file: Path | None = None
    threads: int = field(default=1, metadata=bounds(low=0, high=1024))
    cache_ids: int = field(default=100_000, metadata=bounds(low=0, high=1 << 26))
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None

    def __post_init__(self) -> None:
        check_table_name("[serve] table", self.table)
        host_port("grpc_listen", self.grpc_listen)
        host_port("http_listen", self.http_listen)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError(
                mismatch("[serve] tls_cert and tls_key", "both or neither", self._tls_keys()),
                code="config.serve",
            )
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError(
                mismatch("[serve] tls_client_ca", "tls_cert and tls_key beside it", "neither"),
                code="config.serve",
            )

    def _tls_keys(self) -> str:
        given = [k for k in ("tls_cert", "tls_key") if getattr(self, k) is not None]
        return " and ".join(given) + " only"

    @classmethod
    def from_toml_table(cls, table: Mapping[str, Any], base: Path) -> ServeSection:
        """Validate the ``[serve]`` table, every key checked (:mod:`cvfl.configload`)."""
        return load_section(cls, "serve", table, base)


def load_serve_job(path: Path) -> tuple[JobConfig, ServeSection]:
    """Load a job file with its ``[serve]`` section.

    Raises:
        ConfigError: no ``[serve]`` section (``config.serve``), or an invalid one.
    """
    raw = read_job_toml(path)
    table = raw.pop("serve", None)
    cfg = job_from_mapping(raw, path)
    if table is None:
        raise ConfigError(
            mismatch(f"{path}: [serve]", "a section with at least table = ...", "none"),
            code="config.serve",
        )
    return cfg, ServeSection.from_toml_table(table, path.parent)
