"""What one image file holds, as BasicSR will read it: size and sample depth from the header, or by decoding.

BasicSR reads every training image with ``cv2.imdecode(..., IMREAD_COLOR)`` (``basicsr.utils.imfrombytes``),
which turns 8- and 16-bit images, grey or colour, with or without alpha, into 8-bit BGR, and returns
``None`` for an empty, truncated or damaged file and for 32-bit (integer or float) samples. The header
read here (Pillow, which parses only the first bytes of a file) finds the first and the last kind without
decoding; a file truncated after its header is found only by decoding it (:func:`decode_as_basicsr`).
"""
import contextlib
import io
import os
from dataclasses import dataclass
from typing import Iterator, Union

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

Source = Union[str, bytes, memoryview]
EXIF_ORIENTATION = 0x0112
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # OpenCV's IMREAD_COLOR applies them: width and height swap


@dataclass(frozen=True)
class ImageSize:
    """An image's width and height in pixels."""
    width: int
    height: int

    def __str__(self) -> str:
        return f'{self.width}x{self.height}'


class UnreadableImage(Exception):
    """The image cannot be read as BasicSR reads it; ``str()`` says why (e.g. ``empty file, 0 bytes``)."""


def _thirty_two_bit(mode: str, image_format: str) -> bool:
    # Pillow opens 16-bit grey PNGs as I;16 (older versions: I), 32-bit integer and float samples as I and F
    return mode == 'F' or mode.startswith(('F;', 'I;32')) or (mode == 'I' and image_format != 'PNG')


def _exif_orientation(image: Image.Image) -> int:
    # only from EXIF the header already holds (a PNG's getexif() would decode the image)
    exif = image.info.get('exif')
    if not exif:
        return 1
    try:
        exif_data = Image.Exif()
        exif_data.load(exif)
        return int(exif_data.get(EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001  (damaged EXIF: OpenCV then ignores it too)
        return 1


def read_header(source: Source) -> ImageSize:
    """Size of the image in ``source`` (a file path or the file's bytes), from its header only.

    The size is the one BasicSR gets: after the EXIF orientation that OpenCV applies.

    Pillow refuses to open images over ``Image.MAX_IMAGE_PIXELS`` (a guard for decoding, which this does
    not do): call it within :func:`pillow_size_limit_lifted` for datasets of very large images.

    Raises:
        UnreadableImage: empty, not an image, a damaged header, or samples of 32 bits (BasicSR reads 8 and 16).
    """
    try:
        with Image.open(io.BytesIO(source) if not isinstance(source, str) else source) as image:
            size, mode, image_format = image.size, image.mode, image.format or ''
            if _exif_orientation(image) in TRANSPOSING_ORIENTATIONS:
                size = size[::-1]
    except UnidentifiedImageError:
        empty = len(source) == 0 if not isinstance(source, str) else os.path.getsize(source) == 0
        raise UnreadableImage('empty file, 0 bytes' if empty else 'not an image file (unknown format)') from None
    except IsADirectoryError:
        raise UnreadableImage('a folder, not an image file') from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise UnreadableImage(f'damaged header: {err}') from None
    if _thirty_two_bit(mode, image_format):
        raise UnreadableImage(f'{image_format} with 32-bit samples (mode {mode}); BasicSR reads 8- and 16-bit images')
    return ImageSize(*size)


@contextlib.contextmanager
def pillow_size_limit_lifted() -> Iterator[None]:
    """Let :func:`read_header` open images of any size (Pillow's limit guards decoding); restored afterwards."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def decode_as_basicsr(content: Union[bytes, memoryview]) -> ImageSize:
    """Size of the image decoded from ``content`` exactly as BasicSR's ``imfrombytes`` decodes it.

    Raises:
        UnreadableImage: empty, or OpenCV cannot decode it (truncated, damaged, 32-bit samples).
    """
    if len(content) == 0:
        raise UnreadableImage('empty file, 0 bytes')
    image = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UnreadableImage('OpenCV cannot decode it: truncated or damaged')
    return ImageSize(image.shape[1], image.shape[0])
