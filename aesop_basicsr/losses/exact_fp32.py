"""Keep TF32 out of the auto-encoder's convolutions on CUDA, in forward and backward, without a global switch.

PyTorch lets cuDNN run fp32 convolutions in TF32 (10-bit mantissa) by default. AESOP subtracts two
nearly equal auto-encoder outputs, so TF32 costs it 2% of the loss at residual 0.05 and ~50% at 0.01
(measured by scripts/benchmark_aesop_loss.py). :func:`exact_fp32` turns TF32 off for the duration of
a call only, and :class:`ExactBackward` also for the backward pass of what ran inside it, since
autograd runs backward after the ``with`` block has ended.
"""
import contextlib
from typing import Callable, Iterator

import torch
from torch import Tensor


@contextlib.contextmanager
def exact_fp32(device: torch.device) -> Iterator[None]:
    """cuDNN convolutions and CUDA matmuls in true fp32 inside the block (CPU: nothing to do).

    Only switches that are on are turned off, and they are restored on exit.
    """
    if device.type != 'cuda':
        yield
        return
    switches = [s for s in (torch.backends.cudnn, torch.backends.cuda.matmul) if s.allow_tf32]
    for switch in switches:
        switch.allow_tf32 = False
    try:
        yield
    finally:
        for switch in switches:
            switch.allow_tf32 = True


class ExactBackward(torch.autograd.Function):
    """``fn(x)`` whose forward and backward both run under :func:`exact_fp32` (CUDA only matters).

    The graph of ``fn`` is built inside forward on a detached copy of ``x`` and differentiated in
    backward under the same scope.
    """

    @staticmethod
    def forward(ctx, x: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
        inner = x.detach().requires_grad_(x.requires_grad)
        with torch.enable_grad(), exact_fp32(x.device):
            out = fn(inner)
        ctx.inner, ctx.out = inner, out
        return out.detach()

    @staticmethod
    def backward(ctx, grad: Tensor):
        inner, out = ctx.inner, ctx.out
        del ctx.inner, ctx.out
        with exact_fp32(grad.device):
            grad_x, = torch.autograd.grad(out, inner, grad)
        return grad_x, None


def run_exact_fp32(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``fn(x)`` free of TF32 in forward and backward, on CUDA; plainly ``fn(x)`` elsewhere."""
    if x.device.type != 'cuda':
        return fn(x)
    if not (torch.is_grad_enabled() and x.requires_grad):
        with exact_fp32(x.device):
            return fn(x)
    return ExactBackward.apply(x, fn)
