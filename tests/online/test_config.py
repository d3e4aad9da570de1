"""``[serve]``: read beside the training sections, every key checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvfl.api.tomlout import dumps
from cvfl.errors import ConfigError
from cvfl.online.config import ServeSection, load_serve_job
from cvfl.train.config import load_job
from tests.conftest import job_tables, make_tables


def _job(tmp_path: Path, serve: dict[str, object] | None) -> Path:
    leader, _ = make_tables(tmp_path, rows=20)
    raw = job_tables(tmp_path, leader, "leader")
    if serve is not None:
        raw["serve"] = serve
    path = tmp_path / "leader.toml"
    path.write_text(dumps(raw))
    return path


def test_serve_section_is_read_and_training_ignores_it(tmp_path: Path) -> None:
    path = _job(tmp_path, {"table": "data.parquet", "max_wait_ms": 0.5, "threads": 2})
    cfg, section = load_serve_job(path)
    assert section.table == tmp_path / "data.parquet"
    assert (section.max_wait_ms, section.threads, section.fallback) == (0.5, 2, "not_scorable")
    assert section.cache_ids == 100_000
    assert load_job(path).job.id == cfg.job.id


@pytest.mark.parametrize(
    ("serve", "code", "text"),
    [
        (None, "config.serve", "[serve]"),
        ({}, "config.missing", "table"),
        ({"table": "t.parquet", "max_batch": 0}, "config.range", "max_batch"),
        ({"table": "t.parquet", "cache_ids": -1}, "config.range", "cache_ids"),
        ({"table": "t.parquet", "cache_ids": "many"}, "config.type", "cache_ids"),
        ({"table": "t.parquet", "fallback": "leader-only"}, "config.value", "fallback"),
        ({"table": "t.parquet", "grpc_listen": "nowhere"}, "config.serve", "grpc_listen"),
        ({"table": "t.parquet", "follower_timeout": 0}, "config.range", "follower_timeout"),
        ({"table": "t.parquet", "max_wait": 2}, "config.unknown_key", "max_wait"),
        ({"table": "t.txt"}, "config.format", "table"),
    ],
)
def test_bad_serve_sections_are_refused_by_key(
    tmp_path: Path, serve: dict[str, object] | None, code: str, text: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_serve_job(_job(tmp_path, serve))
    assert caught.value.code == code
    assert text in caught.value.message


def test_a_section_built_in_python_is_checked_too() -> None:
    with pytest.raises(ConfigError):
        ServeSection(table=Path("t.parquet"), http_listen="127.0.0.1:99999")
