"""LPIPS (Zhang et al., CVPR 2018; v0.1, AlexNet trunk) as a BasicSR metric, computed by the ``lpips`` package."""
from typing import Optional

import numpy as np
from basicsr.utils.registry import METRIC_REGISTRY
from torch import nn

from aesop_basicsr.metrics.lower_is_better import lower_is_better, warn_if_better_missing
from aesop_basicsr.metrics.perceptual_util import (build_with_torchvision_weights, cached_network,
                                                   metric_device, perceptual_distance)
from aesop_basicsr.utils.registry import register

METRIC_NAME = 'LPIPS'


def _build_lpips() -> nn.Module:
    import lpips
    from torchvision.models import AlexNet_Weights

    # the linear calibration layers (lpips/weights/v0.1/alex.pth) ship inside the package;
    # the AlexNet trunk is torchvision's ImageNet model, loaded through torch.hub
    return build_with_torchvision_weights(
        METRIC_NAME, AlexNet_Weights.IMAGENET1K_V1.url,
        lambda: lpips.LPIPS(net='alex', version='0.1', pretrained=True, verbose=False))


def lpips_network(device: Optional[str] = None) -> nn.Module:
    """The process-wide LPIPS v0.1 (AlexNet) network on ``device`` (default: CUDA if available)."""
    return cached_network(METRIC_NAME, metric_device(device), _build_lpips)


@register(METRIC_REGISTRY)
@lower_is_better
def calculate_lpips(img: np.ndarray,
                    img2: np.ndarray,
                    crop_border: int,
                    input_order: str = 'HWC',
                    device: Optional[str] = None,
                    **kwargs) -> float:
    """LPIPS distance between two images; 0 for identical images, **lower is better**.

    Same convention as BasicSR's ``calculate_psnr``; use in option files as
    ``lpips: {type: calculate_lpips, crop_border: 4, better: lower}``.

    Args:
        img: Image with range [0, 255], BGR (as BasicSR's ``tensor2img`` and cv2 give), uint8 or float.
        img2: Image of the same shape.
        crop_border: Pixels cropped from each edge before the comparison.
        input_order: 'HWC' or 'CHW'.
        device: Where the network runs; default the current CUDA device if there is one, else the CPU.
        kwargs: The rest of BasicSR's metric option dict; without ``better`` (BasicSR's ``calculate_metric``
            passes it), a warning says once that ``better: lower`` is missing.

    Returns:
        float: LPIPS (v0.1, AlexNet).
    """
    warn_if_better_missing(METRIC_NAME, 'calculate_lpips', kwargs)
    # normalize: the images come in [0, 1]; LPIPS expects [-1, 1]
    return perceptual_distance(lpips_network(device), img, img2, crop_border, input_order, normalize=True)
