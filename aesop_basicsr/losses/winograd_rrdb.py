"""BasicSR's RRDB (ESRGAN's residual-in-residual dense block) with Winograd convolutions, for frozen weights.

The dense block's five convolutions share their inputs (each takes the concatenation of the block
input and all earlier outputs), so every feature map is transformed into the Winograd domain once
and concatenated there; each convolution is then one batched matrix product on a slice of that
buffer. Backward computes the gradient with respect to the input only (the auto-encoder is frozen)
by the same steps in reverse, keeping one byte per activation (the LeakyReLU masks) from forward.
Measured by ``scripts/benchmark_aesop_loss.py``: the auto-encoder's passes 1.4-1.6x faster than
direct fp32 convolution on a CPU; values within ~1e-5 of the direct result (see :mod:`.winograd`).
"""
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from basicsr.archs.rrdbnet_arch import RRDB, ResidualDenseBlock
from torch import Tensor, nn

from aesop_basicsr.losses.winograd import (TILE, input_transform, input_transform_adjoint, output_transform,
                                           output_transform_adjoint, supports_winograd, transform_weight)

RESIDUAL_SCALE = 0.2  # BasicSR's ResidualDenseBlock and RRDB scale their residuals by 0.2


class TransformedBlock:
    """The Winograd-domain kernels of one dense block: per convolution ``(U, U^T, bias)``.

    Recomputed when a weight changes (its version or storage), so loading weights after the loss
    was built is safe.
    """

    def __init__(self, block: ResidualDenseBlock) -> None:
        self.convs: List[nn.Conv2d] = [block.conv1, block.conv2, block.conv3, block.conv4, block.conv5]
        self.slope = block.lrelu.negative_slope
        self.key: Tuple = ()
        self.kernels: List[Tuple[Tensor, Tensor, Tensor]] = []

    def get(self, dtype: torch.dtype) -> List[Tuple[Tensor, Tensor, Tensor]]:
        key = (dtype, ) + tuple((c.weight._version, c.weight.data_ptr(), c.weight.device) for c in self.convs)
        if key != self.key:
            self.kernels = []
            for conv in self.convs:
                u = transform_weight(conv.weight.detach().to(dtype))
                self.kernels.append((u, u.transpose(1, 2).contiguous(), conv.bias.detach().to(dtype)))
            self.key = key
        return self.kernels


class WinogradDenseBlock(torch.autograd.Function):
    """``ResidualDenseBlock.forward`` on an NHWC tensor, with the gradient for the input only."""

    @staticmethod
    def forward(ctx, x: Tensor, kernels: List[Tuple[Tensor, Tensor, Tensor]], slope: float) -> Tensor:
        n, h, w, c_in = x.shape
        growth = kernels[0][0].shape[-1]
        tiles = n * (h // 4) * (w // 4)
        buffer = x.new_empty(TILE * TILE, tiles, c_in + 4 * growth)  # the concatenation, in the Winograd domain
        input_transform(x, buffer[..., :c_in])
        masks = []
        width = c_in
        for u, _, bias in kernels[:4]:
            pre = output_transform(torch.bmm(buffer[..., :width], u), n, h, w).add_(bias)
            masks.append(pre > 0)
            input_transform(F.leaky_relu_(pre, slope), buffer[..., width:width + growth])
            width += growth
        out = output_transform(torch.bmm(buffer, kernels[4][0]), n, h, w).add_(kernels[4][2])
        ctx.save_for_backward(*masks)
        ctx.kernels, ctx.slope, ctx.shape = kernels, slope, (n, h, w, c_in)
        return out.mul_(RESIDUAL_SCALE).add_(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        masks = ctx.saved_tensors
        kernels, slope, (n, h, w, c_in) = ctx.kernels, ctx.slope, ctx.shape
        growth = kernels[0][0].shape[-1]
        grad = grad.contiguous()
        # out = 0.2 conv5(concat) + x; the concatenation's gradient is kept in the Winograd domain
        concat_grad = torch.bmm(output_transform_adjoint(grad * RESIDUAL_SCALE), kernels[4][1])
        for k in range(3, -1, -1):
            start = c_in + k * growth
            act_grad = input_transform_adjoint(concat_grad[..., start:start + growth], n, h, w)
            pre_grad = torch.where(masks[k], act_grad, act_grad * slope)
            concat_grad[..., :start] += torch.bmm(output_transform_adjoint(pre_grad), kernels[k][1])
        return grad + input_transform_adjoint(concat_grad[..., :c_in], n, h, w), None, None


class WinogradRRDB:
    """Runs BasicSR ``RRDB`` blocks by :class:`WinogradDenseBlock`, caching their transformed kernels."""

    def __init__(self) -> None:
        self._blocks: Dict[int, TransformedBlock] = {}

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
            transformed = self._blocks.get(id(rdb))
            if transformed is None or transformed.convs[0] is not rdb.conv1:
                transformed = self._blocks[id(rdb)] = TransformedBlock(rdb)
            out = WinogradDenseBlock.apply(out, transformed.get(x.dtype), transformed.slope)
        return (out * RESIDUAL_SCALE + skip).permute(0, 3, 1, 2)
