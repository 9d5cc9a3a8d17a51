"""An auto-encoder's report card: reconstruction figures, the loss's frequency response, verdicts and a plot.

:func:`write_report_card` writes into a folder:

- ``report.md``: the figures, one verdict line per figure, the plot;
- ``report.json``: everything in ``report.md``, machine-readable;
- ``per_image.csv``: reconstruction PSNR and SSIM (psi(HR) vs HR), code PSNR (E(HR) vs LR) and bicubic PSNR
  per image;
- ``frequency_response.csv``: the sweep (frequency, L1, AESOP, their ratio, encoder gain and its reference);
- ``frequency_response.png``: the curves with the LR Nyquist frequency marked (matplotlib);
- ``images/``: HR, psi(HR), E(HR) and the MATLAB-bicubic LR per image, so every figure can be recomputed.
"""
import csv
import json
import math
import os
from os import path as osp
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from torch import nn

from aesop_basicsr.report_card.frequency_response import (DEFAULT_AMPLITUDE, FrequencyResponse,
                                                          measure_frequency_response)
from aesop_basicsr.report_card.reconstruction import evaluate_image, mod_crop
from aesop_basicsr.utils.panels import read_image, to_tensor

# verdict thresholds on AESOP / L1 (clearly below and clearly above the LR Nyquist frequency)
GOOD_BELOW, GOOD_ABOVE, GOOD_PEAK_ABOVE = 0.7, 0.3, 0.4
# an encoder code this close to the bicubic LR (code PSNR, dB) is "LR-like"; this far, it is not
LR_CLOSE, LR_FAR = 35.0, 28.0
FIXED_ENCODER_TOLERANCE = 0.02  # measured vs theoretical |H(f)| of the area/bicubic encoders


def fidelity_verdicts(mean: Dict[str, float]) -> Dict[str, str]:
    """One line each on the reconstruction PSNR (against the bicubic yardstick) and the code PSNR."""
    recon = mean['recon_psnr']
    gain = recon - mean['bicubic_psnr']
    if gain >= 1:
        ae = (f'Reconstruction PSNR {recon:.2f} dB is {gain:.2f} dB above bicubic upscaling of the LR image '
              f'({mean["bicubic_psnr"]:.2f} dB): psi keeps what the LR image determines, and more.')
    elif gain >= 0:
        ae = (f'Reconstruction PSNR {recon:.2f} dB is {gain:.2f} dB above bicubic upscaling of the LR image '
              f'({mean["bicubic_psnr"]:.2f} dB): psi keeps about what the LR image determines, little more.')
    else:
        ae = (f'Reconstruction PSNR {recon:.2f} dB is {-gain:.2f} dB below bicubic upscaling of the LR image '
              f'({mean["bicubic_psnr"]:.2f} dB): psi loses content the LR image holds, so AESOP will not '
              'penalise all of the fidelity error (train the AE longer or check its decoder).')
    code = mean['code_psnr']
    if code >= LR_CLOSE:
        lr = f'Code PSNR {code:.2f} dB: E(HR) is close to the bicubic LR image, an LR-like code as the paper intends.'
    elif code >= LR_FAR:
        lr = (f'Code PSNR {code:.2f} dB: E(HR) is roughly the bicubic LR image (below {LR_CLOSE:.0f} dB: it '
              'carries some extra or different content).')
    else:
        lr = (f'Code PSNR {code:.2f} dB: E(HR) is far from the bicubic LR image (below {LR_FAR:.0f} dB): the code '
              'is not an LR image (expected without an LR term, e.g. the real-world recipe).')
    return {'recon_psnr': ae, 'code_psnr': lr}


def response_verdict(response: FrequencyResponse) -> str:
    """One line on AESOP / L1 below and above the LR Nyquist frequency."""
    below, above = response.band_mean('below'), response.band_mean('above')
    high = response.frequencies >= 1.25 * response.nyquist
    peak = int(np.argmax(np.where(high, response.relative, -np.inf)))
    head = (f'AESOP responds at {below:.2f} x L1 below the LR Nyquist frequency ({response.nyquist:.3f} cycles/px) '
            f'and {above:.2f} x L1 above it (at most {response.relative[peak]:.2f}, at '
            f'{response.frequencies[peak]:.3f} cycles/px): ')
    peak_value = float(response.relative[peak])
    if below >= GOOD_BELOW and above <= GOOD_ABOVE and peak_value <= GOOD_PEAK_ABOVE:
        return head + 'good, it penalises what the LR image determines and little of the detail it does not.'
    problems = []
    if below < GOOD_BELOW:
        problems.append(f'weak below (< {GOOD_BELOW}): fidelity errors the LR image determines are under-penalised')
    if above > GOOD_ABOVE or peak_value > GOOD_PEAK_ABOVE:
        problems.append(f'leaks above (mean > {GOOD_ABOVE} or peak > {GOOD_PEAK_ABOVE}): it still penalises detail '
                        'the LR image does not determine (aliased through the encoder), and will blur like L1 in part')
    return head + '; '.join(problems) + '.'


def encoder_verdict(response: FrequencyResponse) -> str:
    """One line on the measured encoder gain against its reference transfer function."""
    reference = response.reference['gain']
    if response.encoder_type in ('area', 'bicubic'):
        error = float(np.abs(response.encoder_gain - reference).max())
        state = 'matches' if error <= FIXED_ENCODER_TOLERANCE else 'does NOT match'
        return (f'Encoder gain {state} the {response.reference["label"]} transfer function: max |measured - theory| '
                f'= {error:.4f} (tolerance {FIXED_ENCODER_TOLERANCE}).')
    mask = response.frequencies <= response.nyquist
    error = float(np.abs(response.encoder_gain[mask] - reference[mask]).max())
    high = response.frequencies >= 1.25 * response.nyquist
    leak = float(response.encoder_gain[high].max()) if high.any() else float('nan')
    return (f'Learned encoder: its gain differs from the MATLAB-bicubic LR\'s by at most {error:.3f} below the LR '
            f'Nyquist frequency; clearly above it (f >= 1.25 x Nyquist) its largest gain, aliased into the code, '
            f'is {leak:.3f} (MATLAB bicubic: {float(reference[high].max()) if high.any() else float("nan"):.3f}).')


def plot_response(response: FrequencyResponse, path: str, title: str) -> None:
    """Two panels: L1 and AESOP per unit amplitude, and the encoder's gain with its reference; LR Nyquist marked."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    f = response.frequencies
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot(f, response.l1, 'o-', color='tab:blue', label='L1: mean |h|')
    ax1.plot(f, response.aesop, 's-', color='tab:red', label='AESOP: mean |psi(x+h) - psi(x)|')
    ax1.set_ylabel('loss per unit perturbation amplitude')
    ax1.set_title('Loss response to a sinusoid h')
    ax2.plot(f, response.encoder_gain, 's-', color='tab:green', label='E: measured gain')
    ax2.plot(f, response.reference['gain'], 'k--', label=response.reference['label'])
    ax2.set_ylabel('|H(f)|')
    ax2.set_title('Encoder transfer function')
    for ax in (ax1, ax2):
        ax.axvline(response.nyquist, color='grey', linestyle=':', label=f'LR Nyquist 1/(2x{response.scale})')
        ax.set_xlabel('frequency (cycles per HR pixel)')
        ax.set_xlim(0, 0.5)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[top:top + size, left:left + size]


def write_report_card(autoencoder: nn.Module,
                      hr_paths: Sequence[str],
                      out_dir: str,
                      title: str = 'auto-encoder',
                      freq_images: int = 4,
                      crop: int = 128,
                      amplitude: float = DEFAULT_AMPLITUDE,
                      source: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Evaluate ``autoencoder`` (an ``AESOPAutoEncoder`` in eval mode) on HR images; write the card to ``out_dir``.

    The sweep uses centre crops of ``crop`` px from the first ``freq_images`` images at least that large.
    Returns the content of ``report.json``.
    """
    scale = int(autoencoder.scale)
    if crop % (2 * scale) or crop < 8 * scale:
        raise ValueError(f'--crop: {crop} must be a multiple of 2 x scale = {2 * scale} and at least {8 * scale}.')
    os.makedirs(osp.join(out_dir, 'images'), exist_ok=True)
    autoencoder.eval()

    per_image: Dict[str, Dict[str, float]] = {}
    crops = []
    for path in hr_paths:
        stem = osp.splitext(osp.basename(path))[0]
        per_image[stem] = evaluate_image(autoencoder, path, osp.join(out_dir, 'images'))
        hr = mod_crop(read_image(path, '--images'), scale)
        if len(crops) < freq_images and min(hr.shape[:2]) >= crop:
            crops.append(to_tensor(center_crop(hr, crop)))
    if not crops:
        raise ValueError(f'--images: no image is at least {crop}x{crop} px for the frequency sweep; pass a smaller '
                         '--crop.')
    keys = next(iter(per_image.values()))
    mean = {key: float(np.mean([scores[key] for scores in per_image.values()])) for key in keys}
    response = measure_frequency_response(autoencoder, crops, amplitude=amplitude)

    verdicts = fidelity_verdicts(mean)
    verdicts['frequency_response'] = response_verdict(response)
    verdicts['encoder_gain'] = encoder_verdict(response)
    plot_response(response, osp.join(out_dir, 'frequency_response.png'),
                  f'{title}: x{scale}, encoder {response.encoder_type}, {response.crops} crops of {crop} px, '
                  f'amplitude {amplitude}')
    report = {
        'title': title, 'scale': scale, 'encoder_type': response.encoder_type, 'source': source or {},
        'mean': mean, 'per_image': per_image, 'verdicts': verdicts,
        'frequency_response': {'amplitude': amplitude, 'crop': crop, 'crops': response.crops,
                               'lr_nyquist': response.nyquist, 'aesop_over_l1_below': response.band_mean('below'),
                               'aesop_over_l1_above': response.band_mean('above'),
                               'reference': response.reference['label'], 'rows': response.rows()},
    }
    with open(osp.join(out_dir, 'report.json'), 'w') as f:
        json.dump(report, f, indent=2, allow_nan=True)
    _write_csv(osp.join(out_dir, 'per_image.csv'), ['image', 'recon_psnr', 'recon_ssim', 'code_psnr', 'bicubic_psnr'],
               [dict(image=stem, **scores) for stem, scores in per_image.items()] + [dict(image='mean', **mean)])
    rows = response.rows()
    _write_csv(osp.join(out_dir, 'frequency_response.csv'), list(rows[0]), rows)
    with open(osp.join(out_dir, 'report.md'), 'w') as f:
        f.write(report_markdown(report))
    return report


def _write_csv(path: str, columns: List[str], rows: List[Dict[str, Any]]) -> None:
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row[c] if isinstance(row[c], str) else f'{row[c]:.6f}' for c in columns])


def _fmt(value: float, digits: int = 2) -> str:
    return 'inf' if math.isinf(value) else f'{value:.{digits}f}'


def report_markdown(report: Dict[str, Any], heading: str = '#', plot_prefix: str = '') -> str:
    """The card as markdown (``plot_prefix`` makes the plot path relative to another folder)."""
    fr, mean = report['frequency_response'], report['mean']
    lines = [f'{heading} AE report card: {report["title"]}', '',
             f'x{report["scale"]}, encoder `{report["encoder_type"]}`, {len(report["per_image"])} HR images. '
             'Reconstruction PSNR/SSIM: psi(HR) vs HR (Y, '
             f'{report["scale"]} px border); code PSNR: E(HR) vs MATLAB-bicubic LR (Y, 1 px border); bicubic: '
             'bicubic upscaling of that LR vs HR. (Not the supplement\'s AE-PSNR / LR-PSNR, which judge an SR '
             'output.)', '',
             '| image | reconstruction PSNR (dB) | reconstruction SSIM | code PSNR (dB) | bicubic PSNR (dB) |',
             '|---|---:|---:|---:|---:|']
    for stem, s in list(report['per_image'].items()) + [('**mean**', mean)]:
        lines.append(f'| {stem} | {_fmt(s["recon_psnr"])} | {s["recon_ssim"]:.4f} | {_fmt(s["code_psnr"])} | '
                     f'{_fmt(s["bicubic_psnr"])} |')
    lines += ['', f'- {report["verdicts"]["recon_psnr"]}', f'- {report["verdicts"]["code_psnr"]}', '',
              f'Frequency response: sinusoids of amplitude {fr["amplitude"]} added to {fr["crops"]} centre crops of '
              f'{fr["crop"]} px (horizontal and vertical, random phase); response = loss / amplitude. LR Nyquist '
              f'frequency: {fr["lr_nyquist"]:.4f} cycles per HR pixel.', '',
              f'![frequency response]({plot_prefix}frequency_response.png)', '',
              '| f (cycles/HR px) | L1 | AESOP | AESOP / L1 | encoder gain | reference gain |',
              '|---:|---:|---:|---:|---:|---:|']
    for row in fr['rows']:
        lines.append(f'| {row["frequency"]:.4f} | {row["l1"]:.4f} | {row["aesop"]:.4f} | {row["aesop_over_l1"]:.3f} | '
                     f'{row["encoder_gain"]:.4f} | {row["encoder_reference"]:.4f} |')
    lines += ['', f'- {report["verdicts"]["frequency_response"]}', f'- {report["verdicts"]["encoder_gain"]}', '']
    return '\n'.join(lines)
