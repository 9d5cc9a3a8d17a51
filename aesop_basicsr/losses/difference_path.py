"""Eq. 8's difference ``psi(pred) - psi(target)`` carried through the auto-encoder as a difference.

AESOP compares two nearly equal auto-encoder outputs, so computing them separately in a reduced
precision and subtracting loses the answer in rounding (plain bf16 autocast: loss off by 250-1240%).
Here the target pass runs without gradient (activations ``a``), and the difference
``d = pred - target`` is propagated alongside it:

- linear operations (convolutions without their bias, sums, concatenations, scalings,
  pixel-unshuffle, nearest upsampling, the fixed ``area``/``bicubic`` encoders) map ``d`` alone;
- at each LeakyReLU ``f`` the new difference is ``f(a + d) - f(a)``, formed in (at least) fp32
  from the target's activation ``a``.

Rounding in the reduced precision then hits ``d`` relative to ``d``'s own size rather than to the
activations'. The target pass may itself run in bf16 (``target_dtype``): its rounding only moves the
point ``a`` about which the difference is taken (it matters where ``a`` and ``a + d`` straddle a
LeakyReLU's kink), never ``d`` against the size of ``a``. In float64 this is the plain computation,
rearranged (tests check 1e-10).

It covers the paper's auto-encoder: ``AESOPAutoEncoder`` (any encoder type) with BasicSR's
``RRDBNet`` decoder; :func:`supports_difference_path` says whether a network qualifies.
"""
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from basicsr.archs.arch_util import pixel_unshuffle
from basicsr.archs.rrdbnet_arch import RRDB, RRDBNet, ResidualDenseBlock
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as recompute_in_backward

from aesop_basicsr.archs.aesop_autoencoder_arch import AESOPAutoEncoder

Pair = Tuple[Tensor, Tensor]  # (a: target activation, fp32, no grad; d: difference, compute dtype, with grad)
RDB_SCALE = 0.2  # BasicSR's ResidualDenseBlock and RRDB scale their residual by 0.2


def supports_difference_path(net: nn.Module) -> bool:
    """Whether :class:`DifferencePath` knows every layer of ``net`` (the paper's auto-encoder)."""
    if type(net) is not AESOPAutoEncoder or type(net.decoder) is not RRDBNet:
        return False
    if net.encoder_type == 'rrdb' and not all(type(block) is RRDB for block in net.body):
        return False
    return all(type(block) is RRDB for block in net.decoder.body)


class LeakyReLUDifference(torch.autograd.Function):
    """``f(a + d) - f(a)`` for ``f = leaky_relu``, with ``a`` fixed: the difference through a nonlinearity.

    Formed in ``a``'s precision and returned in ``d``'s. Only the mask ``a + d > 0`` is kept for
    backward (``d f(a + d) / d d``), one byte per element.
    """

    @staticmethod
    def forward(ctx, pre: Tensor, d: Tensor, slope: float) -> Tensor:
        """pre: ``a`` before the activation; d: the difference before it. Both terms in at least fp32."""
        work = torch.promote_types(pre.dtype, torch.float32)
        pre = pre.to(work)
        shifted = pre + d.to(work)
        mask = shifted > 0
        ctx.save_for_backward(mask)
        ctx.slope = slope
        return F.leaky_relu_(shifted, slope).sub_(F.leaky_relu(pre, slope)).to(d.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        mask, = ctx.saved_tensors
        return None, torch.where(mask, grad, grad * ctx.slope), None


class DifferencePath:
    """``psi(pred) - psi(target)`` by the difference path, ``d`` computed in ``dtype``.

    Args:
        net: A network for which :func:`supports_difference_path` holds.
        dtype: Precision of the difference (``torch.bfloat16``; or the target's for exactness).
        target_dtype: Precision of the target pass (``a``); None: the target's own (fp32).
        channels_last: Run convolutions on NHWC tensors (faster on CPUs and tensor cores).
        checkpoint: Keep only each block's inputs for backward and recompute the block then.
    """

    def __init__(self, net: AESOPAutoEncoder, dtype: torch.dtype, channels_last: bool = True,
                 checkpoint: bool = False, target_dtype: Optional[torch.dtype] = None) -> None:
        if not supports_difference_path(net):
            raise TypeError(f'DifferencePath covers AESOPAutoEncoder with an RRDBNet decoder, not {net!r:.200}.')
        self.net = net
        self.dtype = dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.checkpoint = checkpoint
        self.target_dtype = target_dtype
        self._weights: Dict[Tuple[int, torch.dtype], Tuple[int, int, Tensor]] = {}

    def __call__(self, target: Tensor, pred: Tensor) -> Tensor:
        """(N, C, H, W) target and pred -> ``psi(pred) - psi(target)`` in the target's dtype."""
        a = target.detach().to(self.target_dtype or target.dtype).contiguous(memory_format=self.memory_format)
        d = (pred - target.detach()).to(self.dtype).contiguous(memory_format=self.memory_format)
        a, d = self.encoder((a, d))
        a, d = self.rrdbnet(self.net.decoder, (a, d))
        return d.to(target.dtype)

    # --- stages -------------------------------------------------------------------------------
    def stage(self, fn: Callable[[Pair], Pair], pair: Pair) -> Pair:
        """Run ``fn``, recomputing it in backward when checkpointing (its inputs are all it keeps)."""
        if self.checkpoint and pair[1].requires_grad:
            return recompute_in_backward(fn, *pair, use_reentrant=False, preserve_rng_state=False)
        return fn(*pair)

    def encoder(self, pair: Pair) -> Pair:
        net = self.net
        if net.encoder_type != 'rrdb':  # area / bicubic downsampling is linear
            a, d = pair
            with torch.no_grad():
                a = net.encode(a)
            return a, net.encode(d.to(torch.promote_types(d.dtype, torch.float32))).to(self.dtype)
        pair = self.stage(lambda a, d: self.pixel_unshuffles(self.sequential_convs(net.conv_first, (a, d))), pair)
        for block in net.body:
            pair = self.stage(lambda a, d, block=block: self.rrdb(block, (a, d)), pair)
        return self.stage(lambda a, d: self.sequential_convs(net.conv_last, (a, d)), pair)

    def rrdbnet(self, net: RRDBNet, pair: Pair) -> Pair:
        """BasicSR's ``RRDBNet.forward``, on the pair."""

        def head(a: Tensor, d: Tensor) -> Pair:
            if net.scale in (1, 2):
                factor = 4 // net.scale
                with torch.no_grad():
                    a = pixel_unshuffle(a, factor)
                d = pixel_unshuffle(d, factor)
            return self.conv(net.conv_first, (a, d))

        def tail(a_feat: Tensor, d_feat: Tensor, a: Tensor, d: Tensor) -> Pair:
            a, d = self.conv(net.conv_body, (a, d))
            with torch.no_grad():
                a = a_feat + a
            d = d_feat + d
            for conv in (net.conv_up1, net.conv_up2):
                with torch.no_grad():
                    a = F.interpolate(a, scale_factor=2, mode='nearest')
                d = F.interpolate(d, scale_factor=2, mode='nearest')
                a, d = self.lrelu(net.lrelu, self.conv(conv, (a, d)))
            return self.conv(net.conv_last, self.lrelu(net.lrelu, self.conv(net.conv_hr, (a, d))))

        feat = self.stage(head, pair)
        pair = feat
        for block in net.body:
            pair = self.stage(lambda a, d, block=block: self.rrdb(block, (a, d)), pair)
        if self.checkpoint and pair[1].requires_grad:
            return recompute_in_backward(tail, *feat, *pair, use_reentrant=False, preserve_rng_state=False)
        return tail(*feat, *pair)

    def rrdb(self, block: RRDB, pair: Pair) -> Pair:
        """BasicSR's ``RRDB.forward``: three dense blocks and a 0.2-scaled residual."""
        out = pair
        for rdb in (block.rdb1, block.rdb2, block.rdb3):
            out = self.rdb(rdb, out)
        return self.residual(out, pair)

    def rdb(self, block: ResidualDenseBlock, pair: Pair) -> Pair:
        """BasicSR's ``ResidualDenseBlock.forward``: dense connections, LeakyReLU, 0.2-scaled residual."""
        features = [pair]
        for conv in (block.conv1, block.conv2, block.conv3, block.conv4):
            features.append(self.lrelu(block.lrelu, self.conv(conv, self.cat(features))))
        return self.residual(self.conv(block.conv5, self.cat(features)), pair)

    # --- layers -------------------------------------------------------------------------------
    def conv(self, conv: nn.Conv2d, pair: Pair) -> Pair:
        """``conv(a)`` with its bias; ``d`` without it (a convolution is affine)."""
        a, d = pair
        with torch.no_grad():
            if a.dtype == conv.weight.dtype:
                a = conv(a)
            else:
                a = F.conv2d(a, self.weight(conv.weight, a.dtype), self.weight(conv.bias, a.dtype), conv.stride,
                             conv.padding, conv.dilation, conv.groups)
        weight = self.weight(conv.weight)
        return a, F.conv2d(d, weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)

    def lrelu(self, act: nn.LeakyReLU, pair: Pair) -> Pair:
        pre, d = pair
        with torch.no_grad():
            post = F.leaky_relu(pre, act.negative_slope)
        return post, LeakyReLUDifference.apply(pre, d, act.negative_slope)

    def sequential_convs(self, convs: nn.Sequential, pair: Pair) -> Pair:
        for conv in convs:
            pair = self.conv(conv, pair)
        return pair

    def pixel_unshuffles(self, pair: Pair) -> Pair:
        a, d = pair
        for unshuffle in self.net.downsample:
            with torch.no_grad():
                a = unshuffle(a)
            d = unshuffle(d)
        return a, d

    @staticmethod
    def cat(pairs) -> Pair:
        with torch.no_grad():
            a = torch.cat([p[0] for p in pairs], 1)
        return a, torch.cat([p[1] for p in pairs], 1)

    @staticmethod
    def residual(out: Pair, skip: Pair) -> Pair:
        """``out * 0.2 + skip``."""
        with torch.no_grad():
            a = out[0] * RDB_SCALE + skip[0]
        return a, out[1] * RDB_SCALE + skip[1]

    def weight(self, weight: Optional[Tensor], dtype: Optional[torch.dtype] = None) -> Optional[Tensor]:
        """``weight`` (or a bias) in ``dtype`` (the difference's by default), cast once per change of the weight."""
        dtype = dtype or self.dtype
        if weight is None or weight.dtype == dtype:
            return weight
        key = (id(weight), dtype)
        cached = self._weights.get(key)
        if cached is None or cached[0] != weight._version or cached[1] != weight.data_ptr() \
                or cached[2].device != weight.device:
            cached = (weight._version, weight.data_ptr(), weight.detach().to(dtype))
            self._weights[key] = cached
        return cached[2]
