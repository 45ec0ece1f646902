"""Splat meshing's pieces: Otsu's threshold splits two populations, Taubin smoothing keeps a
sphere's size where plain Laplacian steps would shrink it."""

from __future__ import annotations

import numpy as np
import pytest

from nodeloom.ops.splat_mesh import otsu_threshold, taubin_smooth

trimesh = pytest.importorskip("trimesh")


def test_otsu_splits_two_populations():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(1.0, 0.1, 500), rng.normal(3.0, 0.1, 500)])
    assert 1.4 < otsu_threshold(values) < 2.6
    assert otsu_threshold(np.full(4, 2.0)) == 2.0


def test_taubin_smooths_noise_without_shrinking():
    sphere = trimesh.creation.icosphere(3)
    rng = np.random.default_rng(0)
    noisy = sphere.vertices * (1 + rng.normal(0, 0.02, (len(sphere.vertices), 1)))
    smoothed = taubin_smooth(noisy, sphere.faces, 10)
    radius = np.linalg.norm(smoothed, axis=1)
    assert abs(radius.mean() - 1.0) < 0.02 and radius.std() < 0.5 * np.linalg.norm(noisy, axis=1).std()
    shrunk = taubin_smooth(noisy, sphere.faces, 10, lam=0.5, mu=0.0)  # plain Laplacian steps
    assert np.linalg.norm(shrunk, axis=1).mean() < radius.mean() - 0.01
    assert taubin_smooth(noisy, sphere.faces, 0) is noisy
