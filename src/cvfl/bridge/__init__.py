"""The bridge: one bidirectional gRPC stream per worker pair carrying split-training traffic."""

from cvfl.bridge.handshake import (
    PROTOCOL_VERSION,
    follower_handshake,
    hello_mismatches,
    leader_handshake,
)
from cvfl.bridge.link import BridgeServer, ClientLink, Link, dial, expect
from cvfl.bridge.security import ChannelSecurity, PlaintextSecurity
from cvfl.bridge.serde import Hello, TensorSpec, tensor_from_proto, tensor_to_proto

__all__ = [
    "PROTOCOL_VERSION",
    "BridgeServer",
    "ChannelSecurity",
    "ClientLink",
    "Hello",
    "Link",
    "PlaintextSecurity",
    "TensorSpec",
    "dial",
    "expect",
    "follower_handshake",
    "hello_mismatches",
    "leader_handshake",
    "tensor_from_proto",
    "tensor_to_proto",
]
