"""``psi(x)`` split at its blocks, so that each block can be checkpointed, compiled or run by Winograd on its own.

- Checkpointing (:func:`recompute_block`): AESOP's pred pass keeps every activation of a 25-RRDB
  network for backward, more than the generator itself. Recomputing block by block in backward keeps
  one block's activations at a time, for one more forward pass of the pred image. A whole-network
  checkpoint would not help: its recomputation would hold all activations again while the
  generator's are still alive.
- Winograd (:mod:`aesop_basicsr.losses.winograd_rrdb`): the RRDBs run by their own forward and backward.
- Compiling: the 25 RRDBs share one shape, so one compiled graph serves them all (regional
  compilation: minutes less compile time than the whole network, same kernels).

Blocks are known for the paper's auto-encoder (``rrdb`` encoder, ``RRDBNet`` decoder); any other
decoder is one segment (:func:`blockwise_decoder` says which).
"""
from typing import Callable

import torch.nn.functional as F
from basicsr.archs.arch_util import pixel_unshuffle
from basicsr.archs.rrdbnet_arch import RRDBNet
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from aesop_basicsr.archs.aesop_autoencoder_arch import AESOPAutoEncoder

RunBlock = Callable[..., Tensor]  # run(fn, *inputs) -> fn(*inputs), possibly checkpointed or compiled


def blockwise_decoder(net: nn.Module) -> bool:
    """Whether the decoder is split into blocks (BasicSR's RRDBNet) rather than run as one segment."""
    return isinstance(net, AESOPAutoEncoder) and type(net.decoder) is RRDBNet


def recompute_block(fn: Callable[..., Tensor], *inputs: Tensor) -> Tensor:
    """``fn(*inputs)``, keeping only the inputs for backward and recomputing ``fn`` then."""
    return checkpoint(fn, *inputs, use_reentrant=False, preserve_rng_state=False)


def blockwise_forward(net: nn.Module, x: Tensor, run: RunBlock) -> Tensor:
    """``net(x)`` with every block (and the segments between them) called as ``run(segment, *inputs)``."""
    if not isinstance(net, AESOPAutoEncoder):
        return run(net, x)
    if net.encoder_type != 'rrdb':
        x = run(net.encode, x)
    else:
        x = run(lambda x: net.downsample(net.conv_first(x)), x)
        for block in net.body:
            x = run(block, x)
        x = run(net.conv_last, x)
    if not blockwise_decoder(net):
        return run(net.decoder, x)
    return _rrdbnet_blockwise(net.decoder, x, run)


def _rrdbnet_blockwise(net: RRDBNet, x: Tensor, run: RunBlock) -> Tensor:
    """BasicSR's ``RRDBNet.forward``, split at its blocks."""

    def head(x: Tensor) -> Tensor:
        if net.scale in (1, 2):
            x = pixel_unshuffle(x, 4 // net.scale)
        return net.conv_first(x)

    def tail(feat: Tensor, body: Tensor) -> Tensor:
        feat = feat + net.conv_body(body)
        feat = net.lrelu(net.conv_up1(F.interpolate(feat, scale_factor=2, mode='nearest')))
        feat = net.lrelu(net.conv_up2(F.interpolate(feat, scale_factor=2, mode='nearest')))
        return net.conv_last(net.lrelu(net.conv_hr(feat)))

    feat = run(head, x)
    body = feat
    for block in net.body:
        body = run(block, body)
    return run(tail, feat, body)
