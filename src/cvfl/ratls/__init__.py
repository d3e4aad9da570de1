"""RA-TLS: Gramine-compatible attested certificates and the attest-then-pin gRPC channel.

Public API:

- :func:`make_certificate` / :func:`verify_certificate` (:mod:`cvfl.ratls.cert`);
- :class:`RatlsSecurity` and :func:`security_from_config` (:mod:`cvfl.ratls.channel`), the
  ``ChannelSecurity`` the bridge uses by default.
"""

from cvfl.ratls.cert import (
    CertificateEvidence,
    RatlsCredentials,
    extract_evidence,
    load_certificate,
    make_certificate,
    verify_certificate,
)
from cvfl.ratls.channel import RatlsSecurity, security_from_config

__all__ = [
    "CertificateEvidence",
    "RatlsCredentials",
    "RatlsSecurity",
    "extract_evidence",
    "load_certificate",
    "make_certificate",
    "security_from_config",
    "verify_certificate",
]
