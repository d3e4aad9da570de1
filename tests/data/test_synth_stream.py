"""``cvfl data synth``'s chunked generator: chunk-size independent, same model as synthesize."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.data import SynthSpec, synth_stream
from cvfl.data.synth_stream import CHUNK_ROWS, Permutation, Signal, party_chunks, write_synth


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3000), seed=st.integers(0, 2**32))
def test_permutation_is_a_bijection(n: int, seed: int) -> None:
    image = Permutation(n, np.uint64(seed))(np.arange(n, dtype=np.uint64))
    assert np.array_equal(np.sort(image), np.arange(n, dtype=np.uint64))


@settings(max_examples=15, deadline=None)
@given(
    rows=st.integers(1, 300),
    overlap=st.sampled_from([1.0, 0.8, 0.3]),
    shuffle=st.booleans(),
    chunk=st.integers(1, 64),
)
def test_chunks_do_not_change_the_tables(
    rows: int, overlap: float, shuffle: bool, chunk: int
) -> None:
    spec = SynthSpec(rows=rows, slots=3, overlap=overlap, shuffle=shuffle, seed=4)
    signal = Signal(spec)
    for party in (0, 1):
        whole = pa.concat_tables(party_chunks(spec, party, signal, chunk_rows=rows))
        pieces = pa.concat_tables(party_chunks(spec, party, signal, chunk_rows=chunk))
        assert pieces.equals(whole)


def test_overlap_shuffle_and_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth_stream, "GROUP_ROWS", 4096)  # half a chunk
    spec = SynthSpec(rows=CHUNK_ROWS + 1000, slots=2, overlap=0.8, shuffle=True, seed=2)
    written = write_synth(spec, tmp_path, "parquet")
    lead = pq.read_table(written["leader"][0])
    follow = pq.read_table(written["follower"][0])
    lead_ids = set(lead.column("example_id").to_pylist())
    follow_ids = set(follow.column("example_id").to_pylist())
    shared = round(spec.rows * 0.8)
    rest = spec.rows - shared
    assert len(lead_ids & follow_ids) == shared
    assert len(lead_ids) == lead.num_rows == written["leader"][1] == shared + rest // 2
    assert len(follow_ids) == follow.num_rows == shared + rest - rest // 2
    assert lead.column_names == ["example_id", "l0", "l1", "label"]
    meta = pq.ParquetFile(written["leader"][0]).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes[:-1] == [4096] * (len(sizes) - 1) and sum(sizes) == lead.num_rows
    # the same spec gives the same files
    again = write_synth(spec, tmp_path / "again", "parquet")
    assert pq.read_table(again["leader"][0]).equals(lead)


def test_unshuffled_full_overlap_is_aligned() -> None:
    spec = SynthSpec(rows=500, slots=2, seed=3)
    signal = Signal(spec)
    lead = pa.concat_tables(party_chunks(spec, 0, signal))
    follow = pa.concat_tables(party_chunks(spec, 1, signal))
    assert lead.column("example_id").equals(follow.column("example_id"))


def test_label_needs_both_parties() -> None:
    spec = SynthSpec(rows=4000, slots=6, informative=3, seed=5)
    signal = Signal(spec)
    lead = pa.concat_tables(party_chunks(spec, 0, signal))
    follow = pa.concat_tables(party_chunks(spec, 1, signal))
    labels = lead.column("label").to_numpy()
    assert 0.35 < labels.mean() < 0.65
    for table, prefix in ((lead, "l"), (follow, "f")):
        codes = table.column(f"{prefix}0").to_numpy()
        assert codes.min() >= 0 and codes.max() < spec.vocab
        rates = [labels[codes == v].mean() for v in range(101) if (codes == v).sum() > 20]
        assert max(rates) - min(rates) > 0.2


def test_csv_tables_hold_the_same_rows_as_parquet(tmp_path: Path) -> None:
    import pyarrow.csv as pacsv

    spec = SynthSpec(rows=CHUNK_ROWS + 500, slots=2, overlap=0.8, shuffle=True, seed=4)
    parquet = write_synth(spec, tmp_path / "p", "parquet")
    csv = write_synth(spec, tmp_path / "c", "csv")
    for role in ("leader", "follower"):
        assert csv[role][1:] == parquet[role][1:]
        text = pacsv.read_csv(
            csv[role][0],
            convert_options=pacsv.ConvertOptions(column_types={"example_id": pa.string()}),
        )
        table = pq.read_table(parquet[role][0])
        assert text.column("example_id").equals(table.column("example_id"))
