"""The AESOP auto-encoder psi = D(E(.)) (Lee et al., CVPR 2025, Sec. 3).

E maps an HR image to an LR-sized image; D is any SR network from BasicSR's
ARCH_REGISTRY. The module names (``conv_first``, ``body``, ``conv_last``, ``decoder``)
match the authors' released checkpoints, whose duplicated ``encoder.*`` keys are folded
by :meth:`AESOPAutoEncoder.load_state_dict`.
"""
import inspect
import math
from collections import OrderedDict
from copy import deepcopy
from typing import Any, Dict, Mapping, Optional

import torch
import torch.nn.functional as F
from basicsr.archs import build_network
from basicsr.archs.arch_util import default_init_weights
from basicsr.archs.rrdbnet_arch import RRDB
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from aesop_basicsr.utils.registry import register

ENCODER_TYPES = ('rrdb', 'area', 'bicubic')

# The authors registered the encoder's modules twice: once by name and once inside an
# nn.Sequential called ``encoder`` (index 1 is the parameter-free pixel-unshuffle).
RELEASED_ENCODER_ALIASES = {'encoder.0.': 'conv_first.', 'encoder.2.': 'body.', 'encoder.3.': 'conv_last.'}


def default_decoder_opt(scale: int, num_in_ch: int) -> Dict[str, Any]:
    """The paper's decoder: a full-size RRDBNet (ESRGAN's PSNR-oriented generator)."""
    return dict(type='RRDBNet', num_in_ch=num_in_ch, num_out_ch=num_in_ch, num_feat=64, num_block=23,
                num_grow_ch=32, scale=scale)


def declared_scale(decoder_opt: Mapping[str, Any]) -> Optional[int]:
    """The upscaling factor a decoder option dict asks for (``scale``, ``upscale`` or the class's own
    ``scale_option_keys``, e.g. OmniSR's ``up_scale``; else the class's default or ``fixed_scale``)."""
    cls = ARCH_REGISTRY.get(decoder_opt['type'])
    keys = ('scale', 'upscale') + tuple(getattr(cls, 'scale_option_keys', ()))
    for key in keys:
        if key in decoder_opt:
            return int(decoder_opt[key])
    params = inspect.signature(cls).parameters
    for key in keys:
        if key in params and params[key].default is not inspect.Parameter.empty:
            return int(params[key].default)
    fixed = getattr(cls, 'fixed_scale', None)
    return int(fixed) if fixed else None


@register(ARCH_REGISTRY)
class AESOPAutoEncoder(nn.Module):
    """Auto-encoder whose decoder output is the space AESOP measures distances in (Eq. 8).

    Args:
        scale: SR factor; the encoder reduces H and W by it. ``rrdb`` needs a power of two.
        num_in_ch: Image channels.
        num_feat: Encoder feature width after pixel-unshuffle (the paper: 64).
        num_grow_ch: RRDB growth channels of the encoder (the paper: 32).
        num_block: Number of encoder RRDB blocks (the paper: 2).
        encoder_type: ``rrdb`` (learned, the paper's) or a fixed, non-learned downsampler:
            ``area`` (box average) or ``bicubic`` (antialiased), the paper's ablation.
        decoder: Option dict of any SR network in BasicSR's ARCH_REGISTRY (default: RRDBNet,
            64 features, 23 blocks). Its scale must equal ``scale``.
    """

    def __init__(self,
                 scale: int = 4,
                 num_in_ch: int = 3,
                 num_feat: int = 64,
                 num_grow_ch: int = 32,
                 num_block: int = 2,
                 encoder_type: str = 'rrdb',
                 decoder: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__()
        if encoder_type not in ENCODER_TYPES:
            raise ValueError(f'AESOPAutoEncoder: encoder_type={encoder_type!r} is unknown; '
                             f'choose one of {", ".join(ENCODER_TYPES)}.')
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f'AESOPAutoEncoder: scale={scale!r} must be a positive integer.')
        self.scale = scale
        self.encoder_type = encoder_type

        decoder_opt = deepcopy(dict(decoder)) if decoder is not None else default_decoder_opt(scale, num_in_ch)
        if 'type' not in decoder_opt:
            raise ValueError('AESOPAutoEncoder: the decoder option dict needs a "type" (e.g. RRDBNet).')
        decoder_scale = declared_scale(decoder_opt)
        if decoder_scale is not None and decoder_scale != scale:
            raise ValueError(f'AESOPAutoEncoder: the decoder {decoder_opt["type"]} upscales by {decoder_scale} '
                             f'(decoder.scale/upscale) but the auto-encoder has scale={scale}; they must agree.')

        if encoder_type == 'rrdb':
            num_steps = int(round(math.log2(scale)))
            if 2**num_steps != scale or scale < 2:
                raise ValueError(f'AESOPAutoEncoder: scale={scale} needs a power of two >= 2 with '
                                 "encoder_type='rrdb' (pixel-unshuffle by 2 per step).")
            stem_ch = num_feat // scale**2
            if stem_ch < 1 or stem_ch * scale**2 != num_feat:
                raise ValueError(f'AESOPAutoEncoder: num_feat={num_feat} must be a multiple of scale**2={scale**2} '
                                 '(the stem has num_feat / scale**2 channels before pixel-unshuffle).')
            if stem_ch < num_in_ch:
                get_root_logger().warning(
                    f'AESOPAutoEncoder: the encoder stem has num_feat / scale**2 = {stem_ch} channels, fewer than '
                    f'num_in_ch={num_in_ch}: it cannot pass every colour direction on, so the loss may miss colour '
                    f'shifts. Use num_feat >= {num_in_ch * scale**2}.')
            self.conv_first = nn.Sequential(
                nn.Conv2d(num_in_ch, stem_ch, 3, 1, 1), nn.Conv2d(stem_ch, stem_ch, 3, 1, 1))
            # two 2x steps rather than one 4x step: the channel order differs, and the
            # released weights depend on it
            self.downsample = nn.Sequential(*[nn.PixelUnshuffle(2) for _ in range(num_steps)])
            self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
            self.conv_last = nn.Sequential(
                nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.Conv2d(num_feat, num_in_ch, 3, 1, 1))
            default_init_weights([self.conv_first, self.conv_last], 0.1)

        self.decoder = build_network(decoder_opt)

    def encode(self, x: Tensor) -> Tensor:
        """E: (N, C, sH, sW) HR image -> (N, C, H, W) LR-like image."""
        if x.shape[-1] % self.scale or x.shape[-2] % self.scale:
            raise ValueError(f'AESOPAutoEncoder: input size {tuple(x.shape[-2:])} is not divisible by '
                             f'scale={self.scale}.')
        if self.encoder_type == 'area':
            return F.avg_pool2d(x, self.scale)
        if self.encoder_type == 'bicubic':
            size = (x.shape[-2] // self.scale, x.shape[-1] // self.scale)
            return F.interpolate(x, size=size, mode='bicubic', align_corners=False, antialias=True)
        return self.conv_last(self.body(self.downsample(self.conv_first(x))))

    def decode(self, z: Tensor) -> Tensor:
        """D: LR-like image -> HR image."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        """psi(x) = D(E(x))."""
        out = self.decode(self.encode(x))
        if out.shape[-2:] != x.shape[-2:]:
            raise ValueError(f'AESOPAutoEncoder: the decoder {type(self.decoder).__name__} turned the '
                             f'{tuple(x.shape[-2:])} input into {tuple(out.shape[-2:])}, not the same size; '
                             f'it does not upscale by scale={self.scale}.')
        return out

    @staticmethod
    def fold_released_keys(state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
        """Map the authors' released key layout to ours.

        Their files hold each encoder tensor twice, as ``conv_first.*`` and ``encoder.0.*``
        (likewise ``body``/``encoder.2`` and ``conv_last``/``encoder.3``). Twins must be equal;
        an ``encoder.*`` tensor without a twin is renamed.
        """
        folded: 'OrderedDict[str, Tensor]' = OrderedDict()
        aliased = OrderedDict()
        for key, value in state_dict.items():
            alias = next((a for a in RELEASED_ENCODER_ALIASES if key.startswith(a)), None)
            if alias is None:
                folded[key] = value
            else:
                aliased[RELEASED_ENCODER_ALIASES[alias] + key[len(alias):]] = (key, value)
        for key, (alias_key, value) in aliased.items():
            if key not in folded:
                folded[key] = value
            elif folded[key].shape != value.shape or not torch.equal(folded[key], value):
                raise ValueError(f'AESOPAutoEncoder checkpoint: {alias_key} differs from its twin {key}; '
                                 'the file is not a consistent AESOP auto-encoder checkpoint.')
        return folded

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict`` that also accepts the authors' released layout."""
        return super().load_state_dict(self.fold_released_keys(state_dict), strict=strict, assign=assign)

    @staticmethod
    def scale_of_state_dict(state_dict: Mapping[str, Tensor]) -> Optional[int]:
        """The scale a (folded) ``rrdb`` auto-encoder checkpoint was made for, or None if it cannot tell.

        The stem has ``num_feat / scale**2`` channels and the layer after pixel-unshuffle ``num_feat``.
        """
        stem, after = state_dict.get('conv_first.1.weight'), state_dict.get('conv_last.0.weight')
        if stem is None or after is None or stem.dim() != 4 or after.dim() != 4 or stem.shape[0] == 0:
            return None
        ratio = after.shape[1] // stem.shape[0]
        scale = int(round(math.sqrt(ratio)))
        return scale if scale * scale * stem.shape[0] == after.shape[1] else None
