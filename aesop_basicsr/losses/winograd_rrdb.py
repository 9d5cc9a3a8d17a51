"""BasicSR's RRDB (ESRGAN's residual-in-residual dense block) with Winograd convolutions, for frozen weights.

The dense block's five convolutions share their inputs (each takes the concatenation of the block
input and all earlier outputs), so every feature map is transformed into the Winograd domain once
and concatenated there; each convolution is then one batched matrix product on a slice of that
buffer. Backward computes the gradient with respect to the input only (the auto-encoder is frozen)
by the same steps in reverse, keeping one byte per activation (the LeakyReLU masks) from forward.
Measured by ``scripts/benchmark_aesop_loss.py``: an RRDB 1.4-1.6x faster than direct fp32 convolution, the loss
1.28x (on one CPU core); values within ~1e-5 of the direct result (see :mod:`.winograd`).
"""
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from basicsr.archs.rrdbnet_arch import RRDB, ResidualDenseBlock
from torch import Tensor, nn

from aesop_basicsr.losses.difference_path import RDB_SCALE  # BasicSR's 0.2 residual scale
from aesop_basicsr.losses.winograd import (BLOCK, TILE, input_transform, input_transform_adjoint, output_transform,
                                           output_transform_adjoint, supports_winograd, transform_weight)


class WinogradDenseBlock(torch.autograd.Function):
    """``ResidualDenseBlock.forward`` on an NHWC tensor, with the gradient for the input only."""

    @staticmethod
    def forward(ctx, x: Tensor, block: ResidualDenseBlock, kernels: 'WinogradKernels') -> Tensor:
        n, h, w, c_in = x.shape
        convs = (block.conv1, block.conv2, block.conv3, block.conv4, block.conv5)
        slope = block.lrelu.negative_slope
        growth = block.conv1.out_channels
        tiles = n * (h // BLOCK) * (w // BLOCK)
        buffer = x.new_empty(TILE * TILE, tiles, c_in + 4 * growth)  # the concatenation, in the Winograd domain
        input_transform(x, buffer[..., :c_in])
        masks = []
        width = c_in
        for conv in convs[:4]:
            pre = output_transform(torch.bmm(buffer[..., :width], kernels(conv, x.dtype)), n, h, w)
            pre.add_(bias(conv, x))
            masks.append(pre > 0)
            input_transform(F.leaky_relu_(pre, slope), buffer[..., width:width + growth])
            width += growth
        out = output_transform(torch.bmm(buffer, kernels(convs[4], x.dtype)), n, h, w).add_(bias(convs[4], x))
        ctx.save_for_backward(*masks)
        ctx.convs, ctx.kernels, ctx.slope, ctx.shape = convs, kernels, slope, (n, h, w, c_in)
        return out.mul_(RDB_SCALE).add_(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        masks = ctx.saved_tensors
        convs, kernels, slope, (n, h, w, c_in) = ctx.convs, ctx.kernels, ctx.slope, ctx.shape
        growth = convs[0].out_channels
        grad = grad.contiguous()

        def transposed_kernel(conv: nn.Conv2d) -> Tensor:
            return kernels(conv, grad.dtype).transpose(1, 2)

        # out = 0.2 conv5(concat) + x; the concatenation's gradient is kept in the Winograd domain
        concat_grad = torch.bmm(output_transform_adjoint(grad * RDB_SCALE), transposed_kernel(convs[4]))
        for k in range(3, -1, -1):
            start = c_in + k * growth
            act_grad = input_transform_adjoint(concat_grad[..., start:start + growth], n, h, w)
            pre_grad = torch.where(masks[k], act_grad, act_grad * slope)
            concat_grad[..., :start] += torch.bmm(output_transform_adjoint(pre_grad), transposed_kernel(convs[k]))
        return grad + input_transform_adjoint(concat_grad[..., :c_in], n, h, w), None, None


class WinogradKernels:
    """Winograd-domain kernels of the convolutions, kept (``cache``) or recomputed at each use.

    Kept, they cost 4x the weights' memory (290 MB for the paper's auto-encoder) and save ~20% of the
    loss's time; recomputed, they live for one layer. A kept kernel is redone when its weight changes
    (version, storage, device), so weights loaded after the loss was built are used.
    """

    def __init__(self, cache: bool) -> None:
        self.cache = cache
        self._kept: Dict[int, Tuple[tuple, Tensor]] = {}

    def __call__(self, conv: nn.Conv2d, dtype: torch.dtype) -> Tensor:
        """``(36, C_in, C_out)`` kernel of ``conv`` in ``dtype``."""
        if not self.cache:
            return transform_weight(conv.weight.detach().to(dtype))
        weight = conv.weight
        key = (weight._version, weight.data_ptr(), weight.device, dtype)
        kept = self._kept.get(id(conv))
        if kept is None or kept[0] != key:
            kept = self._kept[id(conv)] = (key, transform_weight(weight.detach().to(dtype)))
        return kept[1]


def bias(conv: nn.Conv2d, like: Tensor) -> Tensor:
    return conv.bias.detach().to(like.dtype)


class WinogradRRDB:
    """Runs BasicSR ``RRDB`` blocks by :class:`WinogradDenseBlock`.

    Args:
        cache_kernels: Keep the transformed kernels between calls (faster; see :class:`WinogradKernels`).
    """

    def __init__(self, cache_kernels: bool = True) -> None:
        self.kernels = WinogradKernels(cache_kernels)

    @staticmethod
    def applies(block: nn.Module, x: Tensor) -> bool:
        """BasicSR's RRDB on a CPU fp32/fp64 tensor whose size tiles by 4 (else the caller runs the block)."""
        return (type(block) is RRDB and x.device.type == 'cpu' and x.dtype in (torch.float32, torch.float64)
                and x.dim() == 4 and supports_winograd(x.shape[-2], x.shape[-1]))

    def __call__(self, block: RRDB, x: Tensor) -> Tensor:
        """``block(x)`` for an NCHW ``x``; the result is NCHW in channels-last memory."""
        out = x.permute(0, 2, 3, 1).contiguous()  # free for a channels-last x
        skip = out
        for rdb in (block.rdb1, block.rdb2, block.rdb3):
            out = WinogradDenseBlock.apply(out, rdb, self.kernels)
        return (out * RDB_SCALE + skip).permute(0, 3, 1, 2)
