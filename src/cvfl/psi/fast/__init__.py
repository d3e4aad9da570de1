"""Fast mode (``psi.mode = "fast"``, attested enclaves only): keyed hashes instead of blinding.

``gate`` decides whether fast mode may run on this channel, ``key`` agrees the session's HMAC
key with the attested peer, ``session`` streams the keyed hashes, and ``run`` is one party's
whole fast alignment. Pieces both modes use stay in :mod:`cvfl.psi`.
"""
