"""``cvfl attest show`` and ``cvfl attest verify`` through the real entry point."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cvfl.attestation import SimulatedProvider
from cvfl.cli.app import main

from .conftest import T_VALID

CHC = "ConfigurationAndSWHardeningNeeded"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, " ".join(out.err.split())  # rich wraps stderr lines


def test_show_simulated_and_verify_its_quote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quote = tmp_path / "q.bin"
    code, out, _ = run(
        ["attest", "show", "--provider", "simulated", "--quote-out", str(quote)], capsys
    )
    assert code == 0
    assert "INSECURE" in out and "mr_enclave" in out and "provider: simulated" in out
    assert quote.read_bytes()[:2] == b"\x03\x00"
    assert quote.read_bytes().hex() not in out
    code, out, err = run(["attest", "verify", str(quote)], capsys)
    assert code == 5 and "simulated: expected false" in err
    policy = tmp_path / "p.toml"
    policy.write_text("[policy]\nallow_simulated = true\nallow_any_identity = true\n")
    code, out, _ = run(["attest", "verify", str(quote), "--policy", str(policy)], capsys)
    assert code == 0 and "verdict: ACCEPTED" in out


def test_verify_real_quote(collateral_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    quote = collateral_path.parent / "dcap_quote_v3.bin"
    base = ["attest", "verify", str(quote), "--collateral", str(collateral_path)]
    code, out, err = run([*base, "--at", str(T_VALID)], capsys)
    assert code == 5
    assert f"tcb_status: {CHC}" in out and "INTEL-SA-00289, INTEL-SA-00615" in out
    assert f"tcb_status: expected UpToDate, seen {CHC}" in err
    assert "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb" in out
    code, out, err = run([*base, "--at", "1800000000"], capsys)
    assert code == 5 and "expired" in err


def test_verify_real_quote_with_policies(
    tmp_path: Path, collateral_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quote = collateral_path.parent / "dcap_quote_v3.bin"
    policy = tmp_path / "p.toml"
    policy.write_text(
        f'[policy]\nallowed_tcb_statuses = ["{CHC}"]\n[[policy.identities]]\n'
        'mr_signer = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"\n'
    )
    args = ["attest", "verify", str(quote), "--collateral", str(collateral_path)]
    code, out, _ = run([*args, "--at", str(T_VALID), "--policy", str(policy)], capsys)
    assert code == 0 and "ACCEPTED" in out
    cczoo = tmp_path / "dynamic_config.json"
    cczoo.write_text('{"verify_mr_enclave": "on", "sgx_mrs": [{"mr_enclave": "' + "0" * 64 + '"}]}')
    code, _, err = run([*args, "--at", str(T_VALID), "--policy", str(cczoo)], capsys)
    # CCZoo files keep cvfl's strict TCB default: the status is refused before the identity.
    assert code == 5 and "tcb_status: expected UpToDate" in err


def test_verify_gramine_certificate(
    collateral_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = collateral_path.parent / "gramine_v1_ratls_cert.pem"
    argv = ["attest", "verify", str(cert), "--collateral", str(collateral_path)]
    code, out, err = run([*argv, "--at", str(T_VALID)], capsys)
    assert code == 5
    assert "d1d2ca3da743b572ed3f664664e1ff110eac9913caebca38f034ec9a82a1bd18" in out
    assert "debug             true" in out
    assert "certificate chain" in err


def test_verify_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["attest", "verify", str(tmp_path / "none.bin")], capsys)
    assert code == 2 and "cannot read" in err


def test_show_gramine_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        ["attest", "show", "--provider", "gramine", "--gramine-root", str(tmp_path)], capsys
    )
    assert code == 5 and "attestation_type" in err


def test_verify_simulated_ratls_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ratls = pytest.importorskip("cvfl.ratls")
    provider = SimulatedProvider()
    creds = ratls.make_certificate(provider, valid_for=dt.timedelta(minutes=5))
    cert = tmp_path / "peer.pem"
    cert.write_bytes(creds.cert_pem)
    policy = tmp_path / "p.toml"
    policy.write_text(
        "[policy]\nallow_simulated = true\n[[policy.identities]]\n"
        f'mr_enclave = "{provider.mr_enclave.hex()}"\n'
    )
    code, out, _ = run(["attest", "verify", str(cert), "--policy", str(policy)], capsys)
    assert code == 0 and "key binding verified" in out and "ACCEPTED" in out
    assert "job terms: none" in out
    code, _, err = run(["attest", "verify", str(cert)], capsys)
    assert code == 5 and "simulated: expected false" in err
    from tests.ratls.helpers import terms

    with_terms = ratls.make_certificate(provider, terms=terms("follower"))
    cert.write_bytes(with_terms.cert_pem)
    code, out, _ = run(["attest", "verify", str(cert), "--policy", str(policy)], capsys)
    assert code == 0 and "job terms (bound in report_data[32:64]): job test-job follower" in out
