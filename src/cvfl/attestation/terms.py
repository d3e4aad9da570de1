"""A party's job terms: the settings that protect the *peer's* data, bound into the evidence.

All parties run one measured image (the same mr_enclave), so the job file is an input the party's
operator controls, not part of the measurement. The settings in it that decide what happens to
what the peer sends — where this party's outputs go and how they are sealed, which PSI mode runs,
which protocol, which policy this party applies — are this party's **terms**. They travel in the
clear, and their SHA-256 fills the last 32 bytes of the RA-TLS quote's report_data (the first 32
bind the certificate's key, as in Gramine's RA-TLS), so a peer sees terms that the enclave itself
vouched for and checks them against its own policy's requirements
(``[attestation.policy.peer]``, :class:`PeerRequirements`).

The encoding is canonical JSON (sorted keys, no spaces, ASCII); :func:`decode_terms` accepts
only that form, so one set of terms has exactly one digest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

from cvfl.errors import AttestationError, ConfigError, mismatch
from cvfl.roles import ROLES

TERMS_VERSION = 1
# The version of everything cvfl sends between parties (attest exchange, hellos, messages).
WIRE_PROTOCOL = 2
COMMANDS = ("align", "train", "predict", "serve")
# "gramine": SGX sealing key bound to mr_enclave; "gramine-mrsigner": bound to the signer (any
# enclave of that signer can derive it); "file"/"env": a key the host can read; "none": plaintext.
SEALING_KINDS = ("gramine", "gramine-mrsigner", "file", "env", "none")
PSI_MODES = ("ecdh", "fast")
MAX_TERMS_BYTES = 2048
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class JobTerms:
    """What a party binds into its evidence.

    Attributes:
        job_id: The job both parties run.
        role: ``"leader"`` or ``"follower"``.
        command: What this process does: ``"align"``, ``"train"``, ``"predict"`` or ``"serve"``.
        sealing: How this party's outputs are sealed (one of :data:`SEALING_KINDS`).
        plaintext_outputs: Whether this party may write outputs in plaintext.
        psi_mode: The PSI mode this party runs (``"ecdh"`` or ``"fast"``).
        policy_digest: SHA-256 (hex) of this party's own attestation policy.
        protocol: :data:`WIRE_PROTOCOL` of this party's code.
        version: The format of these terms.
    """

    job_id: str
    role: str
    command: str
    sealing: str
    plaintext_outputs: bool
    psi_mode: str
    policy_digest: str
    protocol: int = WIRE_PROTOCOL
    version: int = TERMS_VERSION

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ConfigError("job terms: " + "; ".join(problems), code="config.terms")

    def encode(self) -> bytes:
        """The canonical encoding (what is hashed and sent)."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode("ascii")

    def digest(self) -> bytes:
        """SHA-256 of :meth:`encode`: the last 32 bytes of the quote's report_data."""
        return hashlib.sha256(self.encode()).digest()

    def describe(self) -> str:
        """A one-line summary for logs (no secrets: terms are public)."""
        return (
            f"job {self.job_id} {self.role} {self.command}, sealing {self.sealing}, "
            f"plaintext outputs {str(self.plaintext_outputs).lower()}, psi {self.psi_mode}"
        )


def _problems(terms: JobTerms) -> list[str]:
    checks: list[tuple[str, bool, str]] = [
        ("job_id", _printable(terms.job_id), "1..128 printable characters"),
        ("role", terms.role in ROLES, " or ".join(ROLES)),
        ("command", terms.command in COMMANDS, " | ".join(COMMANDS)),
        ("sealing", terms.sealing in SEALING_KINDS, " | ".join(SEALING_KINDS)),
        ("plaintext_outputs", isinstance(terms.plaintext_outputs, bool), "true or false"),
        ("psi_mode", terms.psi_mode in PSI_MODES, " | ".join(PSI_MODES)),
        (
            "policy_digest",
            isinstance(terms.policy_digest, str) and bool(_HEX64.match(terms.policy_digest)),
            "64 lowercase hex digits",
        ),
        ("protocol", _is_int(terms.protocol) and terms.protocol > 0, "a positive integer"),
        ("version", terms.version == TERMS_VERSION, str(TERMS_VERSION)),
    ]
    return [
        mismatch(name, expected, repr(getattr(terms, name)))
        for name, ok, expected in checks
        if not ok
    ]


def _printable(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 128 and value.isprintable()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class TermsError(AttestationError):
    """The peer's job terms were refused; ``fields`` names them (safe to tell the peer)."""

    def __init__(self, message: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(f"peer job terms: {message}", code="attestation.terms")
        self.fields = fields


def _refuse(message: str) -> AttestationError:
    return TermsError(message)


def decode_terms(data: bytes) -> JobTerms:
    """Parse terms a peer sent, accepting only the canonical encoding.

    Raises:
        AttestationError: too large, not canonical JSON, unknown or missing keys, bad values.
    """
    if not isinstance(data, bytes | bytearray) or not 0 < len(data) <= MAX_TERMS_BYTES:
        seen = len(data) if isinstance(data, bytes | bytearray) else type(data).__name__
        raise _refuse(mismatch("size", f"1..{MAX_TERMS_BYTES} bytes", seen))
    try:
        doc = json.loads(bytes(data).decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _refuse(mismatch("encoding", "canonical JSON", "unparsable bytes")) from None
    names = {f.name for f in fields(JobTerms)}
    if not isinstance(doc, dict) or set(doc) != names:
        got = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise _refuse(mismatch("keys", sorted(names), got))
    try:
        terms = JobTerms(**doc)
    except ConfigError as exc:
        raise _refuse(exc.message.removeprefix("job terms: ")) from None
    if terms.encode() != bytes(data):
        raise _refuse(
            mismatch("encoding", "canonical JSON (sorted keys, no spaces)", "another form")
        )
    return terms


def terms_differences(expected: JobTerms, seen: JobTerms) -> list[str]:
    """One phrase per field on which ``seen`` differs from ``expected``."""
    return [
        mismatch(f.name, getattr(expected, f.name), getattr(seen, f.name))
        for f in fields(JobTerms)
        if getattr(expected, f.name) != getattr(seen, f.name)
    ]


def declared_terms_refusal(problems: list[str]) -> str:
    """The refusal text for a hello whose declared terms are not the attested ones."""
    return (
        "the peer's hello declares other job terms than its evidence attests (expected: "
        "attested, seen: declared): " + "; ".join(problems)
    )


def declared_terms_problems(attested: JobTerms | None, declared: bytes) -> list[str]:
    """Why terms a peer declares in a hello are not the ones its evidence attests (or [])."""
    if attested is None:
        return []  # a channel that attests nothing has nothing to compare with
    try:
        seen = decode_terms(declared)
    except AttestationError as exc:
        return [mismatch("terms", "the attested job terms", f"unreadable ({exc.message})")]
    return terms_differences(attested, seen)


_REQUIREMENT_KEYS = frozenset({"sealing", "plaintext_outputs", "psi_modes", "policy_digests"})
_SEALED = frozenset(k for k in SEALING_KINDS if k != "none")


@dataclass(frozen=True)
class PeerRequirements:
    """``[attestation.policy.peer]``: what this party demands of the peer's attested terms.

    Defaults: the peer must seal its outputs (any key provider) and may not write plaintext; both
    PSI modes are acceptable (fast mode has its own gate, which asks for real, current SGX).
    """

    sealing: frozenset[str] = field(default_factory=lambda: _SEALED)
    plaintext_outputs: bool = False
    psi_modes: frozenset[str] = field(default_factory=lambda: frozenset(PSI_MODES))
    policy_digests: frozenset[str] | None = None  # None: any policy

    def canonical(self) -> dict[str, object]:
        """A JSON-ready form for the policy digest."""
        return {
            "sealing": sorted(self.sealing),
            "plaintext_outputs": self.plaintext_outputs,
            "psi_modes": sorted(self.psi_modes),
            "policy_digests": None if self.policy_digests is None else sorted(self.policy_digests),
        }

    def problems(self, peer: JobTerms) -> list[tuple[str, str]]:
        """(field, phrase) for each requirement the peer's terms break."""
        out: list[tuple[str, str]] = []
        if peer.sealing not in self.sealing:
            allowed = " or ".join(sorted(self.sealing))
            out.append(("sealing", mismatch("sealing", allowed, peer.sealing)))
        if peer.plaintext_outputs and not self.plaintext_outputs:
            out.append(("plaintext_outputs", mismatch("plaintext_outputs", "false", "true")))
        if peer.psi_mode not in self.psi_modes:
            allowed = " or ".join(sorted(self.psi_modes))
            out.append(("psi_mode", mismatch("psi_mode", allowed, peer.psi_mode)))
        if self.policy_digests is not None and peer.policy_digest not in self.policy_digests:
            allowed = " or ".join(sorted(self.policy_digests))
            out.append(("policy_digest", mismatch("policy_digest", allowed, peer.policy_digest)))
        return out

    @classmethod
    def from_toml_table(cls, table: object) -> PeerRequirements:
        """Parse ``[attestation.policy.peer]``.

        Raises:
            ConfigError: unknown keys, wrong types, unknown names.
        """
        where = "attestation.policy.peer"
        if not isinstance(table, Mapping):
            raise _config(where, "a table", table)
        unknown = sorted(set(table) - _REQUIREMENT_KEYS)
        if unknown:
            raise _config(f"{where} keys", f"some of {sorted(_REQUIREMENT_KEYS)}", unknown)
        plaintext = table.get("plaintext_outputs", False)
        if not isinstance(plaintext, bool):
            raise _config(f"{where}.plaintext_outputs", "true or false", plaintext)
        return cls(
            sealing=_names(table, "sealing", SEALING_KINDS, _SEALED),
            plaintext_outputs=plaintext,
            psi_modes=_names(table, "psi_modes", PSI_MODES, frozenset(PSI_MODES)),
            policy_digests=_digests(table),
        )


def _names(
    table: Mapping[str, object], key: str, known: tuple[str, ...], default: frozenset[str]
) -> frozenset[str]:
    where = f"attestation.policy.peer.{key}"
    value = table.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _config(where, "a non-empty array of strings", value)
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise _config(where, f"names from {list(known)}", unknown)
    return frozenset(value)


def _digests(table: Mapping[str, object]) -> frozenset[str] | None:
    where = "attestation.policy.peer.policy_digests"
    value = table.get("policy_digests")
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise _config(where, "a non-empty array of 64-hex-digit digests", value)
    if not all(isinstance(v, str) and _HEX64.match(v) for v in value):
        raise _config(where, "64 lowercase hex digits each", value)
    return frozenset(value)


def _config(where: str, expected: str, seen: object) -> ConfigError:
    return ConfigError(mismatch(where, expected, repr(seen)), code="config.policy")


def check_peer_terms(
    own: JobTerms,
    peer: JobTerms | None,
    requirements: PeerRequirements,
    *,
    peer_role: str,
) -> None:
    """Accept the peer's attested terms or raise, naming every field that fails.

    Fixed rules: the peer runs the same job, command and protocol, in ``peer_role``. Then the
    policy's :class:`PeerRequirements`.

    Raises:
        AttestationError: ``attestation.terms`` (no terms, or a field that fails).
    """
    if peer is None:
        raise _refuse(
            mismatch("terms", "attested job terms in the certificate", "none (not a cvfl peer?)")
        )
    problems = [
        (name, mismatch(name, want, got))
        for name, want, got in (
            ("job_id", own.job_id, peer.job_id),
            ("role", peer_role, peer.role),
            ("command", own.command, peer.command),
            ("protocol", own.protocol, peer.protocol),
        )
        if want != got
    ]
    problems += requirements.problems(peer)
    if problems:
        raise TermsError("; ".join(p for _, p in problems), tuple(n for n, _ in problems))
