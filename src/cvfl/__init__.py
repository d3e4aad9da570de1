"""cvfl: confidential vertical federated learning.

Two parties align their rows privately, train one split model over an attested channel and keep
every artifact sealed. The subpackages follow the flow: ``data`` → ``psi`` → ``bridge`` (over
``ratls`` with ``attestation``) → ``train`` with ``models`` → ``sealing``; ``cli`` is the front.
"""

from cvfl.errors import CvflError

__version__ = "0.1.0"
__all__ = ["CvflError", "__version__"]
