"""A weight-free measure of blur: the SR image's spectral energy above the LR Nyquist frequency, relative to HR's.

An x``scale`` LR image holds no frequency above ``1 / (2 * scale)`` cycles per HR pixel (its Nyquist
frequency) in either direction. Whatever an SR network puts there is detail it invented (the
"perceptual variance" of AESOP, Sec. 3). The ratio

    HF(SR) / HF(HR),   HF(x) = sum of |FFT(w * (Y(x) - mean))|^2 over max(|u|, |v|) > 1 / (2 * scale)

(Y channel, ``w`` a 2-D Hann window against the FFT's wrap-around edges) is 1 for an image as
detailed as HR, below 1 for a blurred one (bicubic upscaling, a pixel-loss-trained network) and above
1 for one with more high-frequency energy than HR (noise, GAN artefacts). It says nothing about where
the energy lies: judge it next to PSNR/SSIM.
"""
import numpy as np
from basicsr.metrics.metric_util import reorder_image, to_y_channel
from basicsr.utils.registry import METRIC_REGISTRY

from aesop_basicsr.utils.registry import register


def high_frequency_energy(image: np.ndarray, cutoff: float) -> float:
    """Windowed spectral energy of a 2-D float image above ``cutoff`` cycles/pixel (square pass region)."""
    if image.ndim != 2:
        raise ValueError(f'high_frequency_energy takes a 2-D (H, W) image; got shape {image.shape}.')
    height, width = image.shape
    window = np.outer(np.hanning(height), np.hanning(width))
    spectrum = np.abs(np.fft.fft2((image - image.mean()) * window))**2
    fy, fx = np.abs(np.fft.fftfreq(height))[:, None], np.abs(np.fft.fftfreq(width))[None, :]
    return float(spectrum[np.maximum(fy, fx) > cutoff].sum())


def _grey(image: np.ndarray, test_y_channel: bool) -> np.ndarray:
    """(H, W) float: the Y channel of a BGR image (or the channel mean), a single channel as it is."""
    if image.ndim == 2:
        return image
    if image.shape[2] == 3:
        return to_y_channel(image)[..., 0].astype(np.float64) if test_y_channel else image.mean(axis=2)
    return image.mean(axis=2)


@register(METRIC_REGISTRY)
def calculate_hf_energy_ratio(img: np.ndarray,
                              img2: np.ndarray,
                              crop_border: int,
                              scale: int = 4,
                              input_order: str = 'HWC',
                              test_y_channel: bool = True,
                              **kwargs) -> float:
    """HF(img) / HF(img2) above the x``scale`` LR Nyquist frequency (``img`` = SR, ``img2`` = HR), in [0, 255] images.

    1 = as much detail as HR, < 1 = blurred, > 1 = more high-frequency energy than HR.
    """
    if img.shape != img2.shape:
        raise ValueError(f'calculate_hf_energy_ratio: image shapes differ: {img.shape}, {img2.shape}.')
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f'calculate_hf_energy_ratio: scale={scale!r} must be a positive integer.')
    img = reorder_image(img, input_order=input_order).astype(np.float64)
    img2 = reorder_image(img2, input_order=input_order).astype(np.float64)
    if crop_border:
        img, img2 = img[crop_border:-crop_border, crop_border:-crop_border], img2[crop_border:-crop_border,
                                                                                   crop_border:-crop_border]
    img, img2 = _grey(img, test_y_channel), _grey(img2, test_y_channel)
    cutoff = 1 / (2 * scale)
    reference = high_frequency_energy(img2, cutoff)
    if reference <= 0:
        raise ValueError('calculate_hf_energy_ratio: the reference (HR) image has no energy above the LR Nyquist '
                         'frequency (a flat or LR-smooth image); the ratio is undefined.')
    return high_frequency_energy(img, cutoff) / reference
