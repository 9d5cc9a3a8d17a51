"""SPSR's generator (Ma et al., "Structure-Preserving Super Resolution with Gradient Guidance", CVPR 2020).

Written for this package from the paper and the published checkpoint's layout; its module names are
those of the official ``spsr.pth`` (github.com/Maclory/SPSR, the generator ``SPSRNet``, which the AESOP
authors' fork keeps as ``AESOP/basicsr/archs/spsr_arch.py``), so that file loads strictly as a bare
state dict (``param_key_g: ~``).

Two branches share the LR input:

- the SR branch is ESRGAN's RRDB network (``model``: first conv, ``nb`` RRDBs and a conv with a
  long skip, nearest-neighbour x2 upsampling + conv + LeakyReLU per factor of 2, then
  ``HR_conv0_new`` and ``HR_conv1_new``);
- the gradient branch works on the LR image's gradient magnitude M(I) (per channel, central
  differences, ``sqrt(dx^2 + dy^2 + 1e-6)``): a conv, then four stages that each concatenate the
  branch with the SR trunk's features after RRDB 5, 10, 15 and 20, an RRDB on 2·nf channels and a conv,
  a long skip, and its own upsampler (``b_module``).

The output fuses both at HR: ``f_block`` (an RRDB on the concatenated branch and SR features),
``f_concat``, ``f_HR_conv0``, ``f_HR_conv1``. ``conv_w`` (the gradient branch's own image output, used
by SPSR's gradient losses) is kept for the key layout and not used by :meth:`SPSRNet.forward`.
The official file stores ``HR_conv0_new`` twice (also as a member of ``model``); so does this module.
"""
import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from aesop_basicsr.utils.fallback_registry import register_fallback

TAP_EVERY = 5  # the gradient branch reads the SR trunk after RRDB 5, 10, 15, 20
NUM_TAPS = 4
LEAKY_SLOPE = 0.2


def conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, 1, 1)


def leaky() -> nn.LeakyReLU:
    return nn.LeakyReLU(LEAKY_SLOPE, inplace=True)


def conv_unit(in_ch: int, out_ch: int, act: bool, kernel_size: int = 3) -> nn.Sequential:
    """``Sequential(conv[, LeakyReLU])``: the official layout names this conv ``<unit>.0``."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, 1, kernel_size // 2)
    return nn.Sequential(conv, leaky()) if act else nn.Sequential(conv)


class DenseBlock(nn.Module):
    """ESRGAN's residual dense block: five 3x3 convs, each seeing all earlier outputs; x + 0.2 * conv5."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.conv1 = conv_unit(nf, gc, True)
        self.conv2 = conv_unit(nf + gc, gc, True)
        self.conv3 = conv_unit(nf + 2 * gc, gc, True)
        self.conv4 = conv_unit(nf + 3 * gc, gc, True)
        self.conv5 = conv_unit(nf + 4 * gc, nf, False)

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            features.append(conv(torch.cat(features, 1)))
        return x + 0.2 * self.conv5(torch.cat(features, 1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, x + 0.2 * out."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.RDB1 = DenseBlock(nf, gc)
        self.RDB2 = DenseBlock(nf, gc)
        self.RDB3 = DenseBlock(nf, gc)

    def forward(self, x: Tensor) -> Tensor:
        return x + 0.2 * self.RDB3(self.RDB2(self.RDB1(x)))


class Trunk(nn.Module):
    """The RRDBs and the conv after them (``model.1.sub``); the long skip is applied by SPSRNet."""

    def __init__(self, nf: int, nb: int, gc: int):
        super().__init__()
        self.sub = nn.Sequential(*[RRDB(nf, gc) for _ in range(nb)], conv3x3(nf, nf))


class GradientMagnitude(nn.Module):
    """M(I) per channel: sqrt((I(y+1) - I(y-1))^2 + (I(x+1) - I(x-1))^2 + 1e-6), zero padding.

    The two difference kernels are (frozen) parameters, as in the official checkpoint.
    """

    def __init__(self):
        super().__init__()
        vertical = torch.tensor([[0., -1., 0.], [0., 0., 0.], [0., 1., 0.]])
        self.weight_h = nn.Parameter(vertical.t().reshape(1, 1, 3, 3).clone(), requires_grad=False)
        self.weight_v = nn.Parameter(vertical.reshape(1, 1, 3, 3).clone(), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        channels = x.reshape(-1, 1, *x.shape[-2:])
        dy = F.conv2d(channels, self.weight_v.to(x.dtype), padding=1)
        dx = F.conv2d(channels, self.weight_h.to(x.dtype), padding=1)
        return torch.sqrt(dy**2 + dx**2 + 1e-6).reshape(x.shape)


def upsampler(nf: int, scale: int) -> List[nn.Module]:
    """Nearest-neighbour upsampling + conv + LeakyReLU: once by 3, or log2(scale) times by 2."""
    factors = [3] if scale == 3 else [2] * int(math.log2(scale))
    layers: List[nn.Module] = []
    for factor in factors:
        layers += [nn.Upsample(scale_factor=factor, mode='nearest'), conv3x3(nf, nf), leaky()]
    return layers


@register_fallback(ARCH_REGISTRY)
class SPSRNet(nn.Module):
    """SPSR generator; option keys as in the official (and the AESOP authors') option files.

    Args:
        in_nc: Image channels in.
        out_nc: Image channels out.
        nf: Feature width (official: 64).
        nb: RRDBs in the SR trunk (official: 23); at least 20, since the gradient branch reads the
            trunk after RRDB 5, 10, 15 and 20.
        gc: Growth channels of every RRDB (official: 32; the official code fixes 32 whatever ``gc`` is).
        upscale: 2, 3, 4 or 8 (official: 4).
        norm_type, act_type, mode, upsample_mode: accepted with the official values only
            (no normalisation, LeakyReLU, CNA, nearest-neighbour ``upconv``).

    Shapes: (B, in_nc, H, W) -> (B, out_nc, upscale·H, upscale·W); pixel range as trained (BasicSR: [0, 1]).

    Raises:
        ValueError: for ``nb`` < 20, an unsupported ``upscale`` or a non-official block option.
    """

    def __init__(self, in_nc: int = 3, out_nc: int = 3, nf: int = 64, nb: int = 23, gc: int = 32, upscale: int = 4,
                 norm_type: Optional[str] = None, act_type: str = 'leakyrelu', mode: str = 'CNA',
                 upsample_mode: str = 'upconv'):
        super().__init__()
        if nb < TAP_EVERY * NUM_TAPS:
            raise ValueError(f'SPSRNet: nb={nb}; the gradient branch reads the trunk after RRDB 5, 10, 15 and 20, '
                             'so nb must be at least 20 (official: 23).')
        if upscale not in (2, 3, 4, 8):
            raise ValueError(f'SPSRNet: upscale={upscale!r}; use 2, 3, 4 or 8 (official: 4).')
        for key, value, official in (('norm_type', norm_type, None), ('act_type', act_type, 'leakyrelu'),
                                     ('mode', mode, 'CNA'), ('upsample_mode', upsample_mode, 'upconv')):
            if value != official:
                raise ValueError(f'SPSRNet: {key}={value!r} is not supported; only the official {official!r}.')
        self.upscale = upscale

        # SR branch (ESRGAN); HR_conv0_new is also the last member of `model`, as in the official file
        self.HR_conv0_new = conv_unit(nf, nf, True)
        self.HR_conv1_new = conv_unit(nf, nf, False)
        self.model = nn.Sequential(conv3x3(in_nc, nf), Trunk(nf, nb, gc), *upsampler(nf, upscale),
                                   *self.HR_conv0_new)

        # gradient branch
        self.get_g_nopadding = GradientMagnitude()
        self.b_fea_conv = conv_unit(in_nc, nf, False)
        for stage in range(1, NUM_TAPS + 1):
            setattr(self, f'b_concat_{stage}', conv_unit(2 * nf, nf, False))
            setattr(self, f'b_block_{stage}', RRDB(2 * nf, gc))
        self.b_LR_conv = conv_unit(nf, nf, False)
        self.b_module = nn.Sequential(*upsampler(nf, upscale), *conv_unit(nf, nf, True), *conv_unit(nf, nf, False))
        self.conv_w = conv_unit(nf, out_nc, False, kernel_size=1)

        # fusion at HR
        self.f_concat = conv_unit(2 * nf, nf, False)
        self.f_block = RRDB(2 * nf, gc)
        self.f_HR_conv0 = conv_unit(nf, nf, True)
        self.f_HR_conv1 = conv_unit(nf, out_nc, False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) LR -> (B, C, sH, sW) SR (the fused output; SPSR's main result)."""
        gradient = self.get_g_nopadding(x)

        blocks = self.model[1].sub
        shallow = self.model[0](x)
        feat = shallow
        taps = []
        for index in range(TAP_EVERY * NUM_TAPS):
            feat = blocks[index](feat)
            if (index + 1) % TAP_EVERY == 0:
                taps.append(feat)
        feat = blocks[TAP_EVERY * NUM_TAPS:](feat)  # the remaining RRDBs and the trunk conv
        sr = self.HR_conv1_new(self.model[2:](shallow + feat))

        branch_lr = self.b_fea_conv(gradient)
        branch = branch_lr
        for stage, tap in enumerate(taps, start=1):
            merged = getattr(self, f'b_block_{stage}')(torch.cat([branch, tap], 1))
            branch = getattr(self, f'b_concat_{stage}')(merged)
        branch = self.b_module(self.b_LR_conv(branch) + branch_lr)

        fused = self.f_concat(self.f_block(torch.cat([branch, sr], 1)))
        return self.f_HR_conv1(self.f_HR_conv0(fused))
