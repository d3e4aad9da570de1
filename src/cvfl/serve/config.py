"""The ``[predict]`` section of a job file, read beside the training sections.

Relative paths resolve against the job file's folder, like the rest of the job file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cvfl.configload import bounds, check_table_name, load_section
from cvfl.errors import ConfigError, mismatch
from cvfl.train.config import JobConfig, job_from_mapping, read_job_toml


@dataclass(frozen=True)
class PredictSection:
    """``[predict]``: what a party scores and where the leader's scores go.

    Attributes:
        input: This party's scoring table (Parquet or CSV with the id column and the export's
            feature columns; extra columns such as a label are ignored).
        output: The leader's scores (``.parquet`` or ``.csv``); sealed as ``<output>.sealed``
            unless ``plaintext_scores`` is set. Ignored by the follower.
        export: This party's exported half (default ``<workdir>/export/<role>.safetensors``,
            sealed or not).
        batch_size: Rows per Forward message.
        plaintext_scores: Write the scores unsealed (must be asked for by name).
        align: With a ``[psi]`` section, align the scoring table with the peer first.
        aligned: Where the aligned scoring table goes (default
            ``<workdir>/predict/aligned-<role>.<format>``, sealed).
        peer_fingerprint: If set, the peer's half must have exactly this parameter fingerprint.
        report: The JSON summary (default ``<workdir>/<role>-predict.json``).
    """

    input: Path
    output: Path = Path("scores.parquet")
    export: Path | None = None
    batch_size: int = field(default=1024, metadata=bounds(low=1))
    plaintext_scores: bool = False
    align: bool = True
    aligned: Path | None = None
    peer_fingerprint: str = ""
    report: Path | None = None

    def __post_init__(self) -> None:
        for key in ("input", "output", "aligned"):
            path = getattr(self, key)
            if path is not None:
                check_table_name(f"[predict] {key}", path)
        if self.batch_size <= 0:
            raise ConfigError(
                mismatch("[predict] batch_size", "a positive integer", self.batch_size),
                code="config.predict",
            )

    @classmethod
    def from_toml_table(cls, table: Mapping[str, Any], base: Path) -> PredictSection:
        """Validate the ``[predict]`` table, every key checked (:mod:`cvfl.configload`)."""
        return load_section(cls, "predict", table, base)


def load_predict_job(path: Path, **overrides: Any) -> tuple[JobConfig, PredictSection]:
    """Load a job file with its ``[predict]`` section; ``overrides`` replace section fields.

    Overrides (from command-line options) that are None are ignored; ``input`` may come from an
    override when the file has no ``[predict]`` section.
    """
    raw = read_job_toml(path)
    table = dict(raw.pop("predict", {}))
    cfg = job_from_mapping(raw, path)
    given = {k: v for k, v in overrides.items() if v is not None}
    if "input" in given and "input" not in table:
        table["input"] = str(given["input"])
    section = PredictSection.from_toml_table(table, path.parent)
    return cfg, replace(section, **given)
