"""Both parties align real tables over gRPC on 127.0.0.1; results match set intersection."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvfl.bridge.security import PlaintextSecurity
from cvfl.errors import AlignmentError, ConfigError
from cvfl.psi import AlignJob, align
from cvfl.psi.config import GROUP_NAMES
from cvfl.sealing import is_sealed, new_key_file

from .conftest import align_case, check_aligned, psi_config, run_pair, write_table

CASES = {
    "empty-both": ([], []),
    "empty-leader": ([], ["a", "b"]),
    "disjoint": ([f"l{i}" for i in range(40)], [f"f{i}" for i in range(30)]),
    "identical": ([f"u{i}" for i in range(50)], [f"u{i}" for i in reversed(range(50))]),
    "one-element": (["only"], ["only"]),
    "unicode": (
        ["žluťoučký", "日本語", "emoji-🦀", "e\u0301", "é"],
        ["é", "日本語", "🦀", "e\u0301"],
    ),
    "very-long": (["x" * 100_000, "y" * 5000 + "1", "short"], ["y" * 5000 + "1", "x" * 100_000]),
}


@pytest.mark.parametrize("group", GROUP_NAMES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_set_intersection(tmp: Path, case: str, group: str) -> None:
    leader, follower = CASES[case]
    align_case(tmp, leader, follower, group=group)


def test_integer_ids_match_their_text_in_csv_and_parquet_differently_typed(tmp: Path) -> None:
    rng = random.Random(5)
    leader = rng.sample(range(10**9), 120)
    follower = [*leader[:60], *rng.sample(range(10**9, 2 * 10**9), 40)]
    rng.shuffle(follower)
    out = run_pair(tmp, leader, [str(v) for v in follower], suffix=".csv")
    check_aligned(out, leader, follower)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    common=st.sets(st.text(min_size=1, max_size=12), max_size=25),
    only_l=st.sets(st.text(min_size=1, max_size=12), max_size=25),
    only_f=st.sets(st.text(min_size=1, max_size=12), max_size=25),
    seed=st.integers(0, 2**32),
    group=st.sampled_from(GROUP_NAMES),
)
def test_random_tables(
    tmp_path_factory: pytest.TempPathFactory,
    common: set[str],
    only_l: set[str],
    only_f: set[str],
    seed: int,
    group: str,
) -> None:
    rng = random.Random(seed)
    leader = sorted(common | only_l)
    follower = sorted(common | (only_f - only_l))
    rng.shuffle(leader)
    rng.shuffle(follower)
    batch_size = rng.randint(1, 9)
    align_case(
        tmp_path_factory.mktemp("psi"),
        leader,
        follower,
        batch_size=batch_size,
        group=group,
        max_peer_items=1000,  # the sets' sizes are unrelated here
    )


def test_spilling_to_sealed_files_gives_the_same_result(tmp: Path) -> None:
    rng = random.Random(9)
    leader = [f"id-{i}" for i in rng.sample(range(3000), 900)]
    follower = [f"id-{i}" for i in rng.sample(range(3000), 700)]
    out = run_pair(
        tmp,
        leader,
        follower,
        spill_threshold=250,
        batch_size=50,
        spill_dir=tmp / "spill",
        group="ristretto255",
    )
    check_aligned(out, leader, follower)
    assert out.leader.spills >= 3 and out.follower.spills >= 3
    assert not any((tmp / "spill").rglob("*")), "spill files left behind"


def test_sealed_output_is_sealed_and_reads_back(tmp: Path) -> None:
    keys = new_key_file(tmp / "key.hex")
    leader, follower = ["a", "b", "c", "d"], ["d", "c", "x"]
    out = run_pair(tmp, leader, follower, keys=keys, plaintext_output=False)
    check_aligned(out, leader, follower)
    assert is_sealed(tmp / "leader-aligned.parquet")
    assert out.leader.sealed and out.follower.sealed
    report = (tmp / "leader-aligned.parquet.report.json").read_text()
    assert '"intersection": 2' in report and '"a"' not in report


def test_unsealed_output_must_be_asked_for(tmp: Path) -> None:
    path = write_table(tmp / "l.parquet", ["a"], "l")
    cfg = psi_config(tmp, "leader", plaintext_output=False)
    with pytest.raises(ConfigError, match="plaintext_output"):
        align(AlignJob("j", "leader", path, "id", "127.0.0.1:0"), cfg, _plain(), keys=None)


def test_duplicates_are_refused_by_default_naming_rows_not_ids(tmp: Path) -> None:
    ids = ["secret-a", "b", "secret-a", "c", "b", "secret-a"]
    path = write_table(tmp / "l.parquet", ids, "l")
    cfg = psi_config(tmp, "leader")
    with pytest.raises(AlignmentError) as err:
        align(AlignJob("j", "leader", path, "id", "127.0.0.1:0"), cfg, _plain(), keys=None)
    assert err.value.code == "psi.duplicates"
    assert "3 rows" in err.value.message and "rows 2, 4, 5" in err.value.message
    assert "secret" not in err.value.message
    assert not cfg.output.exists()


def test_duplicates_can_be_dropped_keeping_first_rows(tmp: Path) -> None:
    leader = ["a", "b", "a", "c", "b"]
    follower = ["b", "a", "z"]
    out = run_pair(tmp, leader, follower, duplicates="drop")
    lids = out.leader_table.column("id").to_pylist()
    assert lids == out.follower_table.column("id").to_pylist()
    assert sorted(lids) == ["a", "b"]
    first = {"a": 0, "b": 1}
    assert out.leader_table.column("l_row").to_pylist() == [first[i] for i in lids]
    assert out.leader.duplicates_dropped == 2


def _plain() -> PlaintextSecurity:
    return PlaintextSecurity()


def test_csv_ids_are_verbatim_text_and_match_parquet_integers(tmp: Path) -> None:
    leader = ["007", "7", "1.0", "x"]
    out = run_pair(tmp, leader, [7, 1, 8], suffix=".csv", follower_suffix=".parquet")
    assert out.leader_table.column("id").to_pylist() == ["7"]
    assert out.follower_table.column("id").to_pylist() == [7]
    assert out.leader_table.column("l_row").to_pylist() == [1]


def test_the_aligned_order_is_fixed_by_the_tables_and_the_job(tmp: Path) -> None:
    """Fresh scalars every run, yet the same order; another seed gives another order."""
    leader = [f"u{i}" for i in range(300)]
    follower = [f"u{i}" for i in range(100, 400)]
    runs = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        folder = tmp / name
        folder.mkdir()
        out = run_pair(folder, leader, follower, plaintext_output=True, seed=seed)
        check_aligned(out, leader, follower)
        runs.append((out.leader.order_fingerprint, out.leader_table.column("id").to_pylist()))
    assert runs[0] == runs[1]
    assert runs[0][1] != sorted(runs[0][1])  # an order of its own, not the input's or sorted
    assert runs[2][0] != runs[0][0] and sorted(runs[2][1]) == sorted(runs[0][1])
    assert runs[2][1] != runs[0][1]
