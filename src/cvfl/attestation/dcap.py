"""Verification of real SGX DCAP quotes with the ``dcap-qvl`` package.

The collateral (TCB info, QE identity, CRLs and their issuer chains) comes from a
:class:`CollateralSource`: a JSON file in dcap-qvl's ``QuoteCollateralV3`` format
(:class:`FileCollateral`) or a PCCS reached over HTTP(S) (:class:`PccsCollateral`, in
:mod:`cvfl.attestation.pccs`). The verification time is a parameter, so recorded evidence can be
checked at a fixed moment inside its collateral's validity window. Before any collateral is
asked for, the quote's own signatures are checked locally (:mod:`cvfl.attestation.localcheck`).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import dcap_qvl

from cvfl.attestation.evidence import VerifiedEvidence
from cvfl.attestation.localcheck import check_quote_locally
from cvfl.attestation.quote import parse_quote
from cvfl.attestation.simulated import is_simulated_quote
from cvfl.errors import AttestationError, ConfigError, mismatch
from cvfl.logs import get_logger

log = get_logger(__name__)

Collateral = Any  # dcap_qvl.QuoteCollateralV3 (the extension module ships no typing marker)

_EXPIRY_WORDS = ("expired", "in the future", "not yet valid", "crlexpired")


class CollateralSource(Protocol):
    """Where a verifier gets the Intel collateral for a quote."""

    @property
    def description(self) -> str:
        """Where the collateral comes from (for messages)."""
        ...

    def collateral_for(self, quote: bytes) -> Collateral:
        """Return the collateral that applies to ``quote``.

        Raises:
            AttestationError: the collateral cannot be obtained or parsed.
        """
        ...


class FileCollateral:
    """Collateral stored as a dcap-qvl ``QuoteCollateralV3`` JSON file (loaded once)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.description = f"file {self.path}"
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{self.path}: cannot read collateral ({exc})", code="config.collateral"
            ) from None
        try:
            self._collateral = dcap_qvl.QuoteCollateralV3.from_json(text)
        except ValueError as exc:
            raise ConfigError(
                f"{self.path}: not dcap-qvl QuoteCollateralV3 JSON ({exc})",
                code="config.collateral",
            ) from None

    def collateral_for(self, quote: bytes) -> Collateral:
        """Return the file's collateral (the same for every quote)."""
        return self._collateral


class DcapVerifier:
    """Verifies real DCAP quotes: PCK chain, QE report, quote signature, TCB status."""

    def __init__(self, collateral: CollateralSource, *, default_at: int | None = None) -> None:
        self.collateral = collateral
        self.default_at = default_at

    def verify(self, quote: bytes, *, at: int | None = None) -> VerifiedEvidence:
        """Verify ``quote`` at UNIX time ``at`` (else the default time, else now).

        The quote's structure, PCK chain (up to the pinned Intel root key), QE report and
        signature are checked locally first (:func:`check_quote_locally`); only a quote that
        passes reaches the collateral source, so a forged quote never causes a PCCS request.

        Raises:
            AttestationError: malformed or simulated quote, expired collateral (code
                ``attestation.collateral_expired``), or any signature/chain failure (code
                ``attestation.dcap_failed``; the local checks say so in the message).
        """
        parsed = parse_quote(quote)
        if is_simulated_quote(parsed):
            raise AttestationError(
                mismatch("evidence", "a real SGX DCAP quote", "a simulated quote"),
                code="attestation.dcap_simulated",
            )
        now = at if at is not None else self.default_at
        now = int(time.time()) if now is None else now
        check_quote_locally(parsed)  # before any collateral is fetched (a PCCS is remote)
        collateral = self.collateral.collateral_for(parsed.raw)
        report = _run_dcap(parsed.raw, collateral, now)
        evidence = VerifiedEvidence(
            identity=parsed.identity,
            tcb_status=str(report.status),
            advisory_ids=tuple(str(a) for a in report.advisory_ids),
            simulated=False,
        )
        log.debug("DCAP quote verified: status %s", evidence.tcb_status)
        return evidence


def _run_dcap(raw: bytes, collateral: Collateral, now: int) -> Any:
    try:
        return dcap_qvl.verify(raw, collateral, now)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # dcap-qvl raises ValueError; a Rust panic is a BaseException
        detail = " ".join(str(exc).split())
        if any(word in detail.lower() for word in _EXPIRY_WORDS):
            window = collateral_window(collateral)
            raise AttestationError(
                "collateral expired or not yet valid: "
                + mismatch("verification time", f"within {window}", _when(now))
                + f" ({detail})",
                code="attestation.collateral_expired",
            ) from None
        raise AttestationError(
            f"DCAP verification failed: {detail}", code="attestation.dcap_failed"
        ) from None


def _when(unix: int) -> str:
    try:
        stamp = datetime.fromtimestamp(unix, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(unix)
    return f"{unix} ({stamp})"


def collateral_window(collateral: Collateral) -> str:
    """Describe when ``collateral`` is valid (TCB info and QE identity issue/next-update dates)."""
    try:
        starts, ends = [], []
        for text in (collateral.tcb_info, collateral.qe_identity):
            doc = json.loads(text)
            starts.append(str(doc["issueDate"]))
            ends.append(str(doc["nextUpdate"]))
        return f"{max(starts)}..{min(ends)} (TCB info and QE identity; CRLs may be shorter)"
    except (ValueError, KeyError, TypeError, AttributeError):
        return "the collateral's validity window"
