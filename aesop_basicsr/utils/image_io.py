"""Writing images so that an interrupted run never leaves a half-written file behind."""
import os

import cv2
import numpy as np


def write_png(path: str, image: np.ndarray) -> None:
    """Write a PNG so that ``path`` either does not exist or holds the whole image; raise on failure."""
    ok, encoded = cv2.imencode('.png', image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise OSError(f'could not encode {path!r} as PNG.')
    partial_path = path + '.part'
    with open(partial_path, 'wb') as f:
        f.write(encoded.tobytes())
    os.replace(partial_path, path)
