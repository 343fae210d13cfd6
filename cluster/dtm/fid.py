"""Classifier-FID: the Frechet distance between Gaussians fitted to two image sets in the feature
space of a fixed classifier, a scikit-learn MLP's hidden layer (ReLU), trained once on the
training images (their labels; without labels an autoencoder's hidden layer) and cached in the
workdir. Reported beside a floor (held-out against training images) and a ceiling (uniform noise
against held-out images) of the same sizes."""

from __future__ import annotations

import hashlib
import pathlib
import warnings

import numpy as np
from scipy import linalg

CACHE = "classifier.npz"


class Features:
    """The hidden layer of a trained MLP as a feature map, and its class prediction.

    **Arguments:**

    - `w1`, `b1`: the hidden layer's weights `[pixels, hidden]` and biases.
    - `w2`, `b2`: the output layer's (None for an autoencoder: no classes).
    """

    def __init__(self, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray | None, b2: np.ndarray | None):
        self.w1, self.b1, self.w2, self.b2 = w1, b1, w2, b2

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """`[N, hidden]` features of binary images `[N, pixels]`."""
        return np.maximum(np.asarray(images, np.float64) @ self.w1 + self.b1, 0.0)

    def classes(self, images: np.ndarray) -> np.ndarray | None:
        """The predicted class of every image, or None without a classifier."""
        if self.w2 is None:
            return None
        return np.argmax(self(images) @ self.w2 + self.b2, axis=1)


def _fingerprint(train: np.ndarray, labels: np.ndarray | None, hidden: int, seed: int) -> str:
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(train), np.ascontiguousarray(labels if labels is not None else np.zeros(0))):
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    h.update(f"{hidden},{seed}".encode())
    return h.hexdigest()


def feature_map(train: np.ndarray, labels: np.ndarray | None, hidden: int, seed: int,
                cache: pathlib.Path | None = None) -> Features:
    """Train (or read from `cache`, when it was trained on the same data and settings) the MLP.

    **Arguments:**

    - `train`: bool `[N, pixels]` training images.
    - `labels`: their classes, or None (an autoencoder is trained instead).
    - `hidden`: hidden units.
    - `seed`: the MLP's random state.
    - `cache`: the npz file to read or write (None: no cache).
    """
    key = _fingerprint(train, labels, hidden, seed)
    if cache is not None and cache.is_file():
        try:
            with np.load(cache) as f:
                if str(f["fingerprint"]) == key:
                    w2 = f["w2"] if f["w2"].size else None
                    b2 = f["b2"] if f["b2"].size else None
                    return Features(f["w1"], f["b1"], w2, b2)
        except (OSError, ValueError, KeyError):
            pass  # unreadable or stale: train again and overwrite
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    x = train.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if labels is not None:
            net = MLPClassifier((hidden,), max_iter=400, random_state=seed).fit(x, labels)
            out = (net.coefs_[1], net.intercepts_[1])
        else:
            net = MLPRegressor((hidden,), max_iter=400, random_state=seed).fit(x, x)
            out = (None, None)
    features = Features(net.coefs_[0], net.intercepts_[0], *out)
    if cache is not None:
        tmp = cache.with_name(cache.name + ".tmp.npz")
        empty = np.zeros(0)
        np.savez(tmp, fingerprint=key, w1=features.w1, b1=features.b1,
                 w2=empty if out[0] is None else out[0], b2=empty if out[1] is None else out[1])
        tmp.replace(cache)
    return features


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of the Gaussians fitted to feature
    sets `[N, d]` and `[M, d]` (N, M >= 2).

    **Arguments:**

    - `a`, `b`: the two feature sets.
    """
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():
        # dead ReLU units have no variance: a singular product, whose square root is still fine
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(s_a @ s_b)
        if not np.all(np.isfinite(root)):  # as pytorch-fid: a small offset on the diagonal
            offset = np.eye(len(s_a)) * 1e-6
            root = linalg.sqrtm((s_a + offset) @ (s_b + offset))
    if np.iscomplexobj(root):
        root = root.real  # numerical noise of a product of two PSD matrices
    return float(max(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2.0 * root), 0.0))


def reference_sets(train: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n training images, n uniform-noise images), fixed by `seed`: the floor's and the
    ceiling's sets, as large as the generated set.

    **Arguments:**

    - `train`: the training images.
    - `n`: how many of each.
    - `seed`: the draw's seed.
    """
    rng = np.random.default_rng([seed, 1])
    pick = rng.choice(len(train), n, replace=n > len(train))
    return train[pick], rng.random((n, train.shape[1])) < 0.5
