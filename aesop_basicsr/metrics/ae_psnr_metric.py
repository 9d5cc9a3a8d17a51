"""AE-PSNR: the PSNR between psi(HR) and psi(SR), psi = D(E(.)) an AESOP auto-encoder (the paper's supplement).

The authors define it (AESOP-SR issue tracker) as AE-PSNR = PSNR(AE(HR), AE(SR)): how close the SR image
is to HR in what the auto-encoder keeps, i.e. in the part of the image the LR input determines; detail
the encoder discards does not count. Their fork's ``calculate_aepsnr_pytorch`` feeds both 8-bit images
to the AE and takes the PSNR of the two outputs as they come (no clipping or rounding), after the
border crop and on the Y channel. This metric does the same with BasicSR's ``calculate_psnr`` on the
two outputs, so crop and Y conversion are exactly PSNR's, and loads the AE from options named as
AESOPLoss names them.
"""
import json
import os
from typing import Any, Mapping, Optional

import numpy as np
import torch
from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr
from basicsr.utils.registry import METRIC_REGISTRY
from torch import nn

from aesop_basicsr.losses.exact_fp32 import exact_fp32
from aesop_basicsr.metrics.perceptual_util import cached_network, image_to_tensor, metric_device
from aesop_basicsr.utils.checkpoint import load_pretrained
from aesop_basicsr.utils.cli import OptionError
from aesop_basicsr.utils.registry import register

METRIC_NAME = 'calculate_ae_psnr'


def autoencoder_for_metric(autoencoder: Mapping[str, Any], pretrain_network_ae: Optional[str],
                           param_key_ae: Optional[str] = 'params_ema', strict_load_ae: bool = True,
                           device: Optional[str] = None) -> nn.Module:
    """The auto-encoder these options name, built and loaded once per process and device (eval, no grad)."""
    if not isinstance(autoencoder, Mapping) or 'type' not in autoencoder:
        raise OptionError(f'{METRIC_NAME}: autoencoder must be an option dict with a type, as in AESOPLoss, '
                          'e.g. {type: AESOPAutoEncoder, scale: 4}.')
    if not pretrain_network_ae:
        raise OptionError(f'{METRIC_NAME}: pretrain_network_ae is required: the weights of the auto-encoder whose '
                          'outputs the PSNR compares (e.g. AE_RRDBdecoder_100K.pth).')
    path = os.path.expanduser(str(pretrain_network_ae))
    name = (f'AE-PSNR {path} [{param_key_ae}] strict={bool(strict_load_ae)} '
            f'{json.dumps(autoencoder, sort_keys=True, default=str)}')

    def build() -> nn.Module:
        net = build_network(dict(autoencoder))
        load_pretrained(net, path, param_key_ae, strict_load_ae, f'{METRIC_NAME}:pretrain_network_ae',
                        f'{METRIC_NAME}:param_key_ae')
        return net

    return cached_network(name, metric_device(device), build, note='')


def autoencoded(net: nn.Module, img: np.ndarray, input_order: str) -> np.ndarray:
    """psi of a BasicSR metric image (BGR, [0, 255], HWC or CHW) as a float64 HWC BGR image in [0, 255] units,
    neither clipped nor rounded. The AE runs in fp32 (true fp32 on CUDA: TF32 would blur the difference)."""
    device = next(net.parameters()).device
    x = image_to_tensor(img, 0, input_order, device)
    with torch.no_grad(), exact_fp32(device):
        out = net(x)
    return out[0].double().cpu().numpy().transpose(1, 2, 0)[..., ::-1] * 255.


@register(METRIC_REGISTRY)
def calculate_ae_psnr(img: np.ndarray,
                      img2: np.ndarray,
                      crop_border: int,
                      autoencoder: Optional[Mapping[str, Any]] = None,
                      pretrain_network_ae: Optional[str] = None,
                      param_key_ae: Optional[str] = 'params_ema',
                      strict_load_ae: bool = True,
                      input_order: str = 'HWC',
                      test_y_channel: bool = False,
                      device: Optional[str] = None,
                      **kwargs) -> float:
    """PSNR (dB) between psi(img) and psi(img2); higher is better, inf where the two outputs are equal.

    In an option file (SR vs HR, as BasicSR's validation passes them)::

        ae_psnr:
          type: calculate_ae_psnr
          crop_border: 4
          test_y_channel: true
          autoencoder: {type: AESOPAutoEncoder, scale: 4}   # as AESOPLoss's autoencoder
          pretrain_network_ae: experiments/pretrained_models/AE_RRDBdecoder_100K.pth
          param_key_ae: params_ema

    Args:
        img, img2: Images with range [0, 255], BGR (BasicSR's ``tensor2img``), uint8 or float; sides divisible
            by the auto-encoder's scale.
        crop_border: Pixels cropped from each edge of the two AE outputs (the whole images go through the AE).
        autoencoder: The auto-encoder's option dict (``type`` and its keys), as AESOPLoss's ``autoencoder``.
        pretrain_network_ae: Its weights (``.pth`` or ``.safetensors``); required.
        param_key_ae: Key of the weights in the file (``params_ema``, ``params``; None for a bare state dict).
        strict_load_ae: Every tensor of the network must be in the file and vice versa.
        input_order: 'HWC' or 'CHW'.
        test_y_channel: PSNR on the Y channel (ITU-R BT.601, as ``calculate_psnr``).
        device: Where the AE runs; default the current CUDA device if there is one, else the CPU.

    Raises:
        OptionError: no auto-encoder options or weights; CheckpointError/OptionKeyError: weights that do not fit.
        ValueError: images of different shapes, or sides the auto-encoder cannot take.
    """
    if np.shape(img) != np.shape(img2):
        raise ValueError(f'{METRIC_NAME}: image shapes differ: {np.shape(img)}, {np.shape(img2)}.')
    net = autoencoder_for_metric(autoencoder, pretrain_network_ae, param_key_ae, strict_load_ae, device)
    return float(calculate_psnr(autoencoded(net, img, input_order), autoencoded(net, img2, input_order), crop_border,
                                input_order='HWC', test_y_channel=test_y_channel))
