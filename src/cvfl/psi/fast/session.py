"""The fast-mode exchange over one bidirectional message stream.

Each side sends a hello; on the peer's hello it sends its key share; on the peer's key share it
checks the peer (:class:`~cvfl.psi.fast.gate.FastGate`), derives the session's keyed hasher and
starts a producer thread that hashes its own ids, announces their count and sends the keyed
hashes in batches (ascending order), then ``done``. The receiving thread stores the peer's keyed
hashes, checking the announced count. Any refusal is sent to the peer as an abort.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from cvfl.errors import AlignmentError, CvflError, mismatch
from cvfl.logs import get_logger
from cvfl.psi import serde
from cvfl.psi.fast.gate import FastGate
from cvfl.psi.fast.key import KeyExchange, session_transcript
from cvfl.psi.fast.key import share_transcript as _share_transcript
from cvfl.psi.keyed import TAG_BYTES, KeyedHasher
from cvfl.psi.spill import BucketStore, keys_from_bytes
from cvfl.psi.stream import FrameStream, check_peer_size, internal
from cvfl.wire import psi_pb2

log = get_logger(__name__)

# Hashes this party's ids with the session key; returns the count to announce and the batches
# of keyed hashes (concatenated, ascending).
Producer = Callable[[KeyedHasher], tuple[int, Iterable[bytes]]]


@dataclass
class _State:
    keyed: bool = False
    peer_count: int | None = None
    recv_batches: int = 0
    recv_items: int = 0
    sent_items: int = 0
    done_sent: bool = False
    peer_done: bool = False
    closed: bool = False


class FastSession(FrameStream):
    """One party's side of the fast-mode exchange; the peer's keyed hashes land in ``peer_store``.

    ``produce(hasher)`` runs in its own thread once the key is agreed: it hashes this party's
    ids (raising on duplicates) and returns the count to announce and the batches.
    """

    def __init__(
        self,
        *,
        me: serde.PsiHello,
        peer_role: str,
        gate: FastGate,
        produce: Producer,
        window: int,
        peer_store: BucketStore,
        max_peer_items: int | None = None,
    ) -> None:
        super().__init__(me=me, peer_role=peer_role)
        self.peer_count: int = 0
        self._max_peer_items = max_peer_items
        self._own_count = 0
        self._own_counted = threading.Event()  # own ids hashed: the default limit is known
        self._peer_sized = threading.Event()  # the peer's announced count passed the limit
        self._gate = gate
        self._produce = produce
        self._kx = KeyExchange()
        self._own_share: serde.KeyShare | None = None
        self.peer_store = peer_store
        self._window = threading.Semaphore(window)
        self._n = _State()

    def _failed(self) -> None:
        self._own_counted.set()
        self._peer_sized.set()

    def _sent(self, frame: psi_pb2.PsiFrame) -> None:
        if frame.WhichOneof("body") == "batch":
            self._window.release()

    # ----- the key -----------------------------------------------------------------------
    def _hellos(self, peer: serde.PsiHello) -> tuple[serde.PsiHello, serde.PsiHello]:
        return (self.me, peer) if self.me.role == "leader" else (peer, self.me)

    def _send_share(self, peer: serde.PsiHello) -> None:
        unsigned = serde.KeyShare(self._kx.public_key, self._gate_certificate(), b"")
        transcript = _share_transcript(self.me.role, self._hellos(peer), unsigned)
        self._own_share = self._gate.own_share(self._kx.public_key, transcript)
        self._out.put(serde.key_share_to_proto(self._own_share))

    def _gate_certificate(self) -> bytes:
        return self._gate.attested.certificate if self._gate.attested is not None else b""

    def _on_share(self, share: serde.KeyShare, peer: serde.PsiHello) -> None:
        if self._n.keyed or self._own_share is None:
            raise AlignmentError(
                mismatch("key share", "exactly one", "a second"), code="psi.protocol"
            )
        hellos = self._hellos(peer)
        transcript = _share_transcript(peer.role, hellos, share)
        self._gate.check_peer(share, transcript, channel_peer=self.channel_peer)
        mine = self._own_share
        shares = (mine, share) if self.me.role == "leader" else (share, mine)
        hasher = self._kx.derive(share.public_key, session_transcript(hellos, shares))
        self._n.keyed = True
        log.info("psi: fast-mode session key agreed with the %s", peer.role)
        threading.Thread(target=self._send_own, args=(hasher,), daemon=True).start()

    # ----- sending -----------------------------------------------------------------------
    def _send_own(self, hasher: KeyedHasher) -> None:
        try:
            count, batches = self._produce(hasher)
            del hasher
            self._own_count = count
            self._own_counted.set()
            self._out.put(serde.announce_to_proto(count))
            self._peer_sized.wait()  # no keyed hash goes to a peer whose set is too large
            if self.failed:
                return
            for index, tags in enumerate(batches):
                while not self._window.acquire(timeout=0.2):
                    if self.failed:
                        return
                if self.failed:
                    return
                self._out.put(serde.batch_to_proto(index, tags))
                with self._lock:
                    self._n.sent_items += len(tags) // TAG_BYTES
            if self._n.sent_items != count:
                raise AlignmentError(
                    mismatch("own keyed hashes sent", count, self._n.sent_items),
                    code="psi.internal",
                )
            with self._lock:
                self._n.done_sent = True
            self._out.put(serde.done_to_proto(count, 0))
            log.info("psi: sent %d keyed hashes", count)
            self._advance()
        except CvflError as exc:
            self.fail(exc)
        except Exception as exc:
            self.fail(internal("hashing and sending own ids", exc))

    def _advance(self) -> None:
        with self._lock:
            n = self._n
            if n.done_sent and n.peer_done and not n.closed and not self.failed:
                n.closed = True
                self._out.put(None)

    # ----- receiving ---------------------------------------------------------------------
    def _complete(self) -> bool:
        return self._n.peer_done

    def _lost(self, how: str) -> str:
        n = self._n
        return (
            f"the peer disconnected midway: {how} after {n.recv_batches} of its batches "
            f"({n.recv_items} keyed hashes), before its done message"
        )

    def _on_frame(self, kind: str | None, frame: psi_pb2.PsiFrame, peer: serde.PsiHello) -> None:
        if kind == "key":
            self._on_share(serde.key_share_from_proto(frame.key), peer)
            return
        if not self._n.keyed:
            raise AlignmentError(mismatch("frame after hello", "key", kind), code="psi.protocol")
        if kind == "announce":
            self._on_announce(frame.announce.count)
        elif kind == "batch" and self._n.peer_count is not None:
            self._on_batch(frame.batch.index, frame.batch.points, self._n.peer_count)
        elif kind == "done" and self._n.peer_count is not None:
            self._on_done(frame.done, self._n.peer_count)
        else:
            expected = "announce" if self._n.peer_count is None else "batch or done"
            raise AlignmentError(mismatch("frame", expected, kind), code="psi.protocol")

    def _on_hello(self, hello: serde.PsiHello) -> None:
        self._send_share(self.check_hello(hello))

    def _on_announce(self, count: int) -> None:
        if self._n.peer_count is not None:
            raise AlignmentError(
                mismatch("announce", "exactly one", "a second"), code="psi.protocol"
            )
        log.info("psi: peer announces %d keyed hashes", count)
        if self._max_peer_items is None:
            self._own_counted.wait()  # the default limit needs this party's own count
            if self.failed:
                return
        check_peer_size(count, self._own_count, self._max_peer_items)
        self._n.peer_count = self.peer_count = count
        self._peer_sized.set()

    def _on_batch(self, index: int, tags: bytes, announced: int) -> None:
        n = self._n
        if index != n.recv_batches:
            raise AlignmentError(
                mismatch("peer batch index", n.recv_batches, index), code="psi.protocol"
            )
        if len(tags) % TAG_BYTES:
            raise AlignmentError(
                f"peer batch {index}: payload of {len(tags)} bytes is not a whole number of "
                f"{TAG_BYTES}-byte keyed hashes",
                code="psi.bad_tag",
            )
        total = n.recv_items + len(tags) // TAG_BYTES
        if total > announced:
            raise AlignmentError(
                mismatch(
                    f"peer items after batch {index}", f"at most {announced} (announced)", total
                ),
                code="psi.count",
            )
        keys = keys_from_bytes(tags)
        self.peer_store.add(keys, np.zeros(len(keys), dtype=np.int64))
        n.recv_batches += 1
        n.recv_items = total

    def _on_done(self, done: psi_pb2.PsiDone, announced: int) -> None:
        n = self._n
        self.check_done(
            ("items the peer sent", announced, n.recv_items),
            ("peer's own count of items sent", n.recv_items, done.sent),
        )
        with self._lock:
            n.peer_done = True
        self._advance()
