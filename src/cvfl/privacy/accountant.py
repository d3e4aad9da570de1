"""ε of the ``gaussian`` defence, from Opacus's RDP accountant (not a home-made one).

What is accounted: each training row's own cut-layer gradient, clipped to L2 norm ``C`` and
sent with Gaussian noise of standard deviation ``z * C``, once per epoch the row is trained in.
Changing the row's label moves its clipped gradient by at most ``2 C`` (both ends have norm at
most ``C``), so each release is the Gaussian mechanism with noise multiplier ``z / 2``; the
releases of a row compose, and every row is in every epoch (sampling rate 1, no amplification).
"""

from __future__ import annotations

import warnings

# Rényi orders: fine near 1 (large ε), integers beyond (small ε), as Opacus's own defaults.
ORDERS = tuple([1.0 + x / 10.0 for x in range(1, 100)] + [float(a) for a in range(12, 64)])


def gaussian_epsilon(noise_multiplier: float, releases: int, delta: float) -> float:
    """ε at ``delta`` after ``releases`` clipped, noised releases of each row's gradient.

    Args:
        noise_multiplier: The noise's standard deviation in units of the clipping bound.
        releases: How many times each row's gradient is sent (epochs trained).
        delta: The δ of the (ε, δ) guarantee.
    """
    if releases <= 0:
        return 0.0
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    rdp = compute_rdp(
        q=1.0, noise_multiplier=noise_multiplier / 2.0, steps=releases, orders=list(ORDERS)
    )
    with warnings.catch_warnings():  # at very little noise the bound is loose; still a bound
        warnings.simplefilter("ignore", UserWarning)
        epsilon, _ = get_privacy_spent(orders=list(ORDERS), rdp=rdp, delta=delta)
    return float(epsilon)
