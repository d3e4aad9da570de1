"""``cvfl align --config FILE`` for both parties (threads in this process, real gRPC)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cvfl.cli.app import main
from cvfl.sealing import new_key_file

from .conftest import write_table as write_ids


def write_table(path: Path, ids: list[str], prefix: str) -> Path:
    """A party's table; the leader's carries its labels (`cvfl align` checks them)."""
    write_ids(path, ids, prefix)
    if prefix == "l":
        table = pq.read_table(path)
        pq.write_table(
            table.append_column("label", pa.array([i % 2 for i in range(len(ids))])), path
        )
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(folder: Path, role: str, port: int, sealed: bool) -> Path:
    sealing = '[sealing]\nprovider = "file"\nkey_file = "key.hex"\n' if sealed else ""
    text = f"""
[job]
id = "cli-job"
role = "{role}"
seed = 1

[data]
path = "{role}.parquet"
id_column = "id"

[peer]
listen = "127.0.0.1:{port}"
connect = "127.0.0.1:{port}"

[psi]
output = "out/{role}-aligned.parquet"
plaintext_output = {"false" if sealed else "true"}
batch_size = 5
connect_timeout_s = 20
timeout_s = 30
{sealing}"""
    path = folder / f"{role}.toml"
    path.write_text(text)
    return path


def test_align_command_both_parties(tmp_path: Path) -> None:
    port = _free_port()
    write_table(tmp_path / "leader.parquet", ["a", "b", "c", "d"], "l")
    write_table(tmp_path / "follower.parquet", ["d", "x", "b"], "f")
    errors: list[BaseException] = []

    def run(role: str) -> None:
        try:
            main(
                [
                    "align",
                    "--config",
                    str(_config(tmp_path, role, port, False)),
                    "--insecure-plaintext",
                ]
            )
        except SystemExit as exc:
            if exc.code:
                errors.append(exc)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in ("leader", "follower")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    lids = pq.read_table(tmp_path / "out/leader-aligned.parquet").column("id").to_pylist()
    fids = pq.read_table(tmp_path / "out/follower-aligned.parquet").column("id").to_pylist()
    assert lids == fids and sorted(lids) == ["b", "d"]
    assert (tmp_path / "out/leader-aligned.parquet.report.json").is_file()


def test_align_command_refuses_without_channel_security(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new_key_file(tmp_path / "key.hex")
    write_table(tmp_path / "leader.parquet", ["a"], "l")
    with pytest.raises(SystemExit) as exit_:
        main(["align", "--config", str(_config(tmp_path, "leader", 1, True))])
    assert exit_.value.code == 2
    assert "--insecure-plaintext" in capsys.readouterr().err


def test_align_command_fast_mode_needs_the_insecure_flag_without_sgx(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _free_port()
    write_table(tmp_path / "leader.parquet", ["a", "b", "c"], "l")
    write_table(tmp_path / "follower.parquet", ["c", "a", "z"], "f")
    for role in ("leader", "follower"):
        path = _config(tmp_path, role, port, False)
        path.write_text(path.read_text() + 'mode = "fast"\n')
    with pytest.raises(SystemExit) as exit_:
        main(["align", "--config", str(tmp_path / "leader.toml"), "--insecure-plaintext"])
    assert exit_.value.code == 7
    err = capsys.readouterr().err
    assert "fast mode channel" in err and "--insecure-fast-mode" in err
    errors: list[object] = []

    def run(role: str) -> None:
        args = ["align", "--config", str(tmp_path / f"{role}.toml")]
        try:
            main([*args, "--insecure-plaintext", "--insecure-fast-mode"])
        except SystemExit as exc:
            if exc.code:
                errors.append(exc.code)

    threads = [threading.Thread(target=run, args=(r,)) for r in ("leader", "follower")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    lids = pq.read_table(tmp_path / "out/leader-aligned.parquet").column("id").to_pylist()
    fids = pq.read_table(tmp_path / "out/follower-aligned.parquet").column("id").to_pylist()
    assert lids == fids and sorted(lids) == ["a", "c"]


def test_align_command_honours_peer_security_insecure_like_train(tmp_path: Path) -> None:
    port = _free_port()
    write_table(tmp_path / "leader.parquet", ["a", "b", "c"], "l")
    write_table(tmp_path / "follower.parquet", ["c", "b", "z"], "f")
    for role in ("leader", "follower"):
        path = _config(tmp_path, role, port, False)
        path.write_text(path.read_text().replace("[peer]\n", '[peer]\nsecurity = "insecure"\n'))
    codes: list[object] = []

    def run(role: str) -> None:
        try:
            main(["align", "--config", str(tmp_path / f"{role}.toml")])  # no flag
        except SystemExit as exc:
            codes.append(exc.code)

    threads = [threading.Thread(target=run, args=(r,)) for r in ("leader", "follower")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not [code for code in codes if code]
    lids = pq.read_table(tmp_path / "out/leader-aligned.parquet").column("id").to_pylist()
    assert sorted(lids) == ["b", "c"]


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("batch_size", '"5"', "[psi] batch_size: expected a whole number, seen '5'"),
        ("output", '"out/leader.txt"', "[psi] output: expected a file name ending .parquet"),
    ],
)
def test_align_command_refuses_a_bad_psi_key_at_load_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, shown: str
) -> None:
    path = _config(tmp_path, "leader", 1, False)
    text = "\n".join(
        line for line in path.read_text().splitlines() if not line.startswith(f"{key} =")
    )
    path.write_text(text.replace("[psi]\n", f"[psi]\n{key} = {value}\n"))
    with pytest.raises(SystemExit) as exit_:
        main(["align", "--config", str(path), "--insecure-plaintext"])
    assert exit_.value.code == 2
    assert shown in capsys.readouterr().err


@pytest.mark.parametrize(
    ("section", "line", "shown"),
    [
        ("[train]", "batchsize = 32", "[train] batchsize: unknown key; did you mean batch_size?"),
        ("[model]", 'task = "regresion"', "[model] task: expected one of"),
        ("[job]", 'plaintext_outputs = "false"', "[job] plaintext_outputs: expected true or false"),
    ],
)
def test_align_command_checks_the_whole_job_file_like_train(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, line: str, shown: str
) -> None:
    path = _config(tmp_path, "leader", 1, False)
    text = path.read_text()
    text = (
        text.replace(f"{section}\n", f"{section}\n{line}\n")
        if section in text
        else (text + f"\n{section}\n{line}\n")
    )
    path.write_text(text)
    with pytest.raises(SystemExit) as exit_:
        main(["align", "--config", str(path), "--insecure-plaintext"])
    assert exit_.value.code == 2
    assert shown in capsys.readouterr().err


def _align_both(tmp_path: Path, port: int) -> list[str | int | None]:
    codes: list[str | int | None] = []

    def run(role: str) -> None:
        try:
            main(["align", "--config", str(tmp_path / f"{role}.toml"), "--insecure-plaintext"])
        except SystemExit as exc:
            codes.append(exc.code)

    for role in ("leader", "follower"):
        _config(tmp_path, role, port, False)
    threads = [threading.Thread(target=run, args=(r,)) for r in ("leader", "follower")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return codes


def test_a_failed_alignment_keeps_the_aligned_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_table(tmp_path / "leader.parquet", ["a", "b", "c"], "l")
    write_table(tmp_path / "follower.parquet", ["c", "b", "z"], "f")
    assert not [code for code in _align_both(tmp_path, _free_port()) if code]
    outputs = [tmp_path / f"out/{role}-aligned.parquet" for role in ("leader", "follower")]
    before = [path.read_bytes() for path in outputs]
    # Nothing in common now: both parties refuse and the good tables stay byte for byte.
    write_table(tmp_path / "follower.parquet", ["x", "y"], "f")
    assert _align_both(tmp_path, _free_port()) == [7, 7]
    assert "[psi.empty]" in capsys.readouterr().err
    assert [path.read_bytes() for path in outputs] == before
    # A header-only table is refused before the peer is contacted (no peer runs here).
    write_table(tmp_path / "leader.parquet", [], "l")
    with pytest.raises(SystemExit) as exit_:
        main(["align", "--config", str(tmp_path / "leader.toml"), "--insecure-plaintext"])
    assert exit_.value.code == 3
    assert "leader.parquet: the table is empty (0 rows)" in capsys.readouterr().err
    assert [path.read_bytes() for path in outputs] == before


def test_align_checks_the_leaders_labels_before_the_peer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_ids(tmp_path / "leader.parquet", ["a", "b"], "l")  # no label column
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "align",
                "--config",
                str(_config(tmp_path, "leader", 1, False)),
                "--insecure-plaintext",
            ]
        )
    assert exit_.value.code == 3
    assert "leader.parquet: missing column 'label'" in capsys.readouterr().err


def test_align_checks_its_table_in_batches_with_the_files_row_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cvfl.psi import gather

    monkeypatch.setattr(gather, "SCAN_ROWS", (2, 2))  # batches of 2 rows: row 7 is in the 4th
    ids = [f"u{i}" for i in range(10)]
    write_ids(tmp_path / "leader.parquet", ids, "l")
    table = pq.read_table(tmp_path / "leader.parquet")
    labels = pa.array([2 if i == 7 else i % 2 for i in range(10)])
    pq.write_table(table.append_column("label", labels), tmp_path / "leader.parquet")
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "align",
                "--config",
                str(_config(tmp_path, "leader", 1, False)),
                "--insecure-plaintext",
            ]
        )
    assert exit_.value.code == 3
    assert "column 'label' row 7: label must be 0 or 1" in capsys.readouterr().err
