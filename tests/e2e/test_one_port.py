"""Across a NAT: the follower reaches the leader only through a TCP forwarder on another loopback
address and port, for align, train and predict, each step over the attested channel.

The leader listens on 127.0.0.1:P; nothing but the forwarder at 127.0.0.2:Q knows P. Every
connection the follower opens (certificate probe, Attest, mutual TLS, PSI and bridge streams)
therefore has to go through the one forwarded port.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cvfl.cli.demo import DemoSize, prepare
from cvfl.cli.parties import free_port
from tests.e2e.jobs import SIZE, Party

pytestmark = pytest.mark.e2e
FORWARD_HOST = "127.0.0.2"


class Forwarder:
    """A plain TCP forwarder (as a NAT rule or a Kubernetes Service), counting connections."""

    def __init__(self, host: str, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server((host, 0))
        self.address = f"{host}:{self.listener.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(src, dst), daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def forwarding(port: int) -> Iterator[Forwarder]:
    forwarder = Forwarder(FORWARD_HOST, ("127.0.0.1", port))
    try:
        yield forwarder
    finally:
        forwarder.close()


def _jobs(folder: Path, port: int, forwarded: str) -> None:
    """The demo's aligning jobs, a small model, all three steps; the follower dials Q."""
    prepare(folder, DemoSize(rows=SIZE.rows, slots=SIZE.slots, epochs=1), align=True)
    for role in ("leader", "follower"):
        path = folder / f"{role}.toml"
        text = path.read_text().replace("embed_dim = 16", "embed_dim = 4")
        text = text.replace("[256, 64]", "[32, 16]").replace("[train]", "[train]\nthreads = 1")
        text = text.replace('steps = ["align", "train"]', 'steps = ["align", "train", "predict"]')
        text = re.sub(r'listen = "[^"]*"', f'listen = "127.0.0.1:{port}"', text)
        text = re.sub(r'connect = "[^"]*"', f'connect = "{forwarded}"', text)
        output = 'output = "leader/scores.parquet"\n' if role == "leader" else ""
        text += f'\n[predict]\ninput = "data/{role}.parquet"\n{output}batch_size = 64\n'
        path.write_text(text)


def test_align_train_predict_through_one_forwarded_port(tmp_path: Path) -> None:
    port = free_port()
    with forwarding(port) as forwarder:
        _jobs(tmp_path, port, forwarder.address)
        leader = Party(tmp_path, "run", "--config", "leader.toml")
        follower = Party(tmp_path, "run", "--config", "follower.toml")
        assert follower.finish(timeout=300) == 0, follower.output
        assert leader.finish(timeout=300) == 0, leader.output
    assert "all 3 steps finished: align, train, predict" in follower.output
    assert forwarder.connections >= 3 * 3  # each step: probe, Attest, mutual TLS at least
    assert forwarder.address in follower.output
    assert str(port) not in follower.output.replace(forwarder.address, "")
    reports = [
        json.loads((tmp_path / "aligned" / f"{role}.parquet.sealed.report.json").read_text())
        for role in ("leader", "follower")
    ]
    assert reports[0]["intersection"] == reports[1]["intersection"] > 0
    result = json.loads((tmp_path / "leader" / "leader-result.json").read_text())
    assert 0.0 <= result["metrics"]["auc"] <= 1.0  # one short epoch: trained, not judged
    assert any((tmp_path / "leader").glob("scores.parquet*"))


def test_second_leader_on_a_port_in_use_is_refused(tmp_path: Path) -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        _jobs(tmp_path, port, f"127.0.0.1:{port}")
        job = tmp_path / "leader.toml"
        job.write_text(job.read_text().replace('["align", "train", "predict"]', '["align"]'))
        leader = Party(tmp_path, "run", "--config", "leader.toml")
        assert leader.finish(timeout=120) == 2, leader.output
    assert "ratls.bind" in leader.output and f"127.0.0.1:{port}" in leader.output
