"""Winograd F(4x4, 3x3) convolution (Lavin & Gray, CVPR 2016) in the layout the RRDB blocks need.

A 3x3 convolution (stride 1, padding 1) over 6x6 input tiles taken every 4 pixels: each tile is
transformed (``B^T d B``), multiplied element-wise with the transformed kernel (``G g G^T``) and
summed over input channels, which for 36 tile positions is 36 matrix products, then transformed
back (``A^T m A``) to a 4x4 output block. 36 multiplications per output block instead of 144: on a
CPU, where direct fp32 convolution already runs at the core's matrix-multiply peak, this is the
only way to make the auto-encoder's fp32 passes cheaper without reducing precision. The transforms
are exact in float64 (tests compare with ``F.conv2d`` to 1e-12); in fp32 the result differs from a
direct convolution by ~1e-5 of the output's range, which moves AESOP's loss by ~1e-6 of its value.

Layouts: images are NHWC ``(N, H, W, C)``, ``H`` and ``W`` multiples of 4; the Winograd domain is
``(36, T, C)`` with ``T = N * H/4 * W/4`` tiles, so that channel concatenation is a slice of the
last dimension and every layer's product is one ``bmm``. Each transform has its adjoint here, so
that backward (the gradient with respect to the input; the weights are frozen) costs what forward does.
"""
import functools
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

_BT = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
       (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
_G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
      (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))
_AT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))
TILE, BLOCK = 6, 4  # input tile and output block sizes

@functools.lru_cache(maxsize=None)
def _transform_matrices(dtype: torch.dtype, device: torch.device) -> Tuple[Tensor, Tensor]:
    """(B^T (6x6), A^T (4x6)) in ``dtype`` on ``device``."""
    return torch.tensor(_BT, dtype=dtype, device=device), torch.tensor(_AT, dtype=dtype, device=device)


@functools.lru_cache(maxsize=None)
def _kernel_matrix(dtype: torch.dtype, device: torch.device) -> Tensor:
    """``G (x) G`` (36x9), formed in float64, in ``dtype`` on ``device``."""
    g = torch.tensor(_G, dtype=torch.float64)
    return torch.kron(g, g).to(dtype=dtype, device=device)


def supports_winograd(height: int, width: int) -> bool:
    """Whether an image of this size tiles into 4x4 output blocks."""
    return height % BLOCK == 0 and width % BLOCK == 0 and height >= BLOCK and width >= BLOCK


def transform_weight(weight: Tensor) -> Tensor:
    """``G g G^T`` of a ``(C_out, C_in, 3, 3)`` kernel -> ``(36, C_in, C_out)``, in the weight's dtype.

    One matrix product with ``G (x) G`` (36x9): cheap next to the convolution, so a caller may
    recompute it rather than keep it (the transformed kernels are 4x the size of the weights).
    """
    if weight.shape[-2:] != (3, 3):
        raise ValueError(f'Winograd F(4x4, 3x3) needs 3x3 kernels, not {tuple(weight.shape)}.')
    c_out, c_in = weight.shape[:2]
    taps = weight.detach().permute(2, 3, 1, 0).reshape(9, c_in * c_out)  # (3, 3, C_in, C_out)
    return (_kernel_matrix(weight.dtype, weight.device) @ taps).view(TILE * TILE, c_in, c_out)


def input_transform(x: Tensor, out: Tensor) -> None:
    """``B^T d B`` of every 6x6 tile of the zero-padded NHWC ``x``, written into ``out`` ``(36, T, C)``."""
    n, h, w, c = x.shape
    bt, _ = _transform_matrices(x.dtype, x.device)
    tiles = F.pad(x, (0, 0, 1, 1, 1, 1)).unfold(1, TILE, BLOCK).unfold(2, TILE, BLOCK)  # (N, H/4, W/4, C, 6, 6)
    tiles = tiles.permute(4, 5, 0, 1, 2, 3).reshape(TILE, -1)  # rows i, then (j, tiles, channels)
    rows = (bt @ tiles).view(TILE, TILE, -1)  # B^T along i
    out.copy_(torch.matmul(bt, rows).view(TILE * TILE, -1, c))  # ... and along j


def input_transform_adjoint(grad: Tensor, n: int, h: int, w: int) -> Tensor:
    """The adjoint of :func:`input_transform`: ``(36, T, C)`` -> NHWC gradient of ``x`` (tiles overlap-added)."""
    c = grad.shape[-1]
    bt, _ = _transform_matrices(grad.dtype, grad.device)
    th, tw = h // BLOCK, w // BLOCK
    rows = torch.matmul(bt.t(), grad.reshape(TILE, TILE, -1))  # B along j
    tiles = (bt.t() @ rows.view(TILE, -1)).view(TILE, TILE, n, th, tw, c)  # ... and along i
    # tile (ty, i) covers padded row 4 ty + i: rows i < 4 fall in block ty, rows 4, 5 in block ty + 1
    padded = grad.new_zeros(n, th + 1, BLOCK, tw + 1, BLOCK, c)
    for rows_in, blocks_y, rows_out in ((slice(0, 4), slice(0, th), slice(0, 4)),
                                        (slice(4, 6), slice(1, th + 1), slice(0, 2))):
        for cols_in, blocks_x, cols_out in ((slice(0, 4), slice(0, tw), slice(0, 4)),
                                            (slice(4, 6), slice(1, tw + 1), slice(0, 2))):
            padded[:, blocks_y, rows_out, blocks_x, cols_out] += tiles[rows_in, cols_in].permute(2, 3, 0, 4, 1, 5)
    return padded.view(n, BLOCK * (th + 1), BLOCK * (tw + 1), c)[:, 1:h + 1, 1:w + 1]


def output_transform(m: Tensor, n: int, h: int, w: int) -> Tensor:
    """``A^T m A``: ``(36, T, C)`` products -> the NHWC convolution output ``(N, H, W, C)`` (no bias)."""
    c = m.shape[-1]
    _, at = _transform_matrices(m.dtype, m.device)
    rows = torch.matmul(at, m.view(TILE, TILE, -1))  # A^T along j: (6, 4, T C)
    blocks = (at @ rows.view(TILE, -1)).view(BLOCK, BLOCK, n, h // BLOCK, w // BLOCK, c)
    return blocks.permute(2, 3, 0, 4, 1, 5).reshape(n, h, w, c)


def output_transform_adjoint(grad: Tensor) -> Tensor:
    """The adjoint of :func:`output_transform`: NHWC ``(N, H, W, C)`` -> ``(36, T, C)``."""
    n, h, w, c = grad.shape
    _, at = _transform_matrices(grad.dtype, grad.device)
    blocks = grad.reshape(n, h // BLOCK, BLOCK, w // BLOCK, BLOCK, c).permute(2, 4, 0, 1, 3, 5)
    rows = (at.t() @ blocks.reshape(BLOCK, -1)).view(TILE, BLOCK, -1)  # A along i
    return torch.matmul(at.t(), rows).view(TILE * TILE, -1, c)  # ... and along j
