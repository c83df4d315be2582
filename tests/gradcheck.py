"""Gradient checks by central differences along random directions: for a
loss L and its claimed gradient G at x, (L(x + e*d) - L(x - e*d)) / 2e must
equal <G, d>. A few directions catch a wrong element as surely as a full
per-element difference (any error has a component along a random d) at a
fraction of its cost."""
import numpy as np


def assert_directional(loss, x, grad, seed=0, count=4, eps=1e-6, atol=1e-7, rtol=1e-6):
    rng = np.random.default_rng(seed)
    x = np.asarray(x, np.float64)
    for _ in range(count):
        d = rng.standard_normal(x.shape)
        numeric = (loss(x + eps * d) - loss(x - eps * d)) / (2 * eps)
        claimed = float(np.sum(np.asarray(grad, np.float64) * d))
        assert abs(numeric - claimed) <= atol + rtol * abs(claimed), (numeric, claimed)
