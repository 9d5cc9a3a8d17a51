"""DISTS (Ding et al., TPAMI 2020) as a BasicSR metric, computed by the reference ``DISTS_pytorch`` package."""
import os
import sys
from typing import List, Optional

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY
from torch import nn

from aesop_basicsr.metrics.lower_is_better import lower_is_better, warn_if_better_missing
from aesop_basicsr.metrics.perceptual_util import (build_with_torchvision_weights, cached_network,
                                                   metric_device, perceptual_distance)
from aesop_basicsr.utils.checkpoint import read_checkpoint
from aesop_basicsr.utils.registry import register

METRIC_NAME = 'DISTS'


def dists_weight_files() -> List[str]:
    """Where the package's alpha/beta file ``weights.pt`` may be: beside its module, or under ``sys.prefix``."""
    import DISTS_pytorch
    return [os.path.join(os.path.dirname(os.path.abspath(DISTS_pytorch.__file__)), 'weights.pt'),
            os.path.join(sys.prefix, 'weights.pt')]


def _load_alpha_beta(net: nn.Module) -> None:
    # DISTS_pytorch reads weights.pt from sys.prefix only, which misses `pip install --user` and
    # other layouts; the wheel also keeps a copy beside the module, which is looked at first.
    candidates = dists_weight_files()
    found = [path for path in candidates if os.path.isfile(path)]
    if not found:
        raise FileNotFoundError(f'{METRIC_NAME} metric: the learned alpha/beta file weights.pt of the DISTS_pytorch '
                                f'package is missing (looked at {", ".join(candidates)}); reinstall it with '
                                f'`pip install --force-reinstall dists-pytorch`.')
    weights = read_checkpoint(found[0], f'{METRIC_NAME} metric (DISTS_pytorch weights.pt)')
    with torch.no_grad():
        for name in ('alpha', 'beta'):
            getattr(net, name).copy_(weights[name])


def _build_dists() -> nn.Module:
    from DISTS_pytorch import DISTS
    from torchvision.models import VGG16_Weights

    # the VGG16 trunk is torchvision's ImageNet model, loaded through torch.hub
    net = build_with_torchvision_weights(METRIC_NAME, VGG16_Weights.IMAGENET1K_V1.url,
                                         lambda: DISTS(load_weights=False))
    _load_alpha_beta(net)
    return net


def dists_network(device: Optional[str] = None) -> nn.Module:
    """The process-wide DISTS network on ``device`` (default: CUDA if available)."""
    return cached_network(METRIC_NAME, metric_device(device), _build_dists)


@register(METRIC_REGISTRY)
@lower_is_better
def calculate_dists(img: np.ndarray,
                    img2: np.ndarray,
                    crop_border: int,
                    input_order: str = 'HWC',
                    device: Optional[str] = None,
                    **kwargs) -> float:
    """DISTS between two images; about 0 for identical images, **lower is better**.

    Same convention as BasicSR's ``calculate_psnr``; use in option files as
    ``dists: {type: calculate_dists, crop_border: 4, better: lower}``.

    Args:
        img: Image with range [0, 255], BGR (as BasicSR's ``tensor2img`` and cv2 give), uint8 or float.
        img2: Image of the same shape.
        crop_border: Pixels cropped from each edge before the comparison.
        input_order: 'HWC' or 'CHW'.
        device: Where the network runs; default the current CUDA device if there is one, else the CPU.
        kwargs: The rest of BasicSR's metric option dict; without ``better`` (BasicSR's ``calculate_metric``
            passes it), a warning says once that ``better: lower`` is missing.

    Returns:
        float: DISTS.
    """
    warn_if_better_missing(METRIC_NAME, 'calculate_dists', kwargs)
    return perceptual_distance(dists_network(device), img, img2, crop_border, input_order)
