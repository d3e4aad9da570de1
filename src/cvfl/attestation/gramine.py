"""Real SGX evidence through Gramine's ``/dev/attestation`` pseudo-files.

Protocol (Gramine docs, "Attestation and Secret Provisioning"): ``attestation_type`` reads
``dcap`` (or ``none`` when remote attestation is disabled in the manifest); writing 64 bytes to
``user_report_data`` sets the report data; opening and reading ``quote`` then produces a fresh
quote over it. The root folder is configurable so tests can lay out a fake tree.
"""

from __future__ import annotations

import threading
from pathlib import Path

from cvfl.attestation.evidence import check_report_data
from cvfl.attestation.quote import MAX_QUOTE_LEN, parse_quote
from cvfl.errors import AttestationError, mismatch
from cvfl.logs import get_logger

log = get_logger(__name__)

DEFAULT_ROOT = Path("/dev/attestation")
SUPPORTED_TYPES = ("dcap",)

# /dev/attestation is process-wide state: write report data, then read the quote, as one step.
_LOCK = threading.Lock()


class GramineProvider:
    """Evidence from a Gramine enclave (``attestation_type`` must be ``dcap``)."""

    name = "gramine"
    simulated = False

    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.root = Path(root)
        self.attestation_type = self._read_type()
        if self.attestation_type not in SUPPORTED_TYPES:
            raise AttestationError(
                mismatch(
                    f"{self.root / 'attestation_type'}",
                    " or ".join(SUPPORTED_TYPES),
                    repr(self.attestation_type),
                )
                + ' (set sgx.remote_attestation = "dcap" in the Gramine manifest)',
                code="attestation.gramine_type",
            )
        log.info("gramine attestation: %s (root %s)", self.attestation_type, self.root)

    def _read_type(self) -> str:
        path = self.root / "attestation_type"
        try:
            return path.read_text(encoding="ascii", errors="replace").strip()
        except OSError as exc:
            raise AttestationError(
                f"{path}: cannot read ({exc.strerror or exc}); is this process running under "
                'gramine-sgx? Use provider = "simulated" for development',
                code="attestation.gramine_missing",
            ) from None

    def quote(self, report_data: bytes) -> bytes:
        """Write ``report_data`` (64 bytes) and read back a quote that binds it.

        Raises:
            AttestationError: a pseudo-file is missing or fails, the quote is malformed, or its
                report_data is not the one written.
        """
        data = check_report_data(report_data)
        with _LOCK:
            self._write(self.root / "user_report_data", data)
            raw = self._read(self.root / "quote")
        parsed = parse_quote(raw)
        if parsed.identity.report_data != data:
            raise AttestationError(
                mismatch(
                    "quote report_data",
                    data.hex(),
                    parsed.identity.report_data.hex(),
                ),
                code="attestation.gramine_report_data",
            )
        return parsed.raw

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        try:
            if not path.exists():
                raise FileNotFoundError(2, "No such file or directory")
            with path.open("wb", buffering=0) as handle:
                written = handle.write(data)
        except OSError as exc:
            raise AttestationError(
                f"{path}: cannot write report data ({exc.strerror or exc})",
                code="attestation.gramine_io",
            ) from None
        if written != len(data):
            raise AttestationError(
                mismatch(f"{path} bytes written", len(data), written),
                code="attestation.gramine_io",
            )

    @staticmethod
    def _read(path: Path) -> bytes:
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_QUOTE_LEN + 1)
        except OSError as exc:
            raise AttestationError(
                f"{path}: cannot read quote ({exc.strerror or exc})",
                code="attestation.gramine_io",
            ) from None
        if not raw:
            raise AttestationError(
                mismatch(f"{path} length", "a quote", "0 bytes"), code="attestation.gramine_io"
            )
        return raw
