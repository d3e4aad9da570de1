"""Remote attestation: SGX DCAP quotes, evidence providers, verifiers and the identity policy.

Public API (see docs/attestation.md):

- :class:`EnclaveIdentity`, :class:`Quote`, :func:`parse_quote` — SGX DCAP v3 structure.
- :class:`EvidenceProvider` with :class:`GramineProvider` (real SGX under Gramine) and
  :class:`SimulatedProvider` (software-signed, insecure, loud).
- :class:`QuoteVerifier` with :class:`DcapVerifier` (dcap-qvl against :class:`FileCollateral`
  or :class:`PccsCollateral`) and :class:`SimulatedVerifier`; :class:`VerifiedEvidence`.
- :class:`Policy` (:meth:`Policy.check`, :meth:`Policy.from_toml_table`),
  :func:`load_cczoo_json`.
- :class:`AttestationConfig`, :func:`make_provider`, :func:`default_verifier`,
  :func:`check_live_channel` (no fixed verification time on a live channel unless allowed).
"""

from cvfl.attestation.cczoo import load_cczoo_json
from cvfl.attestation.config import (
    AttestationConfig,
    RoutingVerifier,
    check_live_channel,
    default_verifier,
    load_policy,
    make_provider,
)
from cvfl.attestation.dcap import CollateralSource, DcapVerifier, FileCollateral
from cvfl.attestation.evidence import (
    REPORT_DATA_LEN,
    SIMULATED_TCB_STATUS,
    TCB_STATUSES,
    EvidenceProvider,
    QuoteVerifier,
    VerifiedEvidence,
)
from cvfl.attestation.gramine import GramineProvider
from cvfl.attestation.pccs import PccsCollateral
from cvfl.attestation.policy import AcceptedIdentity, Policy
from cvfl.attestation.quote import EnclaveIdentity, Quote, parse_quote
from cvfl.attestation.simulated import (
    SIM_MR_SIGNER,
    SIM_QE_VENDOR_ID,
    SimulatedProvider,
    SimulatedVerifier,
    measure_code,
)

__all__ = [
    "REPORT_DATA_LEN",
    "SIMULATED_TCB_STATUS",
    "SIM_MR_SIGNER",
    "SIM_QE_VENDOR_ID",
    "TCB_STATUSES",
    "AcceptedIdentity",
    "AttestationConfig",
    "CollateralSource",
    "DcapVerifier",
    "EnclaveIdentity",
    "EvidenceProvider",
    "FileCollateral",
    "GramineProvider",
    "PccsCollateral",
    "Policy",
    "Quote",
    "QuoteVerifier",
    "RoutingVerifier",
    "SimulatedProvider",
    "SimulatedVerifier",
    "VerifiedEvidence",
    "check_live_channel",
    "default_verifier",
    "load_cczoo_json",
    "load_policy",
    "make_provider",
    "measure_code",
    "parse_quote",
]
