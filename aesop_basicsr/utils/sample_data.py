"""Small paired SR datasets built from the real photos that ship with scikit-image.

Used by the tests and the demo, so that both run offline with no dataset to download.
"""
import os
from os import path as osp
from typing import Dict, List, Sequence

import cv2
import numpy as np
from basicsr.utils.matlab_functions import imresize

# skimage.data photos that load offline (RGB, uint8)
PHOTO_NAMES = ('astronaut', 'coffee', 'chelsea', 'rocket', 'immunohistochemistry', 'coins', 'camera', 'page')


def load_photo(name: str) -> np.ndarray:
    """An skimage sample photo as an HxWx3 uint8 BGR image (BasicSR/OpenCV convention)."""
    from skimage import data
    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2BGR)


def matlab_bicubic_resize(image_bgr: np.ndarray, factor: float) -> np.ndarray:
    """MATLAB-compatible bicubic resizing by ``factor`` (BasicSR's ``imresize``), uint8 in and out."""
    resized = imresize(image_bgr.astype(np.float32) / 255., factor)
    return np.clip(np.round(resized * 255.), 0, 255).astype(np.uint8)


def bicubic_downscale(hr_bgr: np.ndarray, scale: int) -> np.ndarray:
    """The LR image of an HR image: MATLAB bicubic by ``1 / scale``, as the paper's data."""
    return matlab_bicubic_resize(hr_bgr, 1 / scale)


def write_paired_dataset(root: str, scale: int = 4, hr_size: int = 128, names: Sequence[str] = PHOTO_NAMES[:4],
                         crops_per_photo: int = 1) -> Dict[str, str]:
    """Write ``root/hr`` and ``root/lr_x{scale}`` PNG pairs of ``hr_size`` crops (centre first, then a grid).

    Returns the two folders as ``{'gt': ..., 'lq': ...}``.
    """
    if hr_size % scale:
        raise ValueError(f'hr_size={hr_size} must be divisible by scale={scale}.')
    folders = {'gt': osp.join(root, 'hr'), 'lq': osp.join(root, f'lr_x{scale}')}
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    for name in names:
        photo = load_photo(name)
        for index, (top, left) in enumerate(_crop_origins(photo.shape[:2], hr_size, crops_per_photo)):
            hr = photo[top:top + hr_size, left:left + hr_size]
            stem = f'{name}_{index:02d}'
            cv2.imwrite(osp.join(folders['gt'], f'{stem}.png'), hr)
            cv2.imwrite(osp.join(folders['lq'], f'{stem}.png'), bicubic_downscale(hr, scale))
    return folders


def _crop_origins(shape: Sequence[int], size: int, count: int) -> List[tuple]:
    height, width = shape
    if height < size or width < size:
        raise ValueError(f'a {height}x{width} photo is smaller than the crop size {size}.')
    origins = [((height - size) // 2, (width - size) // 2)]
    rows, cols = range(0, height - size + 1, size), range(0, width - size + 1, size)
    origins += [(r, c) for r in rows for c in cols if (r, c) != origins[0]]
    return origins[:count]
