"""CIELAB colour differences: ΔE76, ΔE94, CMC l:c and CIEDE2000.

All take two ``[..., 3]`` L*a*b* arrays (numpy or torch, broadcastable) and return ``[...]``
in the kind of the first. ``precision="exact"`` computes in float64; ``"fast"`` in float32,
in cache-sized chunks, with the few ill-conditioned CIEDE2000 pairs (near-zero chroma, hues
about 180° apart, where the formula has jumps) recomputed in float64 so the Sharma, Wu &
Dalal (2005) test data holds on both paths. CIE94 and CMC are asymmetric: ``lab1`` is the
reference. Re-exported by :mod:`nodeloom.ops.color`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from nodeloom.errors import ValidationError
from nodeloom.ops._arrays import Array, as_tensor, check_channels, like

__all__ = ["delta_e_2000", "delta_e_76", "delta_e_94", "delta_e_cmc"]

_CIE94 = {"graphic_arts": (1.0, 0.045, 0.015), "textiles": (2.0, 0.048, 0.014)}
_DEG = math.pi / 180.0
_TWO_PI = 2.0 * math.pi
_POW25_7 = 25.0**7
# cos/sin of the phase offsets in CIEDE2000's T(h̄) term.
_C30, _S30 = math.cos(30 * _DEG), math.sin(30 * _DEG)
_C6, _S6 = math.cos(6 * _DEG), math.sin(6 * _DEG)
_C63, _S63 = math.cos(63 * _DEG), math.sin(63 * _DEG)
_CHUNK = 1 << 14


def _pair(lab1: Array, lab2: Array, precision: str | None, device: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    check_channels("lab1", lab1)
    check_channels("lab2", lab2)
    a = as_tensor(lab1, precision, device)
    b = as_tensor(lab2, precision, device).to(a.dtype)
    try:
        a, b = torch.broadcast_tensors(a, b)
    except RuntimeError as exc:
        raise ValidationError(
            f"`lab1` {tuple(a.shape)} and `lab2` {tuple(b.shape)} do not broadcast to one shape"
        ) from exc
    return a, b


def delta_e_76(lab1: Array, lab2: Array, precision: str | None = None, device: str | None = None) -> Array:
    """CIE 1976 ΔE*ab: the Euclidean distance in CIELAB.

    Args:
        lab1, lab2: ``[..., 3]`` L*a*b* (broadcastable).
        precision: ``None`` (input dtype), ``"exact"`` or ``"fast"``.
        device: ``None``, ``"auto"`` or a torch device.

    Returns:
        ΔE, shape ``[...]``.

    Raises:
        ValidationError: bad shapes.
    """
    a, b = _pair(lab1, lab2, precision, device)
    return like(torch.linalg.vector_norm(a - b, dim=-1), lab1)


def _chroma_hue_terms(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    L1, a1, b1 = a.unbind(-1)
    L2, a2, b2 = b.unbind(-1)
    c1 = torch.hypot(a1, b1)
    c2 = torch.hypot(a2, b2)
    dh2 = ((a1 - a2) ** 2 + (b1 - b2) ** 2 - (c1 - c2) ** 2).clamp(min=0.0)
    return L1 - L2, c1, c1 - c2, dh2, a1, b1


def delta_e_94(
    lab1: Array,
    lab2: Array,
    application: str = "graphic_arts",
    precision: str | None = None,
    device: str | None = None,
) -> Array:
    """CIE 1994 ΔE*94; ``lab1`` is the reference (the weights use its chroma).

    Args:
        lab1: reference ``[..., 3]`` L*a*b*.
        lab2: sample ``[..., 3]`` L*a*b*.
        application: ``"graphic_arts"`` (kL=1, K1=0.045, K2=0.015) or ``"textiles"``
            (kL=2, K1=0.048, K2=0.014).

    Returns:
        ΔE94, shape ``[...]``.

    Raises:
        ValidationError: unknown application or bad shapes.
    """
    if application not in _CIE94:
        raise ValidationError(f"`application` must be one of {list(_CIE94)}, got {application!r}")
    kl, k1, k2 = _CIE94[application]
    a, b = _pair(lab1, lab2, precision, device)
    dl, c1, dc, dh2, _, _ = _chroma_hue_terms(a, b)
    sc = 1.0 + k1 * c1
    sh = 1.0 + k2 * c1
    out = torch.sqrt((dl / kl) ** 2 + (dc / sc) ** 2 + dh2 / (sh * sh))
    return like(out, lab1)


def delta_e_cmc(
    lab1: Array,
    lab2: Array,
    l: float = 2.0,  # noqa: E741 - the standard's name
    c: float = 1.0,
    precision: str | None = None,
    device: str | None = None,
) -> Array:
    """CMC l:c (1984) colour difference; ``lab1`` is the reference.

    Args:
        lab1: reference ``[..., 3]`` L*a*b*.
        lab2: sample ``[..., 3]`` L*a*b*.
        l: lightness weight (2 for acceptability, 1 for perceptibility).
        c: chroma weight (usually 1).

    Returns:
        ΔE_CMC, shape ``[...]``.

    Raises:
        ValidationError: non-positive weights or bad shapes.
    """
    if l <= 0 or c <= 0:
        raise ValidationError(f"`l` and `c` must be > 0, got l={l}, c={c}")
    a, b = _pair(lab1, lab2, precision, device)
    dl, c1, dc, dh2, a1, b1 = _chroma_hue_terms(a, b)
    L1 = a[..., 0]
    h1 = torch.remainder(torch.atan2(b1, a1), _TWO_PI)
    in_band = (h1 >= 164 * _DEG) & (h1 <= 345 * _DEG)
    t = torch.where(
        in_band,
        0.56 + (0.2 * torch.cos(h1 + 168 * _DEG)).abs(),
        0.36 + (0.4 * torch.cos(h1 + 35 * _DEG)).abs(),
    )
    c4 = c1**4
    f = torch.sqrt(c4 / (c4 + 1900.0))
    sl = torch.where(L1 < 16.0, torch.full_like(L1, 0.511), 0.040975 * L1 / (1.0 + 0.01765 * L1))
    sc = 0.0638 * c1 / (1.0 + 0.0131 * c1) + 0.638
    sh = sc * (f * t + 1.0 - f)
    out = torch.sqrt((dl / (l * sl)) ** 2 + (dc / (c * sc)) ** 2 + dh2 / (sh * sh))
    return like(out, lab1)


def _hue_weight(hbar: torch.Tensor) -> torch.Tensor:
    """CIEDE2000's T(h̄′) from one cos and one sin, by the multiple-angle identities."""
    ch, sh = torch.cos(hbar), torch.sin(hbar)
    c2h = 2.0 * ch * ch - 1.0
    s2h = 2.0 * sh * ch
    c3h = ch * (2.0 * c2h - 1.0)
    s3h = sh * (2.0 * c2h + 1.0)
    c4h = 2.0 * c2h * c2h - 1.0
    s4h = 2.0 * s2h * c2h
    return (
        1.0
        - 0.17 * (ch * _C30 + sh * _S30)
        + 0.24 * c2h
        + 0.32 * (c3h * _C6 - s3h * _S6)
        - 0.20 * (c4h * _C63 + s4h * _S63)
    )


def _ciede2000_block(
    lab1: torch.Tensor, lab2: torch.Tensor, kl: float, kc: float, kh: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """CIEDE2000 for ``[N, 3]`` blocks; also returns a mask of ill-conditioned pairs."""
    L1, a1, b1 = lab1.unbind(-1)
    L2, a2, b2 = lab2.unbind(-1)
    cbar = (torch.hypot(a1, b1) + torch.hypot(a2, b2)) * 0.5
    c7 = cbar * cbar
    c7 = c7 * c7 * c7 * cbar
    g1 = 1.5 - 0.5 * torch.sqrt(c7 / (c7 + _POW25_7))  # 1 + G
    a1p = a1 * g1
    a2p = a2 * g1
    c1p = torch.hypot(a1p, b1)
    c2p = torch.hypot(a2p, b2)
    prod = c1p * c2p
    # Hue difference from the two (a', b) vectors directly: atan2(cross, dot) is the wrapped
    # Δh' in (-π, π] with no cancellation of large absolute angles.
    cross = a1p * b2 - b1 * a2p
    dot = a1p * a2p + b1 * b2
    dh = torch.atan2(cross, dot)
    # h̄' per the standard: hue of the first vector (of the second when C1' = 0, which also
    # covers the "C1'·C2' = 0 → h̄' = h1' + h2'" rule), moved half-way along Δh'.
    first = c1p > 0
    h1 = torch.atan2(torch.where(first, b1, b2), torch.where(first, a1p, a2p))
    h1 = torch.where(h1 < 0, h1 + _TWO_PI, h1)
    opposite = (cross == 0) & (dot < 0)  # exactly 180° apart: the sign follows h2' − h1'
    half_turn = torch.full_like(h1, math.pi)  # a tensor: two bare floats would make float32
    dh = torch.where(opposite, torch.where(h1 < math.pi, half_turn, -half_turn), dh)
    hbar = h1 + dh * 0.5
    hbar = torch.where(hbar < 0, hbar + _TWO_PI, torch.where(hbar >= _TWO_PI, hbar - _TWO_PI, hbar))
    dHp = 2.0 * torch.sqrt(prod) * torch.sin(dh * 0.5)
    t = _hue_weight(hbar)
    cbarp = (c1p + c2p) * 0.5
    cp7 = cbarp * cbarp
    cp7 = cp7 * cp7 * cp7 * cbarp
    rc = 2.0 * torch.sqrt(cp7 / (cp7 + _POW25_7))
    z = (hbar * (1.0 / _DEG) - 275.0) * (1.0 / 25.0)
    rt = -torch.sin((60.0 * _DEG) * torch.exp(-z * z)) * rc
    lbar = (L1 + L2) * 0.5 - 50.0
    l2 = lbar * lbar
    sl = 1.0 + 0.015 * l2 / torch.sqrt(20.0 + l2)
    tl = (L2 - L1) / (kl * sl)
    tc = (c2p - c1p) / (kc * (1.0 + 0.045 * cbarp))
    th = dHp / (kh * (1.0 + 0.015 * cbarp * t))
    de = torch.sqrt((tl * tl + tc * tc + th * th + rt * tc * th).clamp(min=0.0))
    # Pairs near a jump of the formula: tiny chroma or hues within ~0.01° of 180° apart.
    shaky = (prod < 1e-6) | ((math.pi - dh.abs()) < 2e-4)
    return de, shaky


def delta_e_2000(
    lab1: Array,
    lab2: Array,
    kl: float = 1.0,
    kc: float = 1.0,
    kh: float = 1.0,
    precision: str | None = None,
    device: str | None = None,
) -> Array:
    """CIEDE2000 colour difference (CIE 142-2001), symmetric in its arguments.

    Follows Sharma, Wu & Dalal (2005): the mean hue wraps at 180°, R_C uses the mean of the
    adjusted chromas C̄′, G uses the mean of the original chromas C̄, and ``C1′·C2′ = 0``
    is a product test. Reproduces all 34 published pairs to 1e-4 on both precisions.

    Args:
        lab1, lab2: ``[..., 3]`` L*a*b* (broadcastable).
        kl, kc, kh: parametric weights (1 for reference conditions).
        precision: ``None`` (input dtype), ``"exact"`` (float64) or ``"fast"`` (float32,
            ill-conditioned pairs redone in float64).
        device: ``None``, ``"auto"`` (CUDA when present) or a torch device.

    Returns:
        ΔE00, shape ``[...]``, in the array kind of ``lab1``.

    Raises:
        ValidationError: bad shapes or non-positive weights.
    """
    if min(kl, kc, kh) <= 0:
        raise ValidationError(f"`kl`, `kc`, `kh` must be > 0, got {kl}, {kc}, {kh}")
    a, b = _pair(lab1, lab2, precision, device)
    shape = a.shape[:-1]
    fa, fb = a.reshape(-1, 3), b.reshape(-1, 3)
    out = torch.empty(fa.shape[0], dtype=a.dtype, device=a.device)

    def block(start: int, stop: int) -> None:
        de, shaky = _ciede2000_block(fa[start:stop], fb[start:stop], kl, kc, kh)
        if a.dtype != torch.float64 and bool(shaky.any()):
            idx = shaky.nonzero().squeeze(1) + start
            redo, _ = _ciede2000_block(fa[idx].double(), fb[idx].double(), kl, kc, kh)
            de[idx - start] = redo.to(de.dtype)
        out[start:stop] = de

    _run_chunked(block, fa.shape[0], a.device)
    return like(out.reshape(shape), lab1)


def _run_chunked(block: Callable[[int, int], None], n: int, device: torch.device) -> None:
    """Run ``block(start, stop)`` over ``range(n)``.

    On CPU the chunks are small enough that each torch op stays single-threaded (below
    torch's parallel grain), so temporaries stay in cache and no OpenMP barrier is hit per
    op (barriers stall badly when cores are shared); chunks spread over a few Python
    threads instead (torch releases the GIL). Other devices take one block.
    """
    if device.type != "cpu" or n <= _CHUNK:
        if n:
            block(0, n)
        return
    starts = range(0, n, _CHUNK)
    workers = max(1, min(torch.get_num_threads(), len(starts), 8))
    if workers == 1:
        for s in starts:
            block(s, min(s + _CHUNK, n))
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for f in [pool.submit(block, s, min(s + _CHUNK, n)) for s in starts]:
            f.result()
