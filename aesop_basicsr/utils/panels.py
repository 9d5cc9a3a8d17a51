"""PNG panels that show what AESOP penalises: |SR - HR| next to |psi(SR) - psi(HR)| (Eq. 8).

Shared by ``aesop-demo`` and ``aesop-inspect``. Images are HxWx3 uint8 BGR arrays (OpenCV/BasicSR
convention); error maps are HxW float arrays in image units ([0, 1] per channel).
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from basicsr.utils import img2tensor
from torch import Tensor, nn

# Both error maps of a panel share one colour scale, so that their colours compare directly:
# black is no error, the brightest colour an absolute error of ERROR_MAX (about 25 grey levels)
# or more, on a square-root scale so that the small errors AESOP leaves stay visible.
ERROR_MAX = 0.1
HEADER_HEIGHT = 18  # px of caption strip above every tile
GAP = 4  # px between tiles
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def to_tensor(image: np.ndarray) -> Tensor:
    """uint8 BGR HxWx3 -> float RGB (1, 3, H, W) in [0, 1], as BasicSR's datasets feed networks."""
    return img2tensor(image.astype(np.float32) / 255., bgr2rgb=True, float32=True).unsqueeze(0)


def abs_error_map(a: Tensor, b: Tensor) -> np.ndarray:
    """Per-pixel |a - b| averaged over channels, (H, W) float64, for (1, C, H, W) tensors."""
    if a.shape != b.shape:
        raise ValueError(f'cannot compare tensors of shapes {tuple(a.shape)} and {tuple(b.shape)}.')
    return (a - b).abs().mean(dim=1)[0].detach().cpu().double().numpy()


@torch.no_grad()
def error_maps(sr: np.ndarray, hr: np.ndarray, autoencoder: nn.Module) -> Tuple[np.ndarray, np.ndarray]:
    """(|SR - HR|, |psi(SR) - psi(HR)|) for uint8 BGR images: what L1 and AESOP each penalise."""
    sr_t, hr_t = to_tensor(sr), to_tensor(hr)
    device = next(autoencoder.parameters(), torch.empty(0)).device
    psi_sr, psi_hr = autoencoder(sr_t.to(device)), autoencoder(hr_t.to(device))
    return abs_error_map(sr_t, hr_t), abs_error_map(psi_sr, psi_hr)


def colorize(error: np.ndarray, error_max: float = ERROR_MAX) -> np.ndarray:
    """An error map as a uint8 BGR heat map (inferno, square-root scale): black = 0, yellow >= error_max."""
    scaled = np.round(np.sqrt(np.clip(error / error_max, 0, 1)) * 255.).astype(np.uint8)
    return cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO)


def caption(tile: np.ndarray, text: str) -> np.ndarray:
    """The tile with a black caption strip of HEADER_HEIGHT px on top (text clipped to the tile width)."""
    header = np.zeros((HEADER_HEIGHT, tile.shape[1], 3), np.uint8)
    cv2.putText(header, text, (3, HEADER_HEIGHT - 5), _FONT, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([header, tile], axis=0)


def _join(tiles: Sequence[np.ndarray], axis: int) -> np.ndarray:
    parts = []
    for i, tile in enumerate(tiles):
        if i:
            shape = list(tile.shape)
            shape[axis] = GAP
            parts.append(np.full(shape, 255, np.uint8))
        parts.append(tile)
    return np.concatenate(parts, axis=axis)


def captioned_row(tiles: Sequence[Tuple[str, np.ndarray]]) -> np.ndarray:
    """Same-size uint8 BGR tiles side by side, each under its caption, GAP px of white between them."""
    shapes = {tile.shape for _, tile in tiles}
    if len(shapes) != 1:
        raise ValueError(f'panel tiles must share one size; got {sorted(shapes)}.')
    return _join([caption(tile, text) for text, tile in tiles], axis=1)


def comparison_panel(tiles: Sequence[Tuple[str, np.ndarray]]) -> np.ndarray:
    """One row, e.g. bicubic | L1-GAN | AESOP-GAN | HR."""
    return captioned_row(tiles)


def error_panel(rows: Sequence[Tuple[str, np.ndarray, np.ndarray, np.ndarray]],
                error_max: float = ERROR_MAX) -> np.ndarray:
    """One row per SR image: SR | |SR-HR| | |AE(SR)-AE(HR)|, all error maps on the same colour scale.

    ``rows`` holds (name, SR image, |SR-HR| map, |AE(SR)-AE(HR)| map). Each map's caption gives
    its mean, the figure L1 and AESOP (with an l1 criterion) average over channels and pixels.
    """
    drawn = [
        captioned_row([(name, sr), (f'|SR-HR|  mean {pix.mean():.4f}', colorize(pix, error_max)),
                       (f'|AE(SR)-AE(HR)|  mean {ae.mean():.4f}', colorize(ae, error_max))])
        for name, sr, pix, ae in rows
    ]
    return _join(drawn, axis=0)


def panel_size(image_hw: Tuple[int, int], columns: int, rows: int = 1) -> Tuple[int, int]:
    """(height, width) of a panel of ``rows`` x ``columns`` tiles of ``image_hw``."""
    height, width = image_hw
    return rows * (height + HEADER_HEIGHT) + (rows - 1) * GAP, columns * width + (columns - 1) * GAP


def read_image(path: str, option: str, expect_hw: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Read an image file as uint8 BGR HxWx3 (grey is replicated), with errors naming ``option``."""
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f'{option}: {path!r} is missing or not an image OpenCV can read.')
    if image.dtype != np.uint8:
        raise ValueError(f'{option}: {path!r} is {image.dtype}; only 8-bit images are supported.')
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    elif image.shape[2] == 4:
        image = image[..., :3]
    if expect_hw is not None and image.shape[:2] != tuple(expect_hw):
        raise ValueError(f'{option}: {path!r} is {image.shape[0]}x{image.shape[1]} but must be '
                         f'{expect_hw[0]}x{expect_hw[1]} to match the other image.')
    return np.ascontiguousarray(image)
