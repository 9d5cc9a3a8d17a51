"""The two figures the AESOP authors judge an auto-encoder itself by, per HR image.

- reconstruction PSNR / SSIM: psi(HR) = D(E(HR)) against HR (Y channel, ``scale`` px border cropped), how
  much of the image the auto-encoder keeps;
- code PSNR: E(HR) against the MATLAB-bicubic LR image (BasicSR's ``imresize``; Y channel, 1 px LR border
  cropped, as ``AESOPAEModel`` validates ``psnr_lr``), how LR-like its code is.

They are not the supplement's AE-PSNR and LR-PSNR, which judge an SR *output* (psi(SR) vs psi(HR), and the
downscales of SR vs HR: ``calculate_ae_psnr``, ``calculate_lr_psnr``).

Both images are quantised to 8 bits exactly as BasicSR's validation does (``tensor2img``) and saved, so
that every figure can be recomputed from the files with ``calculate_psnr``. The PSNR of plain bicubic
upscaling of the same LR image is reported beside the reconstruction PSNR as a weight-free yardstick.
"""
import os
from os import path as osp
from typing import Dict, List

import numpy as np
import torch
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import tensor2img
from torch import nn

from aesop_basicsr.utils.image_io import write_png
from aesop_basicsr.utils.panels import read_image, to_tensor
from aesop_basicsr.utils.sample_data import bicubic_downscale, matlab_bicubic_resize

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def list_images(folder: str, option: str = '--images') -> List[str]:
    """The image files of a folder, sorted by name; an error naming ``option`` if there are none."""
    if not osp.isdir(folder):
        raise ValueError(f'{option}: {folder!r} is not a folder.')
    files = sorted(osp.join(folder, n) for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise ValueError(f'{option}: {folder!r} holds no images ({", ".join(IMAGE_SUFFIXES)}).')
    return files


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so that height and width are multiples of ``scale`` (BasicSR's mod crop)."""
    height, width = image.shape[0] - image.shape[0] % scale, image.shape[1] - image.shape[1] % scale
    return image[:height, :width]


@torch.no_grad()
def reconstruct(autoencoder: nn.Module, hr: np.ndarray) -> Dict[str, np.ndarray]:
    """uint8 BGR HR -> {'ae': psi(HR), 'code': E(HR)} as uint8 BGR images."""
    device = next(autoencoder.parameters(), torch.empty(0)).device
    z = autoencoder.encode(to_tensor(hr).to(device))
    return {'ae': tensor2img([autoencoder.decode(z).cpu()]), 'code': tensor2img([z.cpu()])}


def evaluate_image(autoencoder: nn.Module, hr_path: str, out_dir: str) -> Dict[str, float]:
    """Reconstruction PSNR/SSIM, code PSNR and the bicubic yardstick of one HR image; writes its images under
    ``out_dir``."""
    scale = int(autoencoder.scale)
    hr = mod_crop(read_image(hr_path, '--images'), scale)
    if min(hr.shape[:2]) < 4 * scale:
        raise ValueError(f'--images: {hr_path!r} is {hr.shape[0]}x{hr.shape[1]}, too small for scale {scale}.')
    lr = bicubic_downscale(hr, scale)
    out = reconstruct(autoencoder, hr)
    stem = osp.splitext(osp.basename(hr_path))[0]
    for tag, image in (('hr', hr), ('ae', out['ae']), ('code', out['code']), ('lr_bicubic', lr)):
        write_png(osp.join(out_dir, f'{stem}_{tag}.png'), image)
    bicubic = matlab_bicubic_resize(lr, scale)
    return {
        'recon_psnr': float(calculate_psnr(out['ae'], hr, crop_border=scale, test_y_channel=True)),
        'recon_ssim': float(calculate_ssim(out['ae'], hr, crop_border=scale, test_y_channel=True)),
        'code_psnr': float(calculate_psnr(out['code'], lr, crop_border=1, test_y_channel=True)),
        'bicubic_psnr': float(calculate_psnr(bicubic, hr, crop_border=scale, test_y_channel=True)),
    }
