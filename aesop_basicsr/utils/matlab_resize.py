"""MATLAB's bicubic ``imresize`` downscaling computed in float64 (BasicSR's algorithm, BasicSR's weights).

BasicSR's own ``imresize`` works in float32; the authors made their benchmark LR images in float64
(their test files read them from a folder named ``sr_dataset_fp64mod12``). ``aesop-prepare`` rounds
the result to 8 bits; ``calculate_lr_psnr`` compares two downscales unrounded.
"""
import numpy as np
import torch
from basicsr.utils.matlab_functions import calculate_weights_indices


def resize_matrix(in_length: int, scale: float) -> np.ndarray:
    """(out_length, in_length) float64 matrix of MATLAB's bicubic ``imresize`` along one axis.

    The weights and taps are BasicSR's ``calculate_weights_indices`` (antialiased cubic, a = -0.5),
    evaluated in float64; the symmetric border copies of BasicSR's ``imresize`` are folded into the matrix.
    """
    out_length = int(np.ceil(in_length * scale))
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # BasicSR builds its coordinates with torch.linspace
    try:
        weights, indices, sym_start, _ = calculate_weights_indices(in_length, out_length, scale, 'cubic', 4, True)
    finally:
        torch.set_default_dtype(default)
    weights, indices = weights.double().numpy(), indices.long().numpy() - sym_start  # taps in the unpadded image
    # symmetric padding (edge sample repeated, as BasicSR flips the border rows including the edge one)
    indices = np.where(indices < 0, -indices - 1, indices)
    indices = np.where(indices >= in_length, 2 * in_length - indices - 1, indices)
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    np.add.at(matrix, (np.repeat(np.arange(out_length), weights.shape[1]), indices.ravel()), weights.ravel())
    return matrix


def matlab_bicubic_downscale(image: np.ndarray, scale: int) -> np.ndarray:
    """(H, W[, C]) image, any range -> float64 (ceil(H / scale), ceil(W / scale)[, C]), not rounded or clipped.

    MATLAB ``imresize(image, 1 / scale, 'bicubic')`` with antialiasing: rows first, then columns, as BasicSR.
    """
    image = np.asarray(image, dtype=np.float64)
    rows, cols = resize_matrix(image.shape[0], 1 / scale), resize_matrix(image.shape[1], 1 / scale)
    resized = np.tensordot(rows, image, axes=(1, 0))
    return np.moveaxis(np.tensordot(cols, resized, axes=(1, 1)), 0, 1)
