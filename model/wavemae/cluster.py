"""Clustering on the unit sphere: spherical k-means and a von Mises-Fisher mixture (numpy/scipy).

WaveMAE embeddings are L2-normalised, so cosine similarity is their geometry (the seed: "z is
L2-normalized and ready for cosine clustering"). Both models here work on any rows; each row
is scaled to unit length first (a zero row is rejected).

- :func:`spherical_kmeans`: k-means with cosine distance, k-means++ seeding on the sphere
  (a point is drawn with probability proportional to ``1 - cos`` to its nearest centre, which
  is half the squared Euclidean distance of unit vectors), several restarts, the best kept by
  inertia ``sum(1 - cos(x, centre))``.
- :func:`fit_vmf_mixture`: a mixture of von Mises-Fisher distributions fitted by EM
  (Banerjee et al., JMLR 2005), one mean direction and concentration ``kappa`` per component,
  soft assignments, and BIC / ICL (lower is better) for choosing k
  (:func:`choose_k`). It starts from the spherical k-means solution.

Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ive, logsumexp

__all__ = [
    "CRITERIA",
    "KMeansResult",
    "VMFMixture",
    "choose_k",
    "fit_vmf_mixture",
    "log_vmf_normalizer",
    "nearest_centroid",
    "spherical_kmeans",
    "unit_rows",
    "vmf_log_joint",
    "vmf_posterior",
]

#: Criteria :func:`choose_k` knows (both: lower is better).
CRITERIA = ("bic", "icl")
_KAPPA_MAX = 1e6  # a component of one point (or duplicates) would have kappa -> inf


def unit_rows(x: Any) -> np.ndarray:
    """``(N, D)`` rows scaled to unit length, float64.

    Raises:
        ValueError: not 2-D, empty, non-finite, or a row of zeros (it has no direction).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] < 2:
        raise ValueError(f"expected an (N, D) array with N >= 1, D >= 2; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("the rows contain NaN or inf")
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    zero = np.flatnonzero(norm[:, 0] == 0)
    if zero.size:
        raise ValueError(f"row {int(zero[0])} is all zeros and has no direction")
    return x / norm


def _check_k(k: int, n: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k={k!r} must be a positive integer")
    if k > n:
        raise ValueError(f"k={k} is more than the {n} points")


# --------------------------------------------------------------------------- k-means


@dataclass(frozen=True)
class KMeansResult:
    """A spherical k-means fit.

    Attributes:
        labels: ``(N,)`` int64 cluster of each point.
        centroids: ``(k, D)`` unit mean directions.
        inertia: ``sum(1 - cos(x_i, centroid of x_i))`` (0 = every point on its centre).
        n_iter: Lloyd iterations of the kept restart.
    """

    labels: np.ndarray
    centroids: np.ndarray
    inertia: float
    n_iter: int

    def predict(self, x: Any) -> np.ndarray:
        """``(M,)`` nearest centroid (highest cosine) of each row of ``x`` ``(M, D)``."""
        return nearest_centroid(x, self.centroids)[0]


def nearest_centroid(x: Any, centroids: Any) -> tuple[np.ndarray, np.ndarray]:
    """The spherical k-means assignment of new rows.

    Args:
        x: ``(M, D)`` rows (scaled to unit length here).
        centroids: ``(k, D)`` unit mean directions (:attr:`KMeansResult.centroids`).

    Returns:
        ``(labels (M,) int64, cosine (M,) of each row to its centroid, in [-1, 1])``.

    Raises:
        ValueError: bad rows, or centroids of another width.
    """
    x = unit_rows(x)
    centroids = np.asarray(centroids, dtype=np.float64)
    if centroids.ndim != 2 or centroids.shape[1] != x.shape[1]:
        raise ValueError(f"centroids of shape {centroids.shape} do not fit rows of {x.shape[1]}")
    cos = x @ centroids.T
    labels = np.argmax(cos, axis=1)
    return labels.astype(np.int64), np.clip(cos[np.arange(len(x)), labels], -1.0, 1.0)


def _kmeanspp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeds on the sphere: ``(k, D)`` rows of ``x``."""
    n = x.shape[0]
    chosen = [int(rng.integers(n))]
    dist = 1.0 - x @ x[chosen[0]]
    for _ in range(1, k):
        weights = np.clip(dist, 0.0, None)
        total = weights.sum()
        pick = int(rng.choice(n, p=weights / total)) if total > 0 else int(rng.integers(n))
        chosen.append(pick)
        dist = np.minimum(dist, 1.0 - x @ x[pick])
    return x[chosen].copy()


def _lloyd(
    x: np.ndarray, centroids: np.ndarray, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray, float, int]:
    previous, n_iter = np.inf, 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (returned)
        cos = x @ centroids.T
        labels = np.argmax(cos, axis=1)
        inertia = float(np.sum(1.0 - cos[np.arange(len(x)), labels]))
        # (k, N) one-hot @ (N, D): one product, much faster than np.add.at
        onehot = labels[None, :] == np.arange(len(centroids))[:, None]
        sums = onehot.astype(x.dtype) @ x
        norms = np.linalg.norm(sums, axis=1)
        empty = norms == 0
        if empty.any():
            # An empty cluster takes the points worst served by their centre.
            worst = np.argsort(cos[np.arange(len(x)), labels])[: int(empty.sum())]
            sums[empty], norms[empty] = x[worst], 1.0
        centroids = sums / norms[:, None]
        settled = np.isfinite(previous) and previous - inertia <= tol * max(previous, 1.0)
        if settled and not empty.any():
            break
        previous = inertia
    cos = x @ centroids.T
    labels = np.argmax(cos, axis=1)
    inertia = float(np.sum(1.0 - cos[np.arange(len(x)), labels]))
    return labels, centroids, inertia, n_iter


def spherical_kmeans(
    x: Any, k: int, *, n_init: int = 10, max_iter: int = 300, tol: float = 1e-7, seed: int = 0
) -> KMeansResult:
    """Cluster rows by cosine similarity.

    Args:
        x: ``(N, D)`` rows (scaled to unit length here).
        k: number of clusters, 1 <= k <= N.
        n_init: restarts from independent k-means++ seeds; the lowest inertia wins.
        max_iter: Lloyd iterations per restart.
        tol: stop when the inertia improves by less than this fraction.
        seed: seed of the k-means++ draws.

    Returns:
        :class:`KMeansResult`.

    Raises:
        ValueError: bad rows or k.
    """
    x = unit_rows(x)
    _check_k(k, x.shape[0])
    if n_init < 1:
        raise ValueError(f"n_init={n_init} must be >= 1")
    rng = np.random.default_rng(seed)
    best: KMeansResult | None = None
    for _ in range(n_init):
        labels, centroids, inertia, n_iter = _lloyd(x, _kmeanspp(x, k, rng), max_iter, tol)
        if best is None or inertia < best.inertia - 1e-12:
            best = KMeansResult(labels.astype(np.int64), centroids, inertia, n_iter)
    assert best is not None
    return best


# --------------------------------------------------------------------------- vMF mixture


def log_vmf_normalizer(kappa: Any, dim: int) -> np.ndarray:
    """``log C_d(kappa)`` of the vMF density ``C_d(kappa) exp(kappa mu.x)`` on the sphere S^(d-1).

    ``C_d(k) = k^(d/2-1) / ((2 pi)^(d/2) I_(d/2-1)(k))``. The Bessel function comes from
    :func:`scipy.special.ive` where it is representable, else from its uniform asymptotic
    (Debye) expansion, which is accurate to ``O(1/nu)`` for the large orders where ``ive``
    underflows.
    """
    shape = np.shape(kappa)
    kappa = np.maximum(np.atleast_1d(np.asarray(kappa, dtype=np.float64)), 1e-12)
    nu = dim / 2.0 - 1.0
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        log_bessel = np.log(ive(nu, kappa)) + kappa
    bad = ~np.isfinite(log_bessel)
    if np.any(bad):
        z = kappa[bad] / max(nu, 1e-12)
        root = np.sqrt(1.0 + z * z)
        eta = root + np.log(z / (1.0 + root))
        log_bessel[bad] = -0.5 * np.log(2 * np.pi * nu) + nu * eta - 0.5 * np.log(root)
    log_c = nu * np.log(kappa) - (dim / 2.0) * np.log(2 * np.pi) - log_bessel
    return log_c.reshape(shape)


@dataclass(frozen=True)
class VMFMixture:
    """A fitted mixture of von Mises-Fisher distributions.

    Attributes:
        weights: ``(k,)`` mixing proportions.
        means: ``(k, D)`` unit mean directions.
        kappas: ``(k,)`` concentrations (larger = tighter).
        responsibilities: ``(N, k)`` soft assignments of the fitted points (rows sum to 1).
        log_likelihood: total log-likelihood of the fitted points.
        bic: ``-2 LL + p log N`` with ``p = k D + k - 1`` free parameters.
        icl: ``bic + 2 * entropy of the responsibilities`` (penalises overlapping components).
        n_iter: EM iterations.
        converged: whether the log-likelihood settled within ``tol`` before ``max_iter``.
    """

    weights: np.ndarray
    means: np.ndarray
    kappas: np.ndarray
    responsibilities: np.ndarray
    log_likelihood: float
    bic: float
    icl: float
    n_iter: int
    converged: bool

    @property
    def k(self) -> int:
        return int(self.weights.size)

    @property
    def smallest_component(self) -> float:
        """Effective number of points (summed responsibility) of the smallest component."""
        return float(self.responsibilities.sum(axis=0).min())

    @property
    def labels(self) -> np.ndarray:
        """``(N,)`` hard assignment (most responsible component) of the fitted points."""
        return np.argmax(self.responsibilities, axis=1)

    def log_joint(self, x: Any) -> np.ndarray:
        """``(M, k)`` ``log weight_j + log vMF(x_i | mean_j, kappa_j)``."""
        return vmf_log_joint(x, self.weights, self.means, self.kappas)

    def predict_proba(self, x: Any) -> np.ndarray:
        """``(M, k)`` responsibilities of new rows."""
        joint = self.log_joint(x)
        return np.exp(joint - logsumexp(joint, axis=1, keepdims=True))

    def predict(self, x: Any) -> np.ndarray:
        """``(M,)`` most responsible component of each new row."""
        return np.argmax(self.log_joint(x), axis=1)


def vmf_log_joint(x: Any, weights: Any, means: Any, kappas: Any) -> np.ndarray:
    """``(M, k)`` ``log weight_j + log vMF(x_i | mean_j, kappa_j)`` of rows ``x`` ``(M, D)``
    (scaled to unit length here) under a mixture given by its parameters (``weights`` ``(k,)``,
    unit ``means`` ``(k, D)``, ``kappas`` ``(k,)``), e.g. one stored as JSON.

    Raises:
        ValueError: bad rows, or parameters whose shapes disagree.
    """
    x = unit_rows(x)
    weights = np.asarray(weights, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    kappas = np.asarray(kappas, dtype=np.float64)
    k = weights.size
    if means.shape != (k, x.shape[1]) or kappas.shape != (k,):
        raise ValueError(
            f"a {k}-component mixture of {x.shape[1]}-D rows needs means ({k}, {x.shape[1]}) "
            f"and kappas ({k},); got {means.shape} and {kappas.shape}"
        )
    log_c = log_vmf_normalizer(kappas, x.shape[1])
    with np.errstate(divide="ignore"):  # a component of weight 0 can never be chosen
        return np.log(weights) + log_c + (x @ means.T) * kappas


def vmf_posterior(x: Any, weights: Any, means: Any, kappas: Any) -> tuple[np.ndarray, np.ndarray]:
    """The vMF mixture's assignment of new rows: ``(labels (M,) int64, posterior (M,))``,
    the most responsible component of each row and its posterior probability in (0, 1]
    (see :func:`vmf_log_joint` for the arguments)."""
    joint = vmf_log_joint(x, weights, means, kappas)
    labels = np.argmax(joint, axis=1)
    posterior = np.exp(joint[np.arange(len(joint)), labels] - logsumexp(joint, axis=1))
    return labels.astype(np.int64), np.clip(posterior, 0.0, 1.0)


def _m_step(x: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, dim = x.shape
    mass = resp.sum(axis=0) + 1e-12
    weights = mass / n
    sums = resp.T @ x
    norms = np.linalg.norm(sums, axis=1)
    means = sums / np.maximum(norms, 1e-300)[:, None]
    rbar = np.clip(norms / mass, 1e-12, 1.0 - 1e-12)
    # Banerjee et al. (2005) approximation of the maximum-likelihood concentration.
    kappas = np.clip(rbar * (dim - rbar**2) / (1.0 - rbar**2), 1e-6, _KAPPA_MAX)
    return weights, means, kappas


def fit_vmf_mixture(
    x: Any, k: int, *, max_iter: int = 200, tol: float = 1e-6, n_init: int = 10, seed: int = 0
) -> VMFMixture:
    """Fit a k-component vMF mixture by EM, started from spherical k-means.

    Args:
        x: ``(N, D)`` rows (scaled to unit length here).
        k: components, 1 <= k <= N.
        max_iter: EM iterations at most.
        tol: stop when the mean log-likelihood per point changes by less than this.
        n_init: restarts of the k-means start.
        seed: seed of the k-means start.

    Returns:
        :class:`VMFMixture`.

    Raises:
        ValueError: bad rows or k.
    """
    x = unit_rows(x)
    n, dim = x.shape
    _check_k(k, n)
    start = spherical_kmeans(x, k, n_init=n_init, seed=seed)
    resp = np.zeros((n, k))
    resp[np.arange(n), start.labels] = 1.0
    previous, converged, n_iter = -np.inf, False, 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (reported)
        weights, means, kappas = _m_step(x, resp)
        joint = np.log(weights) + log_vmf_normalizer(kappas, dim) + (x @ means.T) * kappas
        per_point = logsumexp(joint, axis=1)
        resp = np.exp(joint - per_point[:, None])
        mean_ll = float(per_point.mean())
        if abs(mean_ll - previous) < tol:
            converged = True
            break
        previous = mean_ll
    log_likelihood = float(per_point.sum())
    n_params = k * dim + k - 1
    bic = -2.0 * log_likelihood + n_params * np.log(n)
    entropy = float(-np.sum(resp * np.log(np.clip(resp, 1e-300, None))))
    return VMFMixture(
        weights=weights,
        means=means,
        kappas=kappas,
        responsibilities=resp,
        log_likelihood=log_likelihood,
        bic=float(bic),
        icl=float(bic + 2.0 * entropy),
        n_iter=n_iter,
        converged=converged,
    )


def choose_k(
    x: Any,
    ks: Any = range(1, 11),
    *,
    criterion: str = "bic",
    seed: int = 0,
    n_init: int = 5,
    min_component: float = 3.0,
) -> tuple[int, dict[int, VMFMixture]]:
    """The number of vMF components with the lowest BIC (or ICL) among ``ks``.

    A component fitted to one or two points has an unbounded likelihood (its concentration
    grows without limit), which would win any criterion; fits whose smallest component holds
    fewer than ``min_component`` points are therefore not candidates (they stay in the
    returned dict, so callers can see them).

    Returns:
        ``(best_k, {k: fitted mixture})``; ``ks`` larger than N are skipped.

    Raises:
        ValueError: unknown criterion, or no usable k.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion={criterion!r} is not one of {CRITERIA}")
    x = unit_rows(x)
    fits = {
        int(k): fit_vmf_mixture(x, int(k), seed=seed, n_init=n_init)
        for k in ks
        if 1 <= int(k) <= x.shape[0]
    }
    usable = [k for k, fit in fits.items() if k == 1 or fit.smallest_component >= min_component]
    if not usable:
        raise ValueError(f"no k in {list(ks)} fits {x.shape[0]} points")
    best = min(usable, key=lambda k: getattr(fits[k], criterion))
    return best, fits
