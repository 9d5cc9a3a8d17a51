"""A colour-cast measure: how far an SR image's mean colour is from HR's, per channel, in grey levels.

PSNR-Y and SSIM-Y see luminance only: an SR network that tints a photo pink (green too low, red and
blue too high) can keep its PSNR-Y. The mean-colour offset

    offset_c = mean(SR_c) - mean(HR_c),   c in (R, G, B),   images in [0, 255]

is 0 for a colour-faithful output; a cast shows as offsets of a few grey levels of opposite sign
(pink: G negative, R and B positive). ``calculate_colour_offset`` (also usable in ``val.metrics``)
reports the largest |offset_c|; ``mean_colour_offset`` all three.
"""
import numpy as np
from basicsr.metrics.metric_util import reorder_image
from basicsr.utils.registry import METRIC_REGISTRY

from aesop_basicsr.metrics.lower_is_better import lower_is_better, warn_if_better_missing
from aesop_basicsr.utils.registry import register


def mean_colour_offset(img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str = 'HWC') -> np.ndarray:
    """(3,) float64 array: mean(img) - mean(img2) per channel, in (R, G, B) order and grey levels.

    ``img`` (SR) and ``img2`` (HR) are BGR colour images in [0, 255] (BasicSR/OpenCV convention), of
    equal shape; ``crop_border`` px are dropped on each side first, as BasicSR's PSNR does.

    Raises:
        ValueError: shapes differ, or the images are not 3-channel.
    """
    if img.shape != img2.shape:
        raise ValueError(f'mean_colour_offset: image shapes differ: {img.shape}, {img2.shape}.')
    img = reorder_image(img, input_order=input_order).astype(np.float64)
    img2 = reorder_image(img2, input_order=input_order).astype(np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'mean_colour_offset: needs 3-channel (BGR) images; got shape {img.shape}.')
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border]
    bgr = img.mean(axis=(0, 1)) - img2.mean(axis=(0, 1))
    return bgr[::-1].copy()


@register(METRIC_REGISTRY)
@lower_is_better
def calculate_colour_offset(img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str = 'HWC',
                            **kwargs) -> float:
    """max over R, G, B of |mean(img_c) - mean(img2_c)|, grey levels (``img`` = SR, ``img2`` = HR, BGR in [0, 255]).

    0 = HR's mean colour; **lower is better** (``val.metrics``: ``colour: {type: calculate_colour_offset,
    crop_border: 4, better: lower}``; without ``better`` a warning says so once, and ``aesop-train`` and
    AESOP's models fill it in). See :func:`mean_colour_offset`.

    Raises:
        ValueError: shapes differ, or the images are not 3-channel.
    """
    warn_if_better_missing('colour offset', 'calculate_colour_offset', kwargs)
    return float(np.abs(mean_colour_offset(img, img2, crop_border, input_order)).max())
