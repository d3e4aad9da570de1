"""One error hierarchy for cvfl, with stable codes and documented exit codes.

Every error carries a stable ``code`` (``"<concern>.<what>"``) that scripts can match on, and its
class carries the process exit code the CLI uses. Messages name what failed with the expected and
seen values, never raw features, labels, ids or keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


class CvflError(Exception):
    """Base of every error cvfl raises on purpose."""

    exit_code: ClassVar[int] = 1
    default_code: ClassVar[str] = "cvfl.error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def __str__(self) -> str:
        return self.message


class ConfigError(CvflError):
    """A job file, policy or command-line option is invalid."""

    exit_code = 2
    default_code = "config.invalid"


class DataError(CvflError):
    """An input table is malformed (the message names file, column and row)."""

    exit_code = 3
    default_code = "data.invalid"


class ProtocolError(CvflError):
    """The peer disagrees on the session (hello mismatch, misaligned batch, bad message)."""

    exit_code = 4
    default_code = "protocol.mismatch"


class PeerStoppedError(ProtocolError):
    """The peer stopped and told this side why (its Abort): ``code`` is the peer's own code.

    ``reason`` is the peer's short reason, already cut and made printable.
    """

    def __init__(self, message: str, *, code: str | None = None, reason: str = "") -> None:
        super().__init__(message, code=code)
        self.reason = reason


class AttestationError(CvflError):
    """Evidence did not verify, or the policy refused the peer."""

    exit_code = 5
    default_code = "attestation.refused"


class SealingError(CvflError):
    """A sealed file failed to open (tampered, wrong key, wrong purpose) or could not be written."""

    exit_code = 6
    default_code = "sealing.failed"


class AlignmentError(CvflError):
    """Private set intersection failed (bad point, count mismatch, duplicate ids)."""

    exit_code = 7
    default_code = "psi.failed"


class PeerUnavailableError(CvflError):
    """The peer could not be reached, or went away and did not come back in time."""

    exit_code = 8
    default_code = "peer.unavailable"


class ModelError(CvflError):
    """A model factory, checkpoint or export does not fit the job."""

    exit_code = 9
    default_code = "model.invalid"


EXIT_CODES: dict[type[CvflError], int] = {
    cls: cls.exit_code
    for cls in (
        CvflError,
        ConfigError,
        DataError,
        ProtocolError,
        AttestationError,
        SealingError,
        AlignmentError,
        PeerUnavailableError,
        ModelError,
    )
}


def exit_code_of(error: CvflError) -> int:
    """The documented exit code of ``error``: that of the nearest class in :data:`EXIT_CODES`."""
    for cls in type(error).__mro__:
        if issubclass(cls, CvflError) and cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_CODES[CvflError]


_LOCAL_KINDS: tuple[tuple[type[CvflError], str], ...] = (
    (DataError, "a local data error"),
    (ConfigError, "a local configuration error"),
    (SealingError, "a local sealing error"),
    (ModelError, "a local model error"),
    (AttestationError, "an attestation refusal"),
    (PeerUnavailableError, "a connection failure"),
)
# Local refusals the peer can act on, said a little more precisely than by their kind.
_PEER_PHRASES: dict[str, str] = {
    "config.checkpoint_changed": "its newest checkpoint was written by another configuration "
    "of the job (it lists the changes and the ways on in its log)",
    "config.checkpoint_unknown": "its newest checkpoint records no configuration (written by an "
    "older cvfl; details in its log)",
    "train.stopped": "it was stopped on request between steps (its checkpoints are kept: "
    "rerun both to resume)",
}
MAX_PEER_REASON = 300


def printable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, anything unprintable replaced (peer-supplied text)."""
    short = text if len(text) <= limit else text[:limit] + "…"
    return "".join(c if c.isprintable() else "?" for c in short)


def reason_for_peer(error: BaseException, *, visible: bool) -> str:
    """What the peer is told when ``error`` ends this party: never a local path, row or id.

    ``visible`` errors refuse something the peer itself sent (its hello, a message); their text
    names only the peer's and the agreed values and is told in full (cut to a few hundred
    characters). Any other error is named by its kind only.
    """
    if visible and isinstance(error, CvflError):
        return printable(error.message, MAX_PEER_REASON)
    if isinstance(error, CvflError) and error.code in _PEER_PHRASES:
        return _PEER_PHRASES[error.code]
    kind = next((k for cls, k in _LOCAL_KINDS if isinstance(error, cls)), "a local error")
    return f"{kind} (details in its log)"


def mismatch(what: str, expected: object, seen: object) -> str:
    """Format the standard refusal phrase naming a field with its expected and seen values."""
    return f"{what}: expected {expected}, seen {seen}"


@dataclass(frozen=True)
class ErrorCode:
    """A registered error code: the class it is raised with and what it means.

    ``kind`` is None for the one code raised with varying classes (``workers.failed``: the
    failed worker's own class, hence its exit code).
    """

    code: str
    kind: type[CvflError] | None
    meaning: str

    @property
    def exit_code(self) -> int | None:
        """The process exit code the CLI ends with (None: it varies, see the meaning)."""
        return None if self.kind is None else EXIT_CODES[self.kind]


def _registry(*groups: tuple[type[CvflError] | None, dict[str, str]]) -> dict[str, ErrorCode]:
    codes: dict[str, ErrorCode] = {}
    for kind, entries in groups:
        for code, meaning in entries.items():
            if code in codes:
                raise ValueError(f"error code {code} registered twice")
            codes[code] = ErrorCode(code, kind, meaning)
    return dict(sorted(codes.items()))


def is_registered(code: str) -> bool:
    """Whether ``code`` is one of cvfl's stable codes (a peer's code may not be)."""
    return code in CODES


# Every stable code cvfl raises, by class (hence exit code). ``tests/test_errors.py`` fails on a
# ``code="..."`` literal in src/cvfl that is missing here; docs/errors.md is generated from this
# table (``python tools/errors_doc.py``).
CODES: dict[str, ErrorCode] = _registry(
    (
        CvflError,
        {
            "cvfl.error": "an error of no more precise kind (also sent when a non-cvfl error stops"
            " a party)",
            "demo.failed": "a party of `cvfl demo` exited with an error (its output says why)",
            "train.stopped": "training was stopped on request (`stop` of `cvfl.api.train`) "
            "between steps; its committed checkpoints are kept and a rerun resumes them",
        },
    ),
    (
        ConfigError,
        {
            "config.invalid": "an option or setting is invalid (the default configuration code)",
            "config.attestation": '`[peer] security = "ratls"` without an `[attestation]` section',
            "config.checkpoint_changed": "the newest checkpoint was written by another "
            "configuration of the job (see Reruns in the README)",
            "config.checkpoint_unknown": "the newest checkpoint records no configuration (an "
            "older cvfl wrote it)",
            "config.code_path": "a code path to measure (simulated evidence) is missing or "
            "unreadable",
            "config.collateral": "the DCAP collateral file cannot be read",
            "config.data": "`[data]` is invalid (e.g. holdout_fraction outside (0, 1))",
            "config.demo": "an unknown `--dataset` for the demo",
            "config.fallback": "`cvfl fallback` (the leader-only model) run with a follower's job",
            "config.file": "a job, policy or input file cannot be read",
            "config.format": "a table file name has no known format (.parquet or .csv, optionally"
            " .sealed)",
            "config.job": "`[job]` is invalid",
            "config.key": "a required table of the job file is missing or not a table",
            "config.missing": "a required setting is missing",
            "config.missing_file": "the job file does not exist",
            "config.model": "`[model]` is invalid (factory path, widths, kind)",
            "config.option": "a command-line option is invalid or conflicts with another",
            "config.pccs_url": "the PCCS URL is not an http:// or https:// URL",
            "config.peer": "`[peer]` is invalid (address, timings, security)",
            "config.policy": "the attestation policy file or table is invalid",
            "config.predict": "`[predict]` is invalid",
            "config.serve": "`[serve]` is missing or invalid (addresses, timings, fallback), or "
            "a serving address cannot be bound",
            "config.privacy": "`[privacy]` is invalid",
            "config.range": "a number is not finite or outside its allowed range",
            "config.resume_from": "`--resume-from` names a step this party holds no checkpoint of",
            "config.role": "`[job] role` is neither leader nor follower",
            "config.sealing": "`[sealing]` is invalid, or missing where outputs must be sealed",
            "config.steps": "`[job] steps` cannot run as asked (e.g. align with several workers)",
            "config.terms": "this party's own job terms are invalid",
            "config.toml": "a job file is not valid TOML",
            "config.track": "`[train] track` names a tracker that is not installed, or its "
            "`track_dir` / `track_uri` is invalid or refused",
            "config.train": "`[train]` is invalid",
            "config.type": "a setting has the wrong type",
            "config.unknown_key": "a file names a key cvfl does not know (typos are refused)",
            "config.value": "a setting's value is not one of those allowed",
            "config.verify_at": "`attestation.verify_at` is set on a live channel",
            "config.workers": "`WORLD_SIZE` disagrees with `[train] workers`",
            "bridge.bind": "the plaintext bridge cannot bind its listening address",
            "psi.no_security": "alignment has no channel security (no `[attestation]` and no "
            "explicit plaintext)",
            "psi.unsealed_output": "the PSI output would be neither sealed nor explicitly "
            "plaintext",
            "ratls.bind": "the listening address is in use or cannot be bound (a port is never "
            "shared)",
            "ratls.target": "a peer address is not host:port",
            "sealing.output_exists": "the output file exists (pass --force to replace it)",
            "workers.already_initialised": "torch.distributed was initialised before cvfl's "
            "worker group",
            "workers.closed": "the worker group was used after it was closed",
            "workers.env": "a worker's launch environment (RANK, WORLD_SIZE, MASTER_ADDR, ...) "
            "is missing or invalid",
            "workers.no_party_key": "several workers but no `[sealing]` key to derive the party "
            "key from",
            "workers.single": "a worker-group operation was asked of a world of one worker",
        },
    ),
    (
        DataError,
        {
            "data.invalid": "an input table is malformed (the default data code)",
            "data.changed": "a table changed while it was being aligned",
            "data.column": "the id column named for alignment is missing",
            "data.empty": "a table has no rows",
            "data.duplicate_id": "a serving table repeats an example id",
            "data.request": "a scoring request is malformed (names the field, expected and seen)",
            "data.format": "a table's file name has no known format",
            "data.incomplete": "a training result lacks the held-out metrics the report needs",
            "data.label": "a label is not 0 or 1 (names file, column and row)",
            "data.missing_column": "a column the job needs is missing",
            "data.missing_file": "a table file does not exist",
            "data.nan": "a feature is NaN or infinite (names file, column and row)",
            "data.no_features": "a table has no feature columns",
            "data.null": "a value is missing (names file, column and row)",
            "data.range": "a category is outside the slot's vocabulary",
            "data.type": "a column has the wrong type",
            "data.unreadable": "a table cannot be read in its format",
        },
    ),
    (
        ProtocolError,
        {
            "protocol.mismatch": "the peer disagrees on the session (the default protocol code)",
            "protocol.assign": "the leader's row assignment for a step is malformed",
            "protocol.checkpoint_digest": "a checkpoint's digest differs from the one both "
            "parties agreed",
            "protocol.decode": "the peer sent bytes that are not a cvfl.v1.Envelope",
            "protocol.dtype": "a tensor from the peer has an unsupported dtype",
            "protocol.finish": "the peer's Finish disagrees with the batches exchanged",
            "protocol.hello": "the peer's hello disagrees with this side's (names each field)",
            "protocol.misaligned": "the keyed hash of a batch's example ids differs between the "
            "parties",
            "protocol.nonfinite": "a tensor from the peer holds NaN or Inf",
            "protocol.peer_abort": "the peer stopped the session without giving a code",
            "protocol.phase": "a message of the wrong phase (e.g. training during scoring)",
            "protocol.rollback": "resuming would roll back a checkpoint the peer already committed",
            "protocol.shape": "a tensor from the peer has a bad shape or byte length",
            "protocol.step": "the peer's message is for another step than expected",
            "protocol.staleness": (
                "pipelined training: more steps in flight than [train] staleness allows, or a "
                "checkpoint or an epoch end with steps in flight"
            ),
            "protocol.terms": "a hello declares other job terms than the sender's evidence attests",
            "protocol.unexpected": "the peer sent another kind of message than expected",
            "ratls.no_attest_service": "the peer does not serve cvfl.v1.Attest (not an RA-TLS "
            "channel)",
            "workers.disagree": "the workers of a party disagree (e.g. on held-out rows)",
            "workers.enrol_key": "rank 0 granted a group key of the wrong size",
            "workers.enrol_refused": "rank 0 refused a worker's enrolment (the message says why)",
            "workers.enrol_version": "a worker speaks another enrolment protocol version",
            "workers.gather_shape": "a worker's all-gather tensor has another dtype or shape",
            "workers.tensor": "a tensor for the worker group is of an unsupported dtype or shape",
        },
    ),
    (
        AttestationError,
        {
            "attestation.refused": "evidence did not verify or the policy refused the peer (the "
            "default attestation code)",
            "attestation.collateral_expired": "the DCAP collateral is expired or not yet valid",
            "attestation.dcap_failed": "DCAP quote verification failed",
            "attestation.dcap_simulated": "a simulated quote was given to the DCAP verifier",
            "attestation.gramine_io": "Gramine's /dev/attestation files misbehaved",
            "attestation.gramine_missing": "Gramine's /dev/attestation is absent (not in an "
            "enclave?)",
            "attestation.gramine_report_data": "the quote Gramine produced binds other report data",
            "attestation.gramine_type": "Gramine's attestation type is not DCAP",
            "attestation.no_collateral": "no DCAP collateral and no PCCS URL to fetch it from",
            "attestation.pccs": "the PCCS could not provide the collateral",
            "attestation.policy_advisory": "the peer's platform has an advisory the policy refuses",
            "attestation.policy_debug": "the peer is a debug enclave and the policy refuses those",
            "attestation.policy_identity": "the peer's enclave identity matches no policy entry",
            "attestation.policy_simulated": "the peer's evidence is simulated and the policy "
            "refuses that",
            "attestation.policy_tcb_status": "the peer's TCB status is not one the policy allows",
            "attestation.quote_key_type": "a quote's attestation key type is not ECDSA P-256",
            "attestation.quote_oversized": "a quote is longer than any valid one",
            "attestation.quote_signature_data": "a quote's signature data is malformed",
            "attestation.quote_signature_length": "a quote's signature data length is wrong",
            "attestation.quote_tee_type": "a quote is not an SGX quote",
            "attestation.quote_truncated": "a quote is shorter than its fixed part",
            "attestation.quote_type": "a quote is not bytes",
            "attestation.quote_version": "a quote is not of version 3",
            "attestation.report_data": "report data to bind is not 64 bytes",
            "attestation.sigstruct_exponent": "a SIGSTRUCT's RSA exponent is not 3",
            "attestation.sigstruct_header": "a SIGSTRUCT's fixed header fields are wrong",
            "attestation.sigstruct_modulus": "a SIGSTRUCT's RSA modulus is not 3072 bits",
            "attestation.sigstruct_signature": "a SIGSTRUCT's signature does not verify",
            "attestation.sigstruct_size": "a SIGSTRUCT has the wrong size",
            "attestation.sim_marker": "simulated evidence lacks the simulation marker",
            "attestation.sim_signature": "simulated evidence's signature does not verify",
            "attestation.terms": "the peer's attested job terms break a fixed rule or "
            "`[attestation.policy.peer]` (names each field)",
            "ratls.cbor": "the certificate's CBOR evidence is malformed",
            "ratls.extensions": "the certificate's extensions are malformed or repeated",
            "ratls.handshake": "the pinned TLS handshake failed or the peer went away",
            "ratls.key_binding": "the quote does not bind the certificate's public key",
            "ratls.no_client_certificate": "a client connected without a certificate",
            "ratls.no_evidence": "the certificate carries no evidence extension",
            "ratls.no_identity": "own-party security without this party's own measurement",
            "ratls.not_pinned": "a client certificate is not one the attest step pinned",
            "ratls.parse": "the certificate is not X.509 PEM or DER, or too large",
            "ratls.possession": "a client failed to prove it holds its certificate's key",
            "ratls.protocol_version": "the peer speaks another attest protocol version",
            "ratls.public_key": "the certificate's public key is not a valid EC or RSA key",
            "ratls.refused_by_peer": "the peer refused this side's evidence without a code",
            "ratls.self_signature": "the certificate's self-signature does not verify",
            "ratls.tcg_evidence": "the certificate's TCG evidence is malformed",
            "ratls.terms_binding": "the quote does not bind the certificate's job terms",
            "ratls.validity": "the certificate is not valid at this time (or a bad duration)",
            "workers.enrol_proof": "a would-be worker lacks this party's key (rank 0 refuses it "
            "and carries on)",
        },
    ),
    (
        SealingError,
        {
            "sealing.failed": "a sealed file failed to open or be written (the default sealing "
            "code)",
            "sealing.chunk_size": "a chunk size outside the allowed range",
            "sealing.chunk_tampered": "a chunk failed authentication (tampered, reordered, "
            "truncated, extended or taken from another file)",
            "sealing.closed": "a sealed file was read after it was closed",
            "sealing.extended": "a sealed file grew while it was read",
            "sealing.header_invalid": "a sealed file's header is malformed",
            "sealing.header_tampered": "a sealed file's header failed authentication",
            "sealing.header_truncated": "a sealed file's header is truncated",
            "sealing.io": "a sealed file could not be read or written",
            "sealing.key_exists": "a key file exists and is never overwritten",
            "sealing.key_id_invalid": "a key id is not 1 to 128 printable ASCII characters",
            "sealing.key_invalid": "a key is too short or otherwise unusable",
            "sealing.key_missing": "a key file or key variable is missing",
            "sealing.key_permissions": "a key file is readable by others (needs 0600 or stricter)",
            "sealing.missing": "a file to open does not exist",
            "sealing.no_key": "a file is sealed but no key was given",
            "sealing.nonce_invalid": "a file nonce of the wrong length (an internal error)",
            "sealing.not_sealed": "a file is not a sealed file (wrong magic)",
            "sealing.purpose_invalid": "a purpose label is malformed",
            "sealing.purpose_mismatch": "a sealed file was sealed for another purpose",
            "sealing.truncated": "a sealed file is truncated or extended",
            "sealing.unexpected_plaintext": "a plaintext file where this job expects a sealed one",
            "sealing.unexpected_sealed": "a sealed file where this job (no `[sealing]`) expects "
            "plaintext",
            "sealing.version": "a sealed file of an unknown format version",
            "sealing.wrong_key": "a sealed file was sealed under another key",
            "workers.bucket": "a sealed gradient bucket failed to open or has the wrong size",
            "workers.key": "a worker group key of the wrong size",
        },
    ),
    (
        AlignmentError,
        {
            "psi.failed": "private set intersection failed (the default PSI code)",
            "psi.bad_answer": "the peer answered two items with the same doubly-blinded value",
            "psi.bad_key_share": "the peer's fast-mode key share is invalid",
            "psi.empty": "no row is common to both parties; nothing written (old table kept)",
            "psi.bad_point": "the peer sent an invalid group element",
            "psi.bad_tag": "the peer's keyed hashes are malformed",
            "psi.count": "the peer sent more items than it announced",
            "psi.duplicates": "a table repeats an id (names the rows)",
            "psi.fast_refused": "fast mode's gate refused the peer (it trusts more than ECDH-PSI)",
            "psi.hello": "the peer's PSI hello disagrees (names each field)",
            "psi.internal": "this side's own counts disagree (an internal error)",
            "psi.peer_abort": "the peer stopped the alignment and said why",
            "psi.peer_lost": "the PSI stream ended before the exchange finished",
            "psi.peer_too_large": "the peer announced a larger set than allowed",
            "psi.protocol": "the peer broke the PSI message order",
            "psi.resume_mismatch": "saved alignment state does not match the peer's (both "
            "sides drop it and start over once)",
            "psi.bad_state": "a saved alignment state is malformed (delete its folder)",
            "psi.terms": "a PSI hello declares other job terms than the sender's evidence attests",
            "psi.timeout": "the exchange did not finish in time",
        },
    ),
    (
        PeerUnavailableError,
        {
            "peer.unavailable": "the peer could not be reached (the default peer code)",
            "peer.closed": "the bridge stream is closed",
            "peer.gone": "the peer was unreachable for longer than `give_up_after`: restart it, "
            "then this party (both resume)",
            "peer.restarted": "a worker of the peer restarted while several workers run",
            "peer.timeout": "the peer sent nothing in time",
            "serve.draining": "`cvfl serve` is shutting down and takes no new requests",
            "peer.unreachable": "the leader could not be reached in time",
            "psi.no_peer": "no follower connected for alignment in time",
            "ratls.unreachable": "the attested channel's peer could not be reached",
            "workers.enrol": "rank 0's enrolment service failed the call",
            "workers.enrol_timeout": "not every worker enrolled in time",
            "workers.enrol_unreachable": "rank 0 could not be reached to enrol",
            "workers.rendezvous": "the workers' gloo rendezvous failed in time",
        },
    ),
    (
        ModelError,
        {
            "model.invalid": "a model does not fit the job (the default model code)",
            "model.corrupt": "an export's files are malformed",
            "model.best_snapshot": "the best-epoch snapshot is missing or of another step or job",
            "model.fingerprint": "an export's parameters do not match its fingerprint",
            "model.foreign": "an export belongs to another job",
            "model.missing": "an export file does not exist",
            "model.shape": "a model does not fit the tables (e.g. columns per slot)",
            "model.spec": "an export's declared cut layer is malformed",
        },
    ),
    (
        None,
        {
            "workers.failed": "a worker of this party failed; raised with that worker's own "
            "error class, so the exit code is the worker's",
        },
    ),
)
