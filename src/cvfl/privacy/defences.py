"""Defences on the cut-layer gradient the leader sends, and randomized response on its labels.

Every random draw comes from a generator derived from the job's seed, the step and the worker
(:func:`step_generator`), so a defended step sends the same bytes however often it is replayed:
a resumed job stays exact.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from cvfl.privacy.config import PrivacySection

_TINY = 1e-12


def derived_seed(seed: int, purpose: str, *parts: int) -> int:
    """A 63-bit seed for one use of randomness, derived from the job seed."""
    text = "/".join([f"cvfl/privacy/{purpose}/{seed}", *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def step_generator(seed: int, step: int, worker: int) -> torch.Generator:
    """The generator of one step's noise on one worker."""
    return torch.Generator().manual_seed(derived_seed(seed, "noise", step, worker))


def max_norm(grad: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Pad every row's expected squared norm up to the batch's largest with Gaussian noise.

    Row ``i`` gets isotropic noise of variance ``(max_j |g_j|^2 - |g_i|^2) / width`` per
    coordinate, so all rows have the same expected norm (the norm attack's signal).
    """
    squared = grad.pow(2).sum(dim=1, keepdim=True)
    variance = (squared.max() - squared).clamp_min(0.0) / max(grad.shape[1], 1)
    noise = torch.randn(grad.shape, generator=gen, dtype=grad.dtype)
    return grad + noise * variance.sqrt()


def clip_rows(grad: torch.Tensor, bound: float) -> torch.Tensor:
    """Scale each row down to L2 norm at most ``bound`` (rows within it are unchanged)."""
    norms = grad.norm(dim=1, keepdim=True)
    clipped: torch.Tensor = grad * (bound / norms.clamp_min(_TINY)).clamp(max=1.0)
    return clipped


def gaussian(
    grad: torch.Tensor, clip_norm: float, multiplier: float, gen: torch.Generator
) -> torch.Tensor:
    """Clip each row to ``clip_norm``, then add N(0, (multiplier * clip_norm)^2) per coordinate."""
    noise = torch.randn(grad.shape, generator=gen, dtype=grad.dtype)
    return clip_rows(grad, clip_norm) + noise * (multiplier * clip_norm)


def marvell_split(
    budget: float, gap: float, variances: tuple[float, float], prior: float
) -> tuple[float, float]:
    """Split a noise budget between the classes along the class-mean direction.

    Minimises the symmetrised KL divergence of two 1-D Gaussians whose means are ``gap`` apart
    (squared distance) and whose variances are the classes' own plus the added noise, subject
    to ``prior * n1 + (1 - prior) * n0 = budget`` (a grid over the split; cheap and exact
    enough for a 1-D problem).

    Returns:
        The noise variances (positive class, negative class).
    """
    share = np.linspace(0.0, 1.0, 201)
    n1 = share * budget / max(prior, _TINY)
    n0 = (1.0 - share) * budget / max(1.0 - prior, _TINY)
    a = variances[0] + n1 + _TINY
    b = variances[1] + n0 + _TINY
    divergence = 0.5 * (a / b + b / a - 2.0) + 0.5 * gap * (1.0 / a + 1.0 / b)
    best = int(np.argmin(divergence))
    return float(n1[best]), float(n0[best])


def marvell(
    grad: torch.Tensor, labels: np.ndarray, strength: float, gen: torch.Generator
) -> torch.Tensor:
    """Marvell-style noise (after Li et al., 2022), restricted to the class-mean direction.

    The leader knows each row's class, so it adds 1-D Gaussian noise along the difference of the
    two classes' mean gradients, with a variance per class chosen by :func:`marvell_split` from a
    budget of ``strength`` times the squared distance of the means. A batch with one class only
    gets noise along its mean gradient, of ``strength`` times its squared norm.
    """
    g = grad.double()
    positive = torch.from_numpy(np.asarray(labels) == 1)
    if bool(positive.all()) or not bool(positive.any()):
        direction = g.mean(dim=0)
        gap = float(direction.pow(2).sum())
        unit = direction / max(math.sqrt(gap), _TINY)
        scale = torch.full((g.shape[0],), math.sqrt(strength * gap), dtype=torch.float64)
    else:
        direction = g[positive].mean(dim=0) - g[~positive].mean(dim=0)
        gap = float(direction.pow(2).sum())
        unit = direction / max(math.sqrt(gap), _TINY)
        along = g @ unit
        spread = (
            float(along[positive].var(unbiased=False)),
            float(along[~positive].var(unbiased=False)),
        )
        prior = float(positive.double().mean())
        n1, n0 = marvell_split(strength * gap, gap, spread, prior)
        scale = torch.where(positive, math.sqrt(n1), math.sqrt(n0)).double()
    draws = torch.randn(g.shape[0], generator=gen, dtype=torch.float64)
    return (g + (draws * scale)[:, None] * unit[None, :]).to(grad.dtype)


def protect(
    grad: torch.Tensor, labels: np.ndarray, section: PrivacySection, gen: torch.Generator
) -> torch.Tensor:
    """Apply ``section``'s defence to one block's cut-layer gradient (labels: the true ones)."""
    if section.defence == "max_norm":
        return max_norm(grad, gen)
    if section.defence == "gaussian":
        return gaussian(grad, section.clip_norm, section.noise_multiplier, gen)
    if section.defence == "marvell":
        return marvell(grad, labels, section.marvell_strength, gen)
    return grad


def keep_probability(epsilon: float) -> float:
    """The probability randomized response with ``epsilon`` keeps a binary label."""
    return 1.0 / (1.0 + math.exp(-epsilon))


def randomized_response(labels: np.ndarray, epsilon: float, seed: int) -> np.ndarray:
    """Each binary label kept with probability ``e^ε / (1 + e^ε)``, else flipped.

    The flips depend only on the job's seed and the row's position in the aligned table (which
    both the first run and a resumed one see in the same order).
    """
    rng = np.random.default_rng(derived_seed(seed, "labels"))
    flip = rng.random(len(labels)) >= keep_probability(epsilon)
    out: np.ndarray = np.where(flip, 1 - labels, labels).astype(labels.dtype)
    return out
