"""``cvfl attest show|verify|measure``: this process's evidence, a peer's, and a build's."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated

import typer

from cvfl.attestation import (
    TCB_STATUSES,
    AttestationConfig,
    EvidenceProvider,
    GramineProvider,
    Policy,
    QuoteVerifier,
    SimulatedProvider,
    VerifiedEvidence,
    default_verifier,
    load_policy,
    parse_quote,
)
from cvfl.attestation.gramine import DEFAULT_ROOT
from cvfl.attestation.sigstruct import parse_sigstruct
from cvfl.errors import AttestationError, ConfigError, mismatch
from cvfl.fsutil import atomic_write_bytes

attest_app = typer.Typer(
    name="attest",
    help="Show this process's attestation evidence; verify a peer's.",
    no_args_is_help=True,
)

CERT_SUFFIXES = (".pem", ".der", ".crt", ".cer")


def register(app: typer.Typer) -> None:
    """Attach ``cvfl attest`` to the root app."""
    app.add_typer(attest_app, name="attest")


def _echo_identity(fields: dict[str, str]) -> None:
    for key, value in fields.items():
        typer.echo(f"  {key:<17} {value}")


def _provider(name: str, root: Path, code: list[Path]) -> EvidenceProvider:
    if name == "auto":
        name = "gramine" if (root / "attestation_type").exists() else "simulated"
    if name == "gramine":
        return GramineProvider(root)
    if name == "simulated":
        return SimulatedProvider(code)
    raise ConfigError(
        mismatch("--provider", "auto, simulated or gramine", name), code="config.option"
    )


@attest_app.command("show")
def show(
    provider: Annotated[
        str, typer.Option(help="auto (gramine when its folder exists), simulated or gramine.")
    ] = "auto",
    gramine_root: Annotated[Path, typer.Option(help="Gramine's attestation folder.")] = (
        DEFAULT_ROOT
    ),
    code: Annotated[
        list[Path] | None,
        typer.Option("--code", help="Extra code measured by the simulated TEE (repeatable)."),
    ] = None,
    quote_out: Annotated[
        Path | None, typer.Option(help="Also write the quote to this file.")
    ] = None,
) -> None:
    """Print this process's evidence: provider, measurement and identity (never the quote)."""
    evidence = _provider(provider, gramine_root, code or [])
    raw = evidence.quote(bytes(64))
    parsed = parse_quote(raw)
    typer.echo(f"provider: {evidence.name}")
    if evidence.simulated:
        typer.echo(
            "INSECURE: simulated TEE, NOT a real enclave; its evidence is software-signed and a "
            "peer accepts it only with allow_simulated = true"
        )
    typer.echo("identity:")
    _echo_identity(parsed.identity.describe())
    typer.echo(f"quote: {len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()}")
    if quote_out is not None:
        atomic_write_bytes(quote_out, raw, 0o644)
        typer.echo(f"quote written to {quote_out}")


@attest_app.command("verify")
def verify(
    file: Annotated[
        Path, typer.Argument(help="A quote (.bin) or an RA-TLS certificate (.pem/.der).")
    ],
    policy: Annotated[
        Path | None,
        typer.Option(help="Policy: TOML ([policy] table) or CCZoo dynamic_config.json."),
    ] = None,
    collateral: Annotated[Path | None, typer.Option(help="dcap-qvl collateral JSON file.")] = None,
    pccs: Annotated[
        str | None, typer.Option(help="PCCS base URL to fetch collateral from.")
    ] = None,
    at: Annotated[int | None, typer.Option(help="Verify at this UNIX time instead of now.")] = None,
) -> None:
    """Verify a quote or RA-TLS certificate; print identity, TCB and the policy verdict."""
    data = _read(file)
    cfg = AttestationConfig(
        provider="simulated", collateral=collateral, pccs_url=pccs, verify_at=at
    )
    verifier = default_verifier(cfg)
    chosen = load_policy(policy) if policy is not None else Policy(allow_any_identity=True)
    if file.suffix.lower() in CERT_SUFFIXES:
        evidence = _verify_certificate(data, verifier, at)
    else:
        typer.echo(f"quote: {file} ({len(data)} bytes)")
        _echo_quote(data)
        evidence = verifier.verify(data, at=at)
    _echo_evidence(evidence)
    if policy is None:
        typer.echo("policy: none given; identity not checked, strict TCB/debug/simulation rules")
    chosen.check(evidence)
    typer.echo("verdict: ACCEPTED")


@attest_app.command("measure")
def measure(
    sigstruct: Annotated[
        Path, typer.Argument(help="An SGX SIGSTRUCT: Gramine's .sig file (1808 bytes).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Print a build's mr_enclave, mr_signer, product id and svn; check its signature.

    Compare the mr_enclave of the peer's published build with that of your own build of the
    same commit: equal values mean the same code, whoever signed it. Exits 5 when the
    signature does not verify (after printing what the file claims).
    """
    parsed = parse_sigstruct(_read(sigstruct))
    if as_json:
        typer.echo(json.dumps({"file": str(sigstruct), **parsed.as_json()}, indent=2))
    else:
        typer.echo(f"sigstruct: {sigstruct}")
        for key, value in parsed.describe().items():
            typer.echo(f"{key}: {value}")
    if not (parsed.signature_valid and parsed.q_valid):
        raise AttestationError(
            mismatch(
                f"{sigstruct}: signature",
                "valid RSA-3072 over the signed regions, with consistent q1/q2",
                f"signature {'valid' if parsed.signature_valid else 'INVALID'}, "
                f"q1/q2 {'consistent' if parsed.q_valid else 'INCONSISTENT'}",
            ),
            code="attestation.sigstruct_signature",
        )


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{file}: cannot read ({exc.strerror or exc})", code="config.file"
        ) from None


def _echo_quote(raw: bytes) -> None:
    parsed = parse_quote(raw)
    typer.echo(f"  qe_vendor_id      {parsed.qe_vendor_id.hex()}")
    _echo_identity(parsed.identity.describe())


def _echo_evidence(evidence: VerifiedEvidence) -> None:
    typer.echo(f"signature: verified ({'SIMULATED, insecure' if evidence.simulated else 'DCAP'})")
    typer.echo(f"tcb_status: {evidence.tcb_status}")
    typer.echo(f"advisories: {', '.join(evidence.advisory_ids) or 'none'}")


def _verify_certificate(data: bytes, verifier: QuoteVerifier, at: int | None) -> VerifiedEvidence:
    from cvfl import ratls

    cert = ratls.load_certificate(data)
    typer.echo(f"certificate: subject {cert.subject.rfc4514_string()}")
    found = ratls.extract_evidence(cert)
    typer.echo(f"evidence: {found.format} extension; key binding verified")
    if found.terms is None:
        typer.echo("job terms: none (report_data[32:64] is zero, as in Gramine's certificates)")
    else:
        typer.echo(f"job terms (bound in report_data[32:64]): {found.terms.describe()}")
        typer.echo(f"  policy digest     {found.terms.policy_digest}")
    _echo_quote(found.quote)
    permissive = Policy(
        allow_debug=True,
        allowed_tcb_statuses=TCB_STATUSES,
        allow_simulated=True,
        allow_any_identity=True,
    )
    evidence: VerifiedEvidence = ratls.verify_certificate(data, verifier, permissive, at=at)
    typer.echo("certificate validity and self-signature: verified")
    return evidence
