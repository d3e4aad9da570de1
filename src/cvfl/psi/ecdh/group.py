"""The groups ECDH-PSI runs over, and one party's secret exponent for one run (:class:`Blinder`).

Two groups implement :class:`Group`: ``x25519`` (Curve25519's prime-order subgroup, X25519
blinding; the default, faster here) and ``ristretto255``. Both parties must use the same one (it
is in the hello). Blinded values are 32 bytes in both.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Protocol

from cvfl.errors import ConfigError, mismatch
from cvfl.psi.ecdh.points import POINT_BYTES, check_length
from cvfl.psi.ecdh.ristretto import Ristretto255
from cvfl.psi.ecdh.x25519 import X25519

__all__ = [
    "DEFAULT_GROUP",
    "GROUPS",
    "POINT_BYTES",
    "Blinder",
    "Group",
    "check_length",
    "domain_label",
    "get_group",
]


class Group(Protocol):
    """A prime-order group for DH-PSI with 32-byte encodings and a commutative blinding."""

    name: str
    domain: bytes

    def new_secret(self) -> bytes:
        """Return a fresh random secret exponent (32 bytes)."""
        ...

    def hash_and_blind(self, secret: bytes, label: bytes, items: Sequence[bytes]) -> bytes:
        """Hash canonical ids to the group under ``label`` and blind them with ``secret``."""
        ...

    def blind_points(self, secret: bytes, points: bytes, *, batch: int, what: str) -> bytes:
        """Validate the peer's points and blind them with ``secret`` (refusal names the index)."""
        ...

    def check_answers(self, points: bytes, *, batch: int, what: str) -> None:
        """Validate the peer's answers (doubly-blinded points, which are only compared)."""
        ...


GROUPS: dict[str, Group] = {g.name: g for g in (X25519(), Ristretto255())}
DEFAULT_GROUP = "x25519"


def get_group(name: str) -> Group:
    """Return the group called ``name``.

    Raises:
        ConfigError: no such group.
    """
    group = GROUPS.get(name)
    if group is None:
        raise ConfigError(
            mismatch("psi.group", f"one of {sorted(GROUPS)}", repr(name)), code="config.value"
        )
    return group


def domain_label(job_id: str, group: Group) -> bytes:
    """Return the hash-to-group prefix: the group's tag plus the length-prefixed job id."""
    job = job_id.encode("utf-8")
    return group.domain + struct.pack(">I", len(job)) + job


class Blinder:
    """One party's secret exponent in one group for one run; fresh unless restored.

    The secret leaves this object only to be sealed into a resumable alignment's state
    (:mod:`cvfl.psi.ecdh.state`); it is not logged, pickled or shown by ``repr``.
    """

    __slots__ = ("_secret", "group")

    def __init__(self, group: Group | None = None, *, secret: bytes | None = None) -> None:
        self.group = group or GROUPS[DEFAULT_GROUP]
        if secret is not None and len(secret) != 32:
            raise ValueError("a PSI secret is 32 bytes")
        self._secret = self.group.new_secret() if secret is None else secret

    def secret_for_sealing(self) -> bytes:
        """The secret, only to be sealed into a resumable alignment's state (never logged)."""
        return self._secret

    def __repr__(self) -> str:
        return f"Blinder({self.group.name}, <secret>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a PSI blinder holds a secret scalar and cannot be pickled")

    def hash_and_blind(self, label: bytes, items: Sequence[bytes]) -> bytes:
        """Map canonical ids to the group under ``label`` and blind them (32 bytes each)."""
        return self.group.hash_and_blind(self._secret, label, items)

    def blind_points(self, points: bytes, *, batch: int, what: str) -> bytes:
        """Blind each received point, validating every one.

        Raises:
            AlignmentError: a point is malformed, not in the group, or of small order; the
                message names the batch and the index within it (``psi.bad_point``).
        """
        return self.group.blind_points(self._secret, points, batch=batch, what=what)

    def check_answers(self, points: bytes, *, batch: int, what: str) -> None:
        """Validate the peer's answers to one of our batches (``psi.bad_point``)."""
        self.group.check_answers(points, batch=batch, what=what)
