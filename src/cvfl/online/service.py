"""The two long-running parties of ``cvfl serve``, started and drained as one object each."""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future

from cvfl.bridge.security import ChannelSecurity
from cvfl.errors import PeerUnavailableError
from cvfl.fsutil import atomic_write_bytes
from cvfl.logs import get_logger
from cvfl.online.batching import LoopThread, MicroBatcher, Pending
from cvfl.online.config import ServeSection
from cvfl.online.follower import serve_follower
from cvfl.online.follower_port import FollowerPort
from cvfl.online.grpc_api import GrpcServer, ScoringServicer
from cvfl.online.http_api import make_app
from cvfl.online.http_server import HttpServer
from cvfl.online.metrics import Metrics
from cvfl.online.party import ServingParty, load_serving_party
from cvfl.online.request import ScoreRequest, ScoreResult
from cvfl.online.scorer import LeaderScorer
from cvfl.online.tls import ApiTls, load_api_tls

log = get_logger(__name__)


class LeaderService:
    """The leader: its half, the follower's channel, the batcher and both request APIs."""

    def __init__(self, party: ServingParty, security: ChannelSecurity) -> None:
        self.section = party.section
        self.metrics = Metrics()
        self.draining = False
        self._port = FollowerPort(party, security)
        self.metrics.follower_up = self._port.connected.is_set
        scorer = LeaderScorer(self._port, self.metrics, self.section.follower_timeout)
        self._loop = LoopThread("cvfl-serve-loop")  # batching and the gRPC API
        self._batcher = MicroBatcher(
            scorer, self.section.max_wait_ms / 1000, self.section.max_batch, self._loop
        )
        servicer = ScoringServicer(self.score, self.section.max_request_ids, self.metrics)
        tls = load_api_tls(self.section)
        self._grpc = GrpcServer(servicer, self.section.grpc_listen, self._loop, tls)
        self.grpc_port = self._grpc.port
        self._http = HttpServer(make_app(self), self.section.http_listen, tls)
        self.http_port = self._http.port
        self.bridge_port = self._port.port
        self._write_ports()
        log.info(
            "serve: scoring on gRPC port %d and HTTP port %d (%s)",
            self.grpc_port,
            self.http_port,
            _api_transport(tls),
        )

    def _write_ports(self) -> None:
        if self.section.port_file is not None:
            ports = {"grpc": self.grpc_port, "http": self.http_port, "bridge": self.bridge_port}
            atomic_write_bytes(self.section.port_file, json.dumps(ports).encode(), mode=0o644)

    @property
    def party(self) -> ServingParty:
        """The half and table serving now (a reloaded one once the follower greets it)."""
        return self._port.party

    @property
    def staged(self) -> ServingParty | None:
        """A reloaded half waiting for the follower to greet it with its matching half."""
        return self._port.staged

    @property
    def follower_connected(self) -> bool:
        """Whether the follower's channel is up now."""
        return self._port.connected.is_set()

    def wait_for_follower(self, timeout: float) -> bool:
        """Wait until the follower is connected; True if it is."""
        return self._port.connected.wait(timeout)

    def submit(self, request: ScoreRequest) -> Future[list[ScoreResult]]:
        """Queue a checked request for the next micro-batch.

        Raises:
            DataError: inline features that do not fit the export (naming the column).
            PeerUnavailableError: the service is draining (``serve.draining``).
        """
        return self._batcher.submit(self._pending(request))

    async def score(self, request: ScoreRequest) -> list[ScoreResult]:
        """Score a checked request; awaited in the batcher's loop (the gRPC API's).

        Raises:
            DataError: inline features that do not fit the export (naming the column).
            PeerUnavailableError: the service is draining (``serve.draining``).
        """
        return await self._batcher.wait_for(self._pending(request))

    def _pending(self, request: ScoreRequest) -> Pending:
        if self.draining:
            raise PeerUnavailableError("the service is shutting down", code="serve.draining")
        party, features = self.party, None
        if request.features:
            features = party.inline_features(request.ids, request.features)
        return Pending(request, features, party)

    def reload(self, section: ServeSection | None = None) -> None:
        """Load the export and table again; serve them once the follower greets the new half.

        ``section`` holds new ``[serve]`` settings (e.g. a new ``peer_fingerprint``). With the
        follower connected, the new half is staged: the old half and stream keep scoring until
        a follower stream greets the new half, then both switch at once (a second reload
        replaces the staged half). With no follower connected, the new half serves at once.
        Batches already sent are scored with the half they were sent under. The API limits and
        batching settings stay as started.

        Raises:
            CvflError: the new export or table is refused; the service keeps the old one.
        """
        current = self._port.party
        party = load_serving_party(current.cfg, section or current.section)
        if self._port.use(party):
            log.info("serve: reloaded; now serving half %s", party.short)
            return
        log.info(
            "serve: reloaded half %s; half %s serves until the follower greets the new one",
            party.short,
            current.short,
        )

    def drain(self) -> None:
        """Refuse new requests, finish those in flight, then stop everything (once)."""
        if self.draining:
            return
        self.draining = True
        grace = self.section.drain_seconds
        log.info("serve: draining (up to %.1f s)", grace)
        self._batcher.close(grace)
        self._grpc.stop(grace)
        self._http.stop(grace)
        self._port.stop()
        self._loop.stop()
        if self.section.port_file is not None:
            self.section.port_file.unlink(missing_ok=True)


def _api_transport(tls: ApiTls | None) -> str:
    if tls is None:
        return "plaintext: keep the request ports on the leader's own network"
    return "TLS, client certificates required" if tls.client_ca else "TLS"


class FollowerService:
    """The follower: keeps its channel to the leader in a thread until stopped."""

    def __init__(self, party: ServingParty, security: ChannelSecurity) -> None:
        self.party = party
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(security,), name="cvfl-serve-follower", daemon=True
        )
        self._thread.start()

    def _run(self, security: ChannelSecurity) -> None:
        try:
            serve_follower(lambda: self.party, security, self._stop)
        except BaseException as exc:  # handed to whoever waits
            self.error = exc
            log.error("serve: the follower stopped: %s", exc)

    @property
    def running(self) -> bool:
        """Whether the follower still serves."""
        return self._thread.is_alive()

    def reload(self, section: ServeSection | None = None) -> None:
        """Load the export and table again and greet the leader with them on a new stream.

        The current stream keeps answering with the old half until the leader, having reloaded
        too, accepts the new one and closes the old stream.

        Raises:
            CvflError: the new export or table is refused; the follower keeps the old one.
        """
        self.party = load_serving_party(self.party.cfg, section or self.party.section)
        log.info("serve: reloaded; greeting the leader with half %s", self.party.short)

    def drain(self) -> None:
        """Stop answering and close the channel."""
        self._stop.set()
        self._thread.join(self.party.section.drain_seconds + 2.0)
