"""ECDH-PSI, the default mode: ids hashed to X25519 or ristretto255, blinded twice, intersected.

``curve25519``, ``x25519``, ``ristretto`` and ``points`` are the groups and their point codecs,
``group`` the blinder over either, ``exchange`` the stream of blinded points with the peer, and
``run`` one party's whole ECDH alignment. Pieces both modes use (config, wire messages, spill
store, stream, output, report) stay in :mod:`cvfl.psi`.
"""
