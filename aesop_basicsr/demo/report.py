"""The demo's report: SR outputs of each trained network on the validation images, a metric table
(PSNR/SSIM on Y and PSNR on RGB with a 4 px border crop, BasicSR's own functions; LPIPS where available;
the HF-energy ratio, a weight-free blur measure; the mean-colour offset from HR), panels, and the report
card of the demo's auto-encoder.
"""
import csv
import json
import math
import os
from collections import OrderedDict
from os import path as osp
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import scandir, tensor2img
from basicsr.utils.registry import METRIC_REGISTRY
from torch import nn

from aesop_basicsr.losses.aesop_loss import AESOPLoss
from aesop_basicsr.metrics.colour_offset_metric import mean_colour_offset
from aesop_basicsr.metrics.hf_energy_metric import calculate_hf_energy_ratio
from aesop_basicsr.report_card.card import write_report_card
from aesop_basicsr.utils.checkpoint import load_pretrained
from aesop_basicsr.utils.image_io import write_png
from aesop_basicsr.utils.panels import comparison_panel, error_maps, error_panel, read_image, to_tensor
from aesop_basicsr.utils.sample_data import matlab_bicubic_resize

CROP_BORDER = 4
AE_CARD_DIR = 'ae_report_card'
AE_CARD_CROP = 128  # px crops of the frequency sweep (the validation images are 192 px)

# method key -> caption; 'bicubic' is not a network
METHODS = OrderedDict([('bicubic', 'bicubic'), ('psnr', 'PSNR net (start)'), ('gan_l1', 'L1-GAN'),
                       ('gan_aesop', 'AESOP-GAN')])
# per-channel mean-colour offsets (SR - HR, grey levels): in metrics.json/csv and the colour table
OFFSET_KEYS = ('offset_r', 'offset_g', 'offset_b')


def load_network(net_opt: Dict[str, Any], checkpoint: str, param_key: str = 'params') -> nn.Module:
    """A network from its option dict with a trained checkpoint's weights, in eval mode on the CPU."""
    net = build_network(dict(net_opt))
    load_pretrained(net, checkpoint, param_key, True, 'checkpoint', 'param_key')
    return net.eval()


@torch.no_grad()
def super_resolve(net: nn.Module, lr: np.ndarray) -> np.ndarray:
    """uint8 BGR LR image -> uint8 BGR SR image, quantised exactly as BasicSR's validation does."""
    return tensor2img([net(to_tensor(lr)).cpu()])


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-compatible bicubic upscaling (BasicSR's ``imresize``), uint8 BGR in and out: the baseline row."""
    return matlab_bicubic_resize(lr, scale)


def lpips_metric() -> Tuple[Optional[Callable[..., float]], str]:
    """(LPIPS metric function, '') if ``calculate_lpips`` is registered and its weights load offline, else (None, why)."""
    if 'calculate_lpips' not in METRIC_REGISTRY:
        return None, 'no calculate_lpips metric is registered in this install'
    from torchvision.models import AlexNet_Weights
    alexnet = osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(AlexNet_Weights.IMAGENET1K_V1.url))
    if not osp.isfile(alexnet):  # the demo downloads nothing
        return None, f'its AlexNet weights are not on disk ({alexnet})'
    metric = METRIC_REGISTRY.get('calculate_lpips')
    probe = np.zeros((64, 64, 3), np.uint8)  # large enough for every AlexNet tap
    try:
        metric(probe, probe, crop_border=0)
    except Exception as err:  # missing weights surface as many error types (file, hub, import)
        return None, f'calculate_lpips is unavailable ({type(err).__name__}: {str(err).splitlines()[0][:160]})'
    return metric, ''


def image_metrics(sr: np.ndarray, hr: np.ndarray, lpips: Optional[Callable[..., float]],
                  scale: int = 4) -> Dict[str, float]:
    """Every metric of the demo's table for one uint8 BGR SR/HR pair (see METRIC_HEADERS)."""
    offset = mean_colour_offset(sr, hr, CROP_BORDER)
    scores = {'psnr': float(calculate_psnr(sr, hr, CROP_BORDER, test_y_channel=True)),
              'psnr_rgb': float(calculate_psnr(sr, hr, CROP_BORDER, test_y_channel=False)),
              'ssim': float(calculate_ssim(sr, hr, CROP_BORDER, test_y_channel=True)),
              'hf': float(calculate_hf_energy_ratio(sr, hr, CROP_BORDER, scale=scale, test_y_channel=True)),
              'colour': float(np.abs(offset).max())}
    scores.update((key, float(value)) for key, value in zip(OFFSET_KEYS, offset))
    if lpips is not None:
        scores['lpips'] = float(lpips(sr, hr, crop_border=CROP_BORDER))
    return scores


def build_report(root: str, generator_opt: Dict[str, Any], autoencoder_opt: Dict[str, Any],
                 checkpoints: Dict[str, str], ae_checkpoint: str, val_folders: Dict[str, str]) -> Dict[str, Any]:
    """Evaluate every method on the validation pairs; write images/, panels/ and the metric tables under ``root``.

    ``checkpoints`` maps method keys of METHODS (except bicubic) to net_g checkpoints. Returns the
    content of ``metrics.json``.
    """
    nets = {key: load_network(generator_opt, path) for key, path in checkpoints.items()}
    aesop = AESOPLoss(autoencoder_opt, pretrain_network_ae=ae_checkpoint, param_key_ae='params')
    lpips, lpips_note = lpips_metric()
    for sub in ('images', 'panels'):
        os.makedirs(osp.join(root, sub), exist_ok=True)

    per_image: Dict[str, Dict[str, Dict[str, float]]] = {key: OrderedDict() for key in METHODS}
    for name in sorted(scandir(val_folders['gt'], suffix='png')):
        stem = osp.splitext(name)[0]
        hr = read_image(osp.join(val_folders['gt'], name), 'validation HR')
        lr = read_image(osp.join(val_folders['lq'], name), 'validation LR')
        scale = hr.shape[0] // lr.shape[0]
        outputs = {'bicubic': bicubic_upscale(lr, scale)}
        outputs.update({key: super_resolve(net, lr) for key, net in nets.items()})
        maps = {}
        for key, sr in outputs.items():
            write_png(osp.join(root, 'images', f'{stem}_{key}.png'), sr)
            scores = image_metrics(sr, hr, lpips, scale)
            maps[key] = error_maps(sr, hr, aesop.autoencoder)
            scores['l1'], scores['aesop'] = float(maps[key][0].mean()), float(maps[key][1].mean())
            per_image[key][stem] = scores
        write_png(osp.join(root, 'images', f'{stem}_hr.png'), hr)
        tiles = [(METHODS[k], outputs[k]) for k in ('bicubic', 'gan_l1', 'gan_aesop') if k in outputs] + [('HR', hr)]
        write_png(osp.join(root, 'panels', f'{stem}_compare.png'), comparison_panel(tiles))
        rows = [(METHODS[k], outputs[k], *maps[k]) for k in ('gan_l1', 'gan_aesop') if k in outputs]
        write_png(osp.join(root, 'panels', f'{stem}_errors.png'), error_panel(rows))

    metrics = [m for m in ('psnr', 'psnr_rgb', 'ssim', 'lpips', 'hf', 'colour', 'l1', 'aesop') + OFFSET_KEYS
               if m != 'lpips' or lpips is not None]
    report = {
        'metrics': metrics,
        'crop_border': CROP_BORDER,
        'lpips_note': lpips_note,
        'methods': OrderedDict((key, {'label': METHODS[key], 'images': per_image[key],
                                      'mean': {m: float(np.mean([s[m] for s in per_image[key].values()]))
                                               for m in metrics}})
                               for key in METHODS if per_image[key]),
    }
    for value in _numbers(report['methods']):
        if not math.isfinite(value):
            raise ValueError(f'a metric of the demo report is not finite: {report["methods"]}')
    # the auto-encoder's own report card on the same held-out HR images
    hr_paths = [osp.join(val_folders['gt'], name) for name in sorted(scandir(val_folders['gt'], suffix='png'))]
    card = write_report_card(aesop.autoencoder, hr_paths, osp.join(root, AE_CARD_DIR), title='the demo\'s auto-encoder',
                             freq_images=len(hr_paths), crop=AE_CARD_CROP)
    report['ae_report_card'] = {'folder': AE_CARD_DIR, 'mean': card['mean'], 'verdicts': card['verdicts'],
                                'aesop_over_l1_below': card['frequency_response']['aesop_over_l1_below'],
                                'aesop_over_l1_above': card['frequency_response']['aesop_over_l1_above']}
    with open(osp.join(root, 'metrics.json'), 'w') as f:
        json.dump(report, f, indent=2)
    _write_csv(osp.join(root, 'metrics.csv'), report)
    return report


def _numbers(node: Any) -> List[float]:
    if isinstance(node, dict):
        return [v for value in node.values() for v in _numbers(value)]
    return [node] if isinstance(node, float) else []


def _write_csv(path: str, report: Dict[str, Any]) -> None:
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['method', 'image'] + report['metrics'])
        for key, method in report['methods'].items():
            for image, scores in list(method['images'].items()) + [('mean', method['mean'])]:
                writer.writerow([key, image] + [f'{scores[m]:.6f}' for m in report['metrics']])


METRIC_HEADERS = {'psnr': 'PSNR-Y (dB) ↑', 'psnr_rgb': 'PSNR-RGB (dB) ↑', 'ssim': 'SSIM-Y ↑', 'lpips': 'LPIPS ↓',
                  'hf': 'HF energy SR/HR (1 = HR)', 'colour': 'mean-colour offset, worst channel (grey levels) ↓',
                  'l1': 'L1 to HR', 'aesop': 'AESOP to HR'}


DIGITS = {'psnr': 2, 'psnr_rgb': 2, 'hf': 3, 'colour': 1}


def markdown_table(report: Dict[str, Any]) -> str:
    """The mean of every metric per method, as a markdown table (per-channel colour offsets: :func:`colour_table`)."""
    metrics = [m for m in report['metrics'] if m in METRIC_HEADERS]
    lines = ['| method | ' + ' | '.join(METRIC_HEADERS[m] for m in metrics) + ' |',
             '|---|' + '---:|' * len(metrics)]
    for method in report['methods'].values():
        cells = [f'{method["mean"][m]:.{DIGITS.get(m, 4)}f}' for m in metrics]
        lines.append(f'| {method["label"]} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def colour_table(report: Dict[str, Any]) -> str:
    """Each output's mean-colour offset from HR, R/G/B in grey levels, one column per image, as a markdown table."""
    stems = sorted(next(iter(report['methods'].values()))['images'])
    lines = ['| method | ' + ' | '.join(stems) + ' |', '|---|' + '---:|' * len(stems)]
    for method in report['methods'].values():
        cells = ['/'.join(f'{method["images"][stem][key]:+.1f}' for key in OFFSET_KEYS) for stem in stems]
        lines.append(f'| {method["label"]} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
