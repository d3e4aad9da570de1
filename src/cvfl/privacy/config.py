"""``[privacy]``: how the leader protects its labels, validated, and its form in the hello.

Both parties must run the same ``[privacy]`` section (defaults filled in): the training hello
carries it as canonical JSON, and a peer whose section differs in any field is refused with one
message naming each field, the expected and the seen value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cvfl.configload import load_section
from cvfl.errors import ConfigError, mismatch

DEFENCES = ("none", "max_norm", "gaussian", "marvell")
MAX_WIRE_BYTES = 1024  # a peer's [privacy] larger than this is not read


@dataclass(frozen=True)
class PrivacySection:
    """``[privacy]``: the defence on the cut-layer gradient, label DP and the leakage audit.

    Attributes:
        defence: ``none``, ``max_norm`` (pad every row's expected gradient norm to the batch's
            largest), ``gaussian`` (clip each row to ``clip_norm``, add Gaussian noise of
            standard deviation ``noise_multiplier * clip_norm``; ε is reported at ``delta``) or
            ``marvell`` (noise shaped to make the two classes' gradients alike, of total power
            ``marvell_strength`` times the squared distance of the class means).
        clip_norm: Per-example L2 bound of ``gaussian``.
        noise_multiplier: Noise of ``gaussian``, in units of ``clip_norm``.
        marvell_strength: Noise power budget of ``marvell``, relative to the class means' gap.
        delta: The δ at which ε is reported (``gaussian`` and ``label_epsilon``).
        label_epsilon: Randomized response on the leader's training labels with this ε (0: off).
        audit: Measure what the gradients sent let the follower learn of the labels.
    """

    defence: str = "none"
    clip_norm: float = 1.0
    noise_multiplier: float = 1.0
    marvell_strength: float = 4.0
    delta: float = 1e-5
    label_epsilon: float = 0.0
    audit: bool = True

    def __post_init__(self) -> None:
        if self.defence not in DEFENCES:
            raise ConfigError(
                mismatch("[privacy] defence", " or ".join(DEFENCES), repr(self.defence)),
                code="config.privacy",
            )
        if not isinstance(self.audit, bool):  # a string "false" is not false
            raise ConfigError(
                mismatch("[privacy] audit", "true or false", repr(self.audit)),
                code="config.privacy",
            )
        _number("clip_norm", self.clip_norm, 0.0, math.inf, "a number above 0")
        _number("noise_multiplier", self.noise_multiplier, 0.0, math.inf, "a number above 0")
        _number("marvell_strength", self.marvell_strength, 0.0, math.inf, "a number above 0")
        _number("delta", self.delta, 0.0, 1.0, "a number in (0, 1)")
        if not (_is_number(self.label_epsilon) and 0.0 <= self.label_epsilon < math.inf):
            raise ConfigError(
                mismatch(
                    "[privacy] label_epsilon", "0 (off) or a positive number", self.label_epsilon
                ),
                code="config.privacy",
            )

    @classmethod
    def from_toml_table(cls, table: Mapping[str, Any]) -> PrivacySection:
        """Build from the job's ``[privacy]`` table, every key checked (:mod:`cvfl.configload`).

        Types and unknown keys are refused by the loader; ranges by :meth:`__post_init__`.
        """
        return load_section(cls, "privacy", table, None)

    @property
    def active(self) -> bool:
        """Whether anything changes what the follower receives."""
        return self.defence != "none" or self.label_epsilon > 0

    def to_wire(self) -> str:
        """The canonical JSON the hello carries (sorted keys, no spaces)."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(name: str, value: object, low: float, high: float, expected: str) -> None:
    """Refuse anything but a finite number strictly between ``low`` and ``high``."""
    if not (_is_number(value) and low < float(value) < high):  # type: ignore[arg-type]
        raise ConfigError(
            mismatch(f"[privacy] {name}", expected, repr(value)), code="config.privacy"
        )


def wire_mismatches(mine: str, theirs: str) -> list[tuple[str, object, object]]:
    """``(field, expected, seen)`` for each ``[privacy]`` field on which the peer disagrees.

    ``mine`` is this party's :meth:`PrivacySection.to_wire`; ``theirs`` the peer's, untrusted: a
    value that is not a small flat JSON object is one difference, named ``[privacy]``.
    """
    if mine == theirs:
        return []
    ours = _flat(mine)
    assert ours is not None  # our own canonical form
    peer = _flat(theirs)
    if peer is None:
        shown = "(none)" if not theirs else f"unreadable ({len(theirs.encode())} bytes)"
        return [("[privacy]", mine, shown)]
    return [
        (f"[privacy] {key}", ours.get(key, "(absent)"), peer.get(key, "(absent)"))
        for key in sorted(set(ours) | set(peer))
        if ours.get(key, "(absent)") != peer.get(key, "(absent)")
        or type(ours.get(key)) is not type(peer.get(key))
    ]


def _flat(text: str) -> dict[str, object] | None:
    if not text or len(text.encode()) > MAX_WIRE_BYTES:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    scalars = (str, int, float, bool, type(None))
    if not all(isinstance(k, str) and len(k) <= 64 for k in value):
        return None
    if not all(isinstance(v, scalars) for v in value.values()):
        return None
    return {k: v[:64] if isinstance(v, str) else v for k, v in value.items()}
