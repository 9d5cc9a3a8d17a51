"""LR-PSNR: the PSNR between the MATLAB-bicubic downscales of HR and SR (the paper's supplement).

The authors define it (AESOP-SR issue tracker) as LR-PSNR = PSNR(down(HR), down(SR)): how faithful the
SR image is to what the LR image determines. Detail above the LR Nyquist frequency, which the LR
image cannot hold, barely moves it; an error at the scale of the LR image moves it as much as PSNR.

Convention here: both images are downscaled by ``scale`` with MATLAB's antialiased bicubic ``imresize``
(BasicSR's algorithm, computed in float64, :mod:`aesop_basicsr.utils.matlab_resize`), neither rounded nor
clipped; then BasicSR's ``calculate_psnr`` compares the two LR images on the Y channel if asked, with
``crop_border // scale`` LR pixels cropped from each edge (the region PSNR's ``crop_border`` leaves, at
LR resolution: 4 HR pixels = 1 LR pixel at x4).
"""
import numpy as np
from basicsr.metrics import calculate_psnr
from basicsr.metrics.metric_util import reorder_image
from basicsr.utils.registry import METRIC_REGISTRY

from aesop_basicsr.utils.matlab_resize import matlab_bicubic_downscale
from aesop_basicsr.utils.registry import register

METRIC_NAME = 'calculate_lr_psnr'


@register(METRIC_REGISTRY)
def calculate_lr_psnr(img: np.ndarray,
                      img2: np.ndarray,
                      crop_border: int,
                      scale: int = 4,
                      input_order: str = 'HWC',
                      test_y_channel: bool = False,
                      **kwargs) -> float:
    """PSNR (dB) between the x``scale`` MATLAB-bicubic downscales of ``img`` (SR) and ``img2`` (HR); higher is better.

    In an option file: ``lr_psnr: {type: calculate_lr_psnr, crop_border: 4, scale: 4, test_y_channel: true}``.

    Args:
        img, img2: Images with range [0, 255], BGR (BasicSR's ``tensor2img``), uint8 or float, the same shape.
        crop_border: Border in HR pixels, as for PSNR; ``crop_border // scale`` LR pixels are cropped.
        scale: The SR factor: the images are downscaled by it.
        input_order: 'HWC' or 'CHW'.
        test_y_channel: PSNR on the Y channel (ITU-R BT.601, as ``calculate_psnr``).

    Raises:
        ValueError: images of different shapes, a scale that is not a positive integer.
    """
    if np.shape(img) != np.shape(img2):
        raise ValueError(f'{METRIC_NAME}: image shapes differ: {np.shape(img)}, {np.shape(img2)}.')
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f'{METRIC_NAME}: scale={scale!r} must be a positive integer.')
    down = [matlab_bicubic_downscale(reorder_image(np.asarray(x), input_order=input_order), scale) for x in (img, img2)]
    return float(calculate_psnr(down[0], down[1], crop_border // scale, input_order='HWC',
                                test_y_channel=test_y_channel))
