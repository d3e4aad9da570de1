"""Fetch DCAP collateral from a PCCS (Intel's Provisioning Certificate Caching Service API v4).

The same four GET requests dcap-qvl's own fetcher makes, relative to ``<base>/sgx/certification/v4``
(``<base>`` is the configured URL; a trailing ``/sgx/certification/v4`` is accepted too):

- ``pckcrl?ca=<processor|platform>&encoding=der``: the PCK CRL (DER, or hex text), issuer chain
  in the URL-encoded header ``SGX-PCK-CRL-Issuer-Chain``;
- ``tcb?fmspc=<FMSPC, upper-case hex>&update=standard``: JSON
  ``{"tcbInfo": {...}, "signature": "<hex>"}``, issuer chain in ``TCB-Info-Issuer-Chain``
  (or ``SGX-TCB-Info-Issuer-Chain``);
- ``qe/identity?update=standard``: JSON ``{"enclaveIdentity": {...}, "signature": "<hex>"}``,
  issuer chain in ``SGX-Enclave-Identity-Issuer-Chain``;
- ``rootcacrl``: the root CA CRL (hex text as PCCS serves it, or DER).

The signed JSON members are kept byte for byte as served. Results are cached per (FMSPC, CA) for
``cache_seconds``; nothing is fetched for a quote that fails the local checks, one fetch serves
concurrent verifications of a platform, and a fetch is bounded by a total time budget.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from email.message import Message
from typing import Any

import dcap_qvl

from cvfl.attestation.dcap import Collateral
from cvfl.attestation.localcheck import check_quote_locally
from cvfl.attestation.quote import parse_quote
from cvfl.errors import AttestationError, ConfigError, mismatch
from cvfl.logs import get_logger

log = get_logger(__name__)

API_PATH = "/sgx/certification/v4"
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class PccsCollateral:
    """Collateral fetched from a PCCS base URL with urllib (http or https).

    Bounded: collateral is fetched only for a quote that passed the local checks
    (:func:`~cvfl.attestation.localcheck.check_quote_locally`: structure, PCK chain up to the
    pinned Intel root, QE report, signature), so a forged quote makes no request; results are
    cached per (FMSPC, CA) for ``cache_seconds``; concurrent verifications of one platform share
    one fetch; and a verification waits at most ``budget_seconds`` for it (each request also
    gives up after ``timeout`` seconds without data, and the fetch stops at the budget).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        cache_seconds: float = 600.0,
        budget_seconds: float = 20.0,
    ):
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(
                mismatch("pccs_url", "an http:// or https:// URL", repr(base_url)),
                code="config.pccs_url",
            )
        if not timeout > 0 or not budget_seconds > 0:
            raise ConfigError(
                mismatch("PCCS timeout and budget", "positive seconds", (timeout, budget_seconds)),
                code="config.pccs_url",
            )
        base = base_url.rstrip("/")
        base = base.removesuffix(API_PATH)
        self.api = base + API_PATH
        self.description = f"PCCS {base}"
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.budget_seconds = budget_seconds
        self._cache: dict[tuple[str, str], tuple[float, Collateral]] = {}
        self._inflight: dict[tuple[str, str], Future[Collateral]] = {}
        self._lock = threading.Lock()

    def collateral_for(self, quote: bytes) -> Collateral:
        """Return (possibly cached) collateral for the quote's FMSPC and PCK CA.

        Raises:
            AttestationError: the quote fails the local checks (nothing is fetched), has no
                readable PCK certificate, or the PCCS fails or exceeds the time budget.
        """
        key = _quote_platform(quote)
        with self._lock:
            hit = self._fresh(key)
        if hit is not None:
            return hit
        check_quote_locally(parse_quote(quote))  # no request for a quote that is not Intel's
        return self._shared_fetch(key)

    def _fresh(self, key: tuple[str, str]) -> Collateral | None:
        """The cached collateral for ``key`` if still fresh (call with the lock held)."""
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.cache_seconds:
            return hit[1]
        return None

    def _shared_fetch(self, key: tuple[str, str]) -> Collateral:
        """One fetch per key at a time: later callers wait for the one in flight."""
        with self._lock:
            hit = self._fresh(key)  # fetched while this quote was being checked?
            if hit is not None:
                return hit
            future = self._inflight.get(key)
            if future is None:
                future = Future()
                self._inflight[key] = future
                deadline = time.monotonic() + self.budget_seconds
                threading.Thread(
                    target=self._run_fetch,
                    args=(key, future, deadline),
                    name="cvfl-pccs-fetch",
                    daemon=True,
                ).start()
        try:
            return future.result(timeout=self.budget_seconds)
        except FutureTimeout:
            raise _pccs_error(
                f"no collateral from {self.api} within the time budget of "
                f"{self.budget_seconds:g} s (fmspc {key[0]}, ca {key[1]})"
            ) from None

    def _run_fetch(self, key: tuple[str, str], future: Future[Collateral], deadline: float) -> None:
        try:
            collateral = self._fetch(key[0], key[1], deadline)
        except BaseException as exc:  # handed to the waiting verifications
            with self._lock:
                self._inflight.pop(key, None)
            future.set_exception(exc)
            return
        with self._lock:
            self._cache[key] = (time.monotonic(), collateral)
            self._inflight.pop(key, None)
        future.set_result(collateral)

    def _fetch(self, fmspc: str, ca: str, deadline: float) -> Collateral:
        log.info("fetching DCAP collateral from %s (fmspc %s, ca %s)", self.api, fmspc, ca)
        crl_body, crl_headers = self._get(f"pckcrl?ca={ca}&encoding=der", deadline)
        tcb_body, tcb_headers = self._get(f"tcb?fmspc={fmspc}&update=standard", deadline)
        qe_body, qe_headers = self._get("qe/identity?update=standard", deadline)
        root_body, _ = self._get("rootcacrl", deadline)
        tcb_info, tcb_sig = _signed_member(tcb_body, "tcbInfo", "tcb")
        qe_identity, qe_sig = _signed_member(qe_body, "enclaveIdentity", "qe/identity")
        try:
            return dcap_qvl.QuoteCollateralV3(
                pck_crl_issuer_chain=_header(crl_headers, "SGX-PCK-CRL-Issuer-Chain"),
                root_ca_crl=_crl_bytes(root_body),
                pck_crl=_crl_bytes(crl_body),
                tcb_info_issuer_chain=_header(
                    tcb_headers, "TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"
                ),
                tcb_info=tcb_info,
                tcb_info_signature=tcb_sig,
                qe_identity_issuer_chain=_header(qe_headers, "SGX-Enclave-Identity-Issuer-Chain"),
                qe_identity=qe_identity,
                qe_identity_signature=qe_sig,
            )
        except (ValueError, TypeError) as exc:
            raise _pccs_error(f"collateral does not assemble: {exc}") from None

    def _get(self, path: str, deadline: float) -> tuple[bytes, Message]:
        url = f"{self.api}/{path}"
        request = urllib.request.Request(url, headers={"Accept": "*/*"})
        timeout = min(self.timeout, _left(deadline, url, self.budget_seconds))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = _read_body(response, url, deadline, self.budget_seconds)
                headers = response.headers
        except urllib.error.HTTPError as exc:
            raise _pccs_error(mismatch(f"GET {url}", "HTTP 200", f"HTTP {exc.code}")) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            if isinstance(getattr(exc, "reason", exc), TimeoutError) and timeout < self.timeout:
                raise _pccs_error(
                    f"GET {url}: no answer within the fetch's time budget of "
                    f"{self.budget_seconds:g} s"
                ) from None
            raise _pccs_error(f"GET {url} failed: {exc}") from None
        return body, headers


def _left(deadline: float, url: str, budget: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _pccs_error(f"GET {url}: the fetch's time budget of {budget:g} s is spent")
    return left


def _read_body(response: Any, url: str, deadline: float, budget: float) -> bytes:
    """Read at most MAX_RESPONSE_BYTES, giving up at ``deadline`` (checked between reads)."""
    parts: list[bytes] = []
    size = 0
    while True:
        _left(deadline, url, budget)
        chunk = response.read1(65536)
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _pccs_error(mismatch(f"GET {url} size", f"<= {MAX_RESPONSE_BYTES}", "more"))
        parts.append(chunk)


def _pccs_error(message: str) -> AttestationError:
    return AttestationError(f"PCCS: {message}", code="attestation.pccs")


def _quote_platform(quote: bytes) -> tuple[str, str]:
    try:
        parsed = dcap_qvl.parse_quote(quote)
        return str(parsed.fmspc()).upper(), str(parsed.ca())
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # ValueError, or a Rust panic
        raise AttestationError(
            f"cannot read FMSPC/CA from the quote's PCK certificate: {exc}",
            code="attestation.dcap_failed",
        ) from None


def _header(headers: Message, *names: str) -> str:
    for name in names:
        value = headers.get(name)
        if value:
            return urllib.parse.unquote(value)
    raise _pccs_error(mismatch("response header", " or ".join(names), "missing"))


def _crl_bytes(body: bytes) -> bytes:
    text = body.strip()
    if text and all(c in b"0123456789abcdefABCDEF" for c in text):
        try:
            return bytes.fromhex(text.decode("ascii"))
        except ValueError:
            pass
    return body


def _signed_member(body: bytes, key: str, endpoint: str) -> tuple[str, bytes]:
    """Return the JSON member ``key`` exactly as served, and the hex ``signature`` decoded."""
    try:
        text = body.decode("utf-8")
        raw = _raw_members(text)
        signature = json.loads(raw["signature"])
        if key not in raw or not isinstance(signature, str):
            raise KeyError(key)
        return raw[key], bytes.fromhex(signature)
    except (UnicodeDecodeError, ValueError, KeyError) as exc:
        raise _pccs_error(
            mismatch(f"{endpoint} body", f'{{"{key}": ..., "signature": "<hex>"}}', repr(exc))
        ) from None


def _raw_members(text: str) -> dict[str, str]:
    """Split a top-level JSON object into its members' raw source text."""
    decoder = json.JSONDecoder()
    out: dict[str, str] = {}
    pos = _skip(text, 0)
    _expect(text, pos, "{")
    pos = _skip(text, pos + 1)
    while pos < len(text) and text[pos] != "}":
        name: Any
        name, pos = decoder.raw_decode(text, pos)
        pos = _skip(text, pos)
        _expect(text, pos, ":")
        start = _skip(text, pos + 1)
        _, end = decoder.raw_decode(text, start)
        out[str(name)] = text[start:end]
        pos = _skip(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip(text, pos + 1)
    _expect(text, pos, "}")
    return out


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _expect(text: str, pos: int, char: str) -> None:
    if pos >= len(text) or text[pos] != char:
        raise ValueError(f"expected {char!r} at offset {pos}")
