"""The bridge: one bidirectional gRPC stream per worker pair carrying split-training traffic.

Names are loaded on first use, so importing ``cvfl.bridge.security`` (as PSI and the CLI do)
does not pull in PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PROTOCOL_VERSION": "cvfl.bridge.handshake",
    "follower_handshake": "cvfl.bridge.handshake",
    "hello_mismatches": "cvfl.bridge.handshake",
    "leader_handshake": "cvfl.bridge.handshake",
    "BridgeServer": "cvfl.bridge.link",
    "ClientLink": "cvfl.bridge.link",
    "Link": "cvfl.bridge.link",
    "dial": "cvfl.bridge.link",
    "expect": "cvfl.bridge.link",
    "ChannelSecurity": "cvfl.bridge.security",
    "PlaintextSecurity": "cvfl.bridge.security",
    "Hello": "cvfl.bridge.serde",
    "TensorSpec": "cvfl.bridge.serde",
    "tensor_from_proto": "cvfl.bridge.serde",
    "tensor_to_proto": "cvfl.bridge.serde",
    "Liveness": "cvfl.bridge.reliable",
    "PeerRestarted": "cvfl.bridge.reliable",
    "Session": "cvfl.bridge.reliable",
}
__all__ = [
    "PROTOCOL_VERSION",
    "BridgeServer",
    "ChannelSecurity",
    "ClientLink",
    "Hello",
    "Link",
    "Liveness",
    "PeerRestarted",
    "PlaintextSecurity",
    "Session",
    "TensorSpec",
    "dial",
    "expect",
    "follower_handshake",
    "hello_mismatches",
    "leader_handshake",
    "tensor_from_proto",
    "tensor_to_proto",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cvfl.bridge' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
