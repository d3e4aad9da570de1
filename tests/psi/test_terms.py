"""PSI over an attested channel: each hello must declare the terms its evidence attests."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvfl.attestation.simulated import SimulatedVerifier
from cvfl.errors import AlignmentError
from cvfl.ratls import RatlsSecurity
from tests.ratls.helpers import CraftedProvider, policy, terms

from .conftest import check_aligned, run_pair


def _party(role: str) -> RatlsSecurity:
    job = terms(role, job_id="job-1", command="align")
    return RatlsSecurity(CraftedProvider(), SimulatedVerifier(), policy(), terms=job)


def test_attested_alignment_declares_its_terms(tmp: Path) -> None:
    leader, follower = [f"u{i}" for i in range(30)], [f"u{i}" for i in range(10, 50)]
    out = run_pair(
        tmp, leader, follower, security=_party("follower"), leader_security=_party("leader")
    )
    check_aligned(out, leader, follower)


def test_terms_swapped_after_attestation_are_refused(tmp: Path) -> None:
    """The follower attests sealed outputs, then declares plaintext ones in its PSI hello."""
    follower = _party("follower")
    follower.terms = terms("follower", job_id="job-1", command="align", plaintext_outputs=True)
    with pytest.raises(AlignmentError) as err:
        run_pair(tmp, ["a", "b"], ["b"], security=follower, leader_security=_party("leader"))
    assert err.value.code == "psi.peer_abort"  # the leader refused the follower's hello
    assert "[psi.terms]" in err.value.message
    assert "plaintext_outputs: expected False, seen True" in err.value.message
    assert not list(tmp.glob("*-aligned*"))
