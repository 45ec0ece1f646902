"""Gaussian splats as node values (SPLAT) and their files.

Owns :class:`Splat` — a batch of 3D gaussians: ``positions`` [B, N, 3], ``scales`` [B, N, 3]
(standard deviations, linear), ``rotations`` [B, N, 4] (unit quaternions w, x, y, z),
``opacities`` [B, N] (0..1) and ``sh`` [B, N, K, 3] (spherical-harmonics colour coefficients,
K = (degree + 1)², the DC term first), zero-padded across a batch with the true sizes in
``counts`` — and the writers for the standard 3D Gaussian Splatting PLY (full SH; log scales and
logit opacities as that format stores them) and Niantic's SPZ (version 2, gzip-compressed,
quantised). numpy and torch only; no nodes.
"""

from __future__ import annotations

import gzip
import math
import struct
from dataclasses import dataclass

import numpy as np
import torch

from nodeloom.errors import ValidationError

__all__ = ["SH_C0", "Splat", "splat_item", "to_ply", "to_spz"]

#: the degree-0 spherical-harmonic constant: colour = 0.5 + SH_C0 × DC coefficient
SH_C0 = 0.28209479177387814


@dataclass(frozen=True)
class Splat:
    """A batch of gaussian splats (see the module docstring for the fields)."""

    positions: torch.Tensor
    scales: torch.Tensor
    rotations: torch.Tensor
    opacities: torch.Tensor
    sh: torch.Tensor
    counts: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        p = self.positions
        if p.ndim != 3 or p.shape[-1] != 3:
            raise ValidationError(f"splat `positions` must be shaped [B, N, 3], got {tuple(p.shape)}")
        b, n = p.shape[:2]
        for name, shape in (("scales", (b, n, 3)), ("rotations", (b, n, 4)), ("opacities", (b, n))):
            if tuple(getattr(self, name).shape) != shape:
                raise ValidationError(f"splat `{name}` must be shaped {list(shape)}, got "
                                      f"{tuple(getattr(self, name).shape)}")
        k = self.sh.shape[2] if self.sh.ndim == 4 else 0
        if self.sh.ndim != 4 or tuple(self.sh.shape[:2]) != (b, n) or self.sh.shape[-1] != 3 \
                or math.isqrt(k) ** 2 != k or k == 0:
            raise ValidationError(f"splat `sh` must be shaped [B, N, K, 3] with K a square ((degree + 1)²), got "
                                  f"{tuple(self.sh.shape)}")

    @property
    def batch_size(self) -> int:
        return int(self.positions.shape[0])

    @property
    def sh_degree(self) -> int:
        return math.isqrt(int(self.sh.shape[2])) - 1

    def count(self, index: int) -> int:
        """The real number of gaussians in item ``index``."""
        return self.counts[index] if self.counts is not None else int(self.positions.shape[1])


def splat_item(splat: Splat, index: int) -> dict[str, np.ndarray]:
    """Item ``index`` without padding, as float64 numpy arrays keyed by field name."""
    n = splat.count(index)
    return {name: getattr(splat, name)[index, :n].detach().double().cpu().numpy()
            for name in ("positions", "scales", "rotations", "opacities", "sh")}


def _unit_quaternions(q: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(norm > 1e-12, q / np.maximum(norm, 1e-12), np.array([1.0, 0.0, 0.0, 0.0]))


def to_ply(splat: Splat, index: int = 0) -> bytes:
    """Item ``index`` as a binary 3D Gaussian Splatting PLY: x y z, nx ny nz (zeros), f_dc_0..2,
    f_rest_* (per colour channel, then coefficient), opacity (logit), scale_0..2 (log), rot_0..3
    (w x y z), all float32."""
    item = splat_item(splat, index)
    n, k = item["positions"].shape[0], item["sh"].shape[1]
    rest = item["sh"][:, 1:, :].transpose(0, 2, 1).reshape(n, -1)  # channel-major, as 3DGS writes it
    alpha = np.clip(item["opacities"], 1e-6, 1 - 1e-6)
    columns = [item["positions"], np.zeros((n, 3)), item["sh"][:, 0, :], rest,
               np.log(alpha / (1 - alpha))[:, None], np.log(np.maximum(item["scales"], 1e-12)),
               _unit_quaternions(item["rotations"])]
    names = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
             + [f"f_rest_{i}" for i in range(3 * (k - 1))] + ["opacity", "scale_0", "scale_1", "scale_2"]
             + [f"rot_{i}" for i in range(4)])
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {n}\n"
    header += "".join(f"property float {name}\n" for name in names) + "end_header\n"
    return header.encode("ascii") + np.concatenate(columns, axis=1).astype("<f4").tobytes()


#: SPZ's fixed-point position bits and colour scale (Niantic's format, version 2)
_SPZ_MAGIC, _SPZ_VERSION, _SPZ_FRACTIONAL_BITS, _SPZ_COLOR_SCALE = 0x5053474E, 2, 12, 0.15


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def to_spz(splat: Splat, index: int = 0) -> bytes:
    """Item ``index`` as SPZ (version 2): a 16-byte header (magic, version, count, SH degree,
    fractional bits, flags), then positions as 24-bit fixed point, opacities, DC colours, log
    scales and quaternion x y z (w ≥ 0) as bytes, and higher SH coefficients quantised to bytes
    (per gaussian, coefficient, channel), the whole gzip-compressed. The base colour is exact to a
    byte; the degree-1 SH terms keep 5 bits, higher degrees 4."""
    item = splat_item(splat, index)
    n, degree = item["positions"].shape[0], splat.sh_degree
    fixed = np.round(item["positions"] * (1 << _SPZ_FRACTIONAL_BITS)).astype(np.int64)
    if np.abs(fixed).max(initial=0) >= 1 << 23:
        raise ValidationError(f"the splat spans more than ±{(1 << 23) >> _SPZ_FRACTIONAL_BITS} units, which SPZ's "
                              "24-bit positions cannot hold; use ply")
    positions = (fixed & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(n, 3, 4)[..., :3].reshape(-1)
    alphas = _to_u8(item["opacities"] * 255.0)
    colors = _to_u8((item["sh"][:, 0, :] * _SPZ_COLOR_SCALE + 0.5) * 255.0)
    scales = _to_u8((np.log(np.maximum(item["scales"], 1e-12)) + 10.0) * 16.0)
    q = _unit_quaternions(item["rotations"])
    q = np.where(q[:, :1] < 0, -q, q)
    rotations = _to_u8(q[:, 1:] * 127.5 + 127.5)
    higher = item["sh"][:, 1:, :]  # [N, K-1, 3]
    step = np.array([8 if i < 3 else 16 for i in range(higher.shape[1])], dtype=np.float64)[None, :, None]
    sh = np.clip(np.round((higher * 128.0 + 128.0) / step) * step, 0, 255).astype(np.uint8) if higher.size else \
        np.zeros((n, 0, 3), np.uint8)
    header = struct.pack("<IIIBBBB", _SPZ_MAGIC, _SPZ_VERSION, n, degree, _SPZ_FRACTIONAL_BITS, 0, 0)
    body = b"".join(a.tobytes() for a in (positions, alphas, colors, scales, rotations, sh))
    return gzip.compress(header + body, mtime=0)
