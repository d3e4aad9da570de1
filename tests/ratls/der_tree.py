"""A minimal DER tree for fuzzing: parse, change one node, encode again with correct lengths.

Byte flips in a certificate mostly break its outer framing, so the parser refuses them early;
re-encoding after a change keeps every length right, so the change reaches the parsers of the
field it lands in (names, times, keys, extension values). OCTET and BIT STRINGs whose content is
itself DER (extension values, the public key of an RSA SPKI) are opened as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CONSTRUCTED = 0x20
OCTET_STRING = 0x04
BIT_STRING = 0x03
MAX_DEPTH = 12


@dataclass
class Node:
    """One TLV: a primitive ``value``, or ``children`` (with ``prefix``, e.g. a BIT STRING's
    unused-bits byte, before them)."""

    tag: int
    value: bytes = b""
    children: list[Node] | None = None
    prefix: bytes = b""

    def walk(self) -> list[Node]:
        """This node and every node below it, depth first."""
        out = [self]
        for child in self.children or []:
            out.extend(child.walk())
        return out


@dataclass
class _Reader:
    data: bytes
    pos: int = 0
    nodes: list[Node] = field(default_factory=list)


def _header(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """Return (tag, content start, content end) of the TLV at ``pos``, or None if malformed."""
    if pos + 2 > len(data) or data[pos] & 0x1F == 0x1F:
        return None
    first = data[pos + 1]
    if first < 0x80:
        start, length = pos + 2, first
    else:
        size = first & 0x7F
        if not 1 <= size <= 4 or pos + 2 + size > len(data):
            return None
        start, length = pos + 2 + size, int.from_bytes(data[pos + 2 : pos + 2 + size], "big")
    end = start + length
    return (data[pos], start, end) if end <= len(data) else None


def parse(data: bytes, depth: int = 0) -> list[Node] | None:
    """Parse ``data`` as a sequence of TLVs filling it exactly, or return None."""
    nodes: list[Node] = []
    pos = 0
    while pos < len(data):
        head = _header(data, pos)
        if head is None:
            return None
        tag, start, end = head
        nodes.append(_node(tag, data[start:end], depth))
        pos = end
    return nodes


def _node(tag: int, content: bytes, depth: int) -> Node:
    if depth < MAX_DEPTH:
        if tag & CONSTRUCTED:
            kids = parse(content, depth + 1)
            if kids is not None:
                return Node(tag, children=kids)
        if tag == OCTET_STRING and content[:1] == b"\x30":
            kids = parse(content, depth + 1)
            if kids is not None:
                return Node(tag, children=kids)
        if tag == BIT_STRING and content[:2] == b"\x00\x30":
            kids = parse(content[1:], depth + 1)
            if kids is not None:
                return Node(tag, children=kids, prefix=b"\x00")
    return Node(tag, value=content)


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def encode(nodes: list[Node]) -> bytes:
    """Encode ``nodes`` with every length recomputed."""
    out = bytearray()
    for node in nodes:
        content = node.value if node.children is None else node.prefix + encode(node.children)
        out += bytes([node.tag]) + _length(len(content)) + content
    return bytes(out)
