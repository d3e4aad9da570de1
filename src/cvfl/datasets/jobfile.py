"""Tables shared by the job files cvfl writes for its demo, breast-cancer and practice jobs.

Each function returns TOML text, comments included, exactly as it appears in the written files:
both parties on 127.0.0.1 over RA-TLS, a sealing key per party under ``keys/``, and the
simulated TEE accepted by name.
"""

from __future__ import annotations

SEALING_NOTE = (
    "# Checkpoints and exports are sealed with this party's own key (made by `cvfl keys new`).\n"
)
SIMULATED_NOTE = "# The simulated TEE proves nothing; this demo policy accepts it by name.\n"
SIMULATED_INLINE = "  # the simulated TEE proves nothing: accepted here by name"


def peer_table(role: str, port: int) -> str:
    """``[peer]``: the leader listens on ``127.0.0.1:port``, the follower connects to it."""
    verb = "listen" if role == "leader" else "connect"
    return f"""[peer]
{verb} = "127.0.0.1:{port}"
security = "ratls"
connect_timeout = 120.0
"""


def mlp_tables(cut_width: int, hidden: int, task: str = "") -> str:
    """``[model]``: an MLP split model with one hidden layer of ``hidden`` on each side."""
    task_lines = f"{task}\n" if task else ""
    return f"""[model]
kind = "mlp"
{task_lines}cut_width = {cut_width}
leader_hidden = [{hidden}]
follower_hidden = [{hidden}]
"""


def adam_lines(lr: float, batch_size: int, epochs: int) -> str:
    """The head of ``[train]``: Adam at ``lr`` over ``epochs`` epochs of ``batch_size`` rows."""
    return f"""[train]
optimizer = "adam"
lr = {lr}
batch_size = {batch_size}
epochs = {epochs}"""


def trust_tables(role: str, identity: str, *, notes: bool) -> str:
    """``[sealing]`` and ``[attestation]`` (simulated TEE, accepted by name), after a blank line.

    Args:
        role: the party (its key is ``keys/<role>.key``).
        identity: the line of the peer identity the policy accepts.
        notes: explain the tables in comment lines (the demo jobs) rather than one inline
            comment (the practice jobs).
    """
    sealing_note = SEALING_NOTE if notes else ""
    simulated = (
        f"{SIMULATED_NOTE}allow_simulated = true"
        if notes
        else f"allow_simulated = true{SIMULATED_INLINE}"
    )
    return f"""
[sealing]
{sealing_note}provider = "file"
key_file = "keys/{role}.key"

[attestation]
provider = "simulated"

[attestation.policy]
{simulated}

[[attestation.policy.identities]]
{identity}
"""
