"""A party's job terms from its job file's settings (kept free of PyTorch: ``cvfl align`` uses it).

See :mod:`cvfl.attestation.terms` for what the terms are and how they are checked.
"""

from __future__ import annotations

from cvfl.attestation.config import AttestationConfig
from cvfl.attestation.terms import JobTerms
from cvfl.psi.config import PsiConfig
from cvfl.sealing import SealingConfig
from cvfl.sealing.keys import DEFAULT_GRAMINE_ROOT


def sealing_kind(sealing: SealingConfig | None) -> str:
    """The ``sealing`` term for a ``[sealing]`` table (``"none"`` without one).

    A Gramine key read from anywhere but ``/dev/attestation`` is a file the host can write,
    whatever the table calls it: it counts as ``"file"``.
    """
    if sealing is None:
        return "none"
    if sealing.provider == "gramine":
        if sealing.gramine_root != DEFAULT_GRAMINE_ROOT:
            return "file"
        return "gramine" if sealing.gramine_key == "mrenclave" else "gramine-mrsigner"
    return sealing.provider


def job_terms(
    *,
    job_id: str,
    role: str,
    command: str,
    sealing: SealingConfig | None,
    plaintext_outputs: bool,
    psi: PsiConfig | None,
    attestation: AttestationConfig,
) -> JobTerms:
    """This party's terms for ``command`` (what its evidence binds and the peer checks).

    ``plaintext_outputs`` is whether anything this command writes is plaintext (a ``[sealing]``
    table seals everything but what is asked for in plaintext by name, e.g. scores); an
    unsealed aligned table (``[psi] plaintext_output``) counts for the commands that align.
    """
    aligns = command in ("align", "predict")
    unsealed_table = psi is not None and psi.plaintext_output and aligns
    return JobTerms(
        job_id=job_id,
        role=role,
        command=command,
        sealing=sealing_kind(sealing),
        plaintext_outputs=plaintext_outputs or unsealed_table,
        psi_mode=psi.mode if psi is not None else "ecdh",
        policy_digest=attestation.policy.digest(),
    )
