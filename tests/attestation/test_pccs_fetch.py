"""Collateral fetched from a PCCS on loopback (serving ../shared/testdata's collateral)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import dcap_qvl
import pytest

from cvfl.attestation import DcapVerifier, PccsCollateral
from cvfl.attestation.pccs import _raw_members
from cvfl.errors import AttestationError, ConfigError

from .conftest import T_VALID
from .pccs_server import serve_pccs


def test_fetch_and_verify(collateral_path: Path, real_quote: bytes) -> None:
    with serve_pccs(collateral_path) as (url, seen):
        source = PccsCollateral(url)
        evidence = DcapVerifier(source).verify(real_quote, at=T_VALID)
        assert evidence.tcb_status == "ConfigurationAndSWHardeningNeeded"
        assert evidence.advisory_ids == ("INTEL-SA-00289", "INTEL-SA-00615")
        assert seen == [
            "/sgx/certification/v4/pckcrl?ca=processor&encoding=der",
            "/sgx/certification/v4/tcb?fmspc=00A067110000&update=standard",
            "/sgx/certification/v4/qe/identity?update=standard",
            "/sgx/certification/v4/rootcacrl",
        ]
        DcapVerifier(source).verify(real_quote, at=T_VALID)
        assert len(seen) == 4  # cached per (FMSPC, CA)


def test_base_url_with_api_path(collateral_path: Path, real_quote: bytes) -> None:
    with serve_pccs(collateral_path) as (url, _):
        source = PccsCollateral(url + "/sgx/certification/v4/")
        assert DcapVerifier(source).verify(real_quote, at=T_VALID).tcb_status


def test_dcap_qvl_own_client_agrees_with_the_test_pccs(
    collateral_path: Path, real_quote: bytes
) -> None:
    async def fetch() -> object:
        return await dcap_qvl.get_collateral(url, real_quote)

    with serve_pccs(collateral_path) as (url, _):
        collateral = asyncio.run(fetch())
    report = dcap_qvl.verify(real_quote, collateral, T_VALID)
    assert report.status == "ConfigurationAndSWHardeningNeeded"


@pytest.mark.parametrize("broken", ["pckcrl", "tcb", "qe/identity", "rootcacrl"])
def test_pccs_failure_is_a_clean_refusal(
    collateral_path: Path, real_quote: bytes, broken: str
) -> None:
    with (
        serve_pccs(collateral_path, broken=broken) as (url, _),
        pytest.raises(AttestationError) as info,
    ):
        DcapVerifier(PccsCollateral(url)).verify(real_quote, at=T_VALID)
    assert info.value.code == "attestation.pccs"
    assert "HTTP 404" in info.value.message and broken in info.value.message


def test_unreachable_pccs(real_quote: bytes) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(AttestationError) as info:
        PccsCollateral(f"http://127.0.0.1:{port}", timeout=2).collateral_for(real_quote)
    assert info.value.code == "attestation.pccs"


@pytest.mark.parametrize("url", ["ftp://x", "pccs.local", ""])
def test_bad_url(url: str) -> None:
    with pytest.raises(ConfigError):
        PccsCollateral(url)


def test_raw_members_keep_bytes() -> None:
    text = '{ "tcbInfo" : {"b":1,  "a":[2, 3]} , "signature":"00ff"}'
    members = _raw_members(text)
    assert members == {"tcbInfo": '{"b":1,  "a":[2, 3]}', "signature": '"00ff"'}
    with pytest.raises(ValueError):
        _raw_members("[1]")
