"""What every PSI group shares: the 32-byte point size, libsodium's handle, payload checks.

libsodium (bundled by ``rbcl``) does the group arithmetic. The hot loops call its ``ctypes``
handle (``rbcl._sodium``) directly with reused output buffers: rbcl's per-call wrappers cost
about 12 us of Python under the GIL, while a bare ``ctypes`` call releases the GIL for the whole
C computation, so a thread pool spreads batches over every core without copying the secret
into another process.
"""

from __future__ import annotations

import contextlib
import os
import sys

import rbcl

from cvfl.errors import AlignmentError

POINT_BYTES = 32
lib = rbcl._sodium


def _remove_rbcl_copy() -> None:
    """Delete the copy of libsodium that rbcl writes to the temp folder on every import.

    rbcl never removes it (a few MB per process); once loaded, the file is no longer needed.
    """
    path = getattr(sys.modules.get("rbcl._sodium"), "lib_path", None)
    if isinstance(path, str) and os.path.basename(path).startswith("tmp"):
        with contextlib.suppress(OSError):
            os.unlink(path)


_remove_rbcl_copy()


def check_length(points: bytes, *, batch: int, what: str) -> None:
    """Refuse a payload that is not a whole number of points."""
    if len(points) % POINT_BYTES:
        raise AlignmentError(
            f"peer {what} batch {batch}: payload of {len(points)} bytes is not a whole number "
            f"of {POINT_BYTES}-byte points",
            code="psi.bad_point",
        )


def bad_point(what: str, batch: int, index: int, why: str) -> AlignmentError:
    """The refusal of one received point: names the batch, the index in it and what failed."""
    return AlignmentError(
        f"peer {what} batch {batch} item {index}: {why}",
        code="psi.bad_point",
    )


def internal_error(why: str) -> AlignmentError:
    """A failure of our own group arithmetic that cannot happen with honest inputs."""
    return AlignmentError(f"group arithmetic failed: {why}", code="psi.internal")
