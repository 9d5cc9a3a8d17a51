"""``aesop-inspect``: what L1 and AESOP see on one SR/HR pair, or an auto-encoder's report card.

    aesop-inspect --ae AE.pth --ae-opt OPTIONS.yml --sr SR.png --hr HR.png [--out panel.png]

prints L1 (mean |SR-HR|), AESOP (``AESOPLoss`` with weight 1, l1: mean |psi(SR)-psi(HR)|, Eq. 8) and
PSNR-Y, and writes the demo's error-map panel: SR | |SR-HR| | |AE(SR)-AE(HR)|.

    aesop-inspect --ae AE.pth --ae-opt OPTIONS.yml --report DIR --images HR_FOLDER

writes the auto-encoder's report card to DIR (``report.md``, JSON/CSV, ``frequency_response.png``):
reconstruction PSNR/SSIM (psi(HR) vs HR) and code PSNR (E(HR) vs LR) per image, and how strongly AESOP
and L1 respond to each spatial frequency
(see :mod:`aesop_basicsr.report_card`).

``--ae-opt`` is an option file holding the auto-encoder: an ``AESOPAEModel`` file (its ``network_g``),
an SR training file with ``AESOPLoss`` as ``pixel_opt`` (its ``autoencoder``), a file that is the AE dict
itself, or the AE dict inline as YAML/JSON, e.g. ``'{type: AESOPAutoEncoder, scale: 4}'``.
"""
import argparse
import os
from os import path as osp
from typing import Any, Dict, List, Mapping, Optional

import aesop_basicsr  # noqa: F401  (registers AESOP into BasicSR; must precede basicsr)
import torch
import yaml
from basicsr.metrics import calculate_psnr

from aesop_basicsr.losses.aesop_loss import AESOPLoss
from aesop_basicsr.report_card.card import write_report_card
from aesop_basicsr.report_card.frequency_response import DEFAULT_AMPLITUDE
from aesop_basicsr.report_card.reconstruction import list_images
from aesop_basicsr.utils.checkpoint import read_checkpoint, select_params
from aesop_basicsr.utils.cli import command
from aesop_basicsr.utils.image_io import write_png
from aesop_basicsr.utils.panels import error_maps, error_panel, read_image, to_tensor


class InspectError(ValueError):
    """Bad command-line input; the message names the flag at fault."""


def find_autoencoder_opt(opt: Any, source: str) -> Dict[str, Any]:
    """The AESOPAutoEncoder option dict inside a parsed option file (or the dict itself)."""
    if not isinstance(opt, Mapping):
        raise InspectError(f'--ae-opt: {source} is a {type(opt).__name__}, not an option dict.')
    if opt.get('type') == 'AESOPAutoEncoder':
        return dict(opt)
    network_g = opt.get('network_g')
    if isinstance(network_g, Mapping) and network_g.get('type') == 'AESOPAutoEncoder':
        return dict(network_g)
    pixel_opt = (opt.get('train') or {}).get('pixel_opt') if isinstance(opt.get('train'), Mapping) else None
    if isinstance(pixel_opt, Mapping) and pixel_opt.get('type') == 'AESOPLoss' and 'autoencoder' in pixel_opt:
        return dict(pixel_opt['autoencoder'])
    if 'type' in opt:
        raise InspectError(f'--ae-opt: {source} has type {opt["type"]!r}, not AESOPAutoEncoder.')
    raise InspectError(f'--ae-opt: no AESOPAutoEncoder in {source}: expected the AE dict itself, network_g '
                       '(an AESOPAEModel option file) or train:pixel_opt:autoencoder (an AESOPLoss run).')


def load_autoencoder_opt(value: str) -> Dict[str, Any]:
    """``--ae-opt``: a YAML option file, or an inline YAML/JSON dict."""
    if osp.isfile(value):
        source = repr(value)
        with open(value) as f:
            text = f.read()
    elif value.lstrip().startswith('{'):
        source, text = 'the inline dict', value
    else:
        raise InspectError(f'--ae-opt: {value!r} is neither an existing option file nor an inline dict '
                           "such as '{type: AESOPAutoEncoder, scale: 4}'.")
    try:
        opt = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InspectError(f'--ae-opt: {source} is not valid YAML/JSON ({err}).') from err
    return find_autoencoder_opt(opt, source)


def choose_param_key(checkpoint: str, param_key: Optional[str]) -> Optional[str]:
    """``--param-key``, else ``params_ema`` when the file has it, else ``params``, else a bare state dict."""
    if param_key is not None:
        return None if param_key in ('', '~', 'none', 'None') else param_key
    content = read_checkpoint(checkpoint, '--ae')
    for key in ('params_ema', 'params'):
        if isinstance(content.get(key), Mapping) or any(k.startswith(key + '.') for k in content):
            return key
    return None


def build_aesop_loss(checkpoint: str, ae_opt: Dict[str, Any], param_key: Optional[str]) -> AESOPLoss:
    """AESOPLoss (weight 1, l1, mean) with the auto-encoder of ``--ae``/``--ae-opt``."""
    key = choose_param_key(checkpoint, param_key)
    select_params(read_checkpoint(checkpoint, '--ae'), key, checkpoint, '--param-key')  # readable, key present
    try:
        return AESOPLoss(ae_opt, loss_weight=1.0, criterion='l1', reduction='mean', pretrain_network_ae=checkpoint,
                         param_key_ae=key, strict_load_ae=True)
    except (ValueError, KeyError, TypeError) as err:
        raise InspectError(f'--ae {checkpoint!r} with --ae-opt {ae_opt}: {err}') from err


def inspect_pair(loss: AESOPLoss, sr_path: str, hr_path: str) -> Dict[str, Any]:
    """L1, AESOP and PSNR-Y of one SR/HR pair, with the two error maps of the panel."""
    hr = read_image(hr_path, '--hr')
    sr = read_image(sr_path, '--sr', expect_hw=hr.shape[:2])
    scale = getattr(loss.autoencoder, 'scale', 1)
    if hr.shape[0] % scale or hr.shape[1] % scale:
        raise InspectError(f'--sr/--hr: the images are {hr.shape[0]}x{hr.shape[1]}, which the auto-encoder '
                           f'(scale {scale}, from --ae-opt) cannot encode: crop them to multiples of {scale}, '
                           'or check that --ae-opt is the auto-encoder for this SR scale.')
    sr_t, hr_t = to_tensor(sr), to_tensor(hr)
    pix_map, ae_map = error_maps(sr, hr, loss.autoencoder)
    return {
        'l1': float((sr_t - hr_t).abs().mean()),
        'aesop': float(loss(sr_t, hr_t)),
        'psnr': float(calculate_psnr(sr, hr, crop_border=scale, test_y_channel=True)),
        'crop_border': scale,
        'sr': sr, 'pix_map': pix_map, 'ae_map': ae_map,
    }


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='aesop-inspect', description=__doc__.split('\n\n')[0])
    parser.add_argument('--ae', required=True, help='auto-encoder checkpoint (.pth/.safetensors), e.g. an '
                        'AESOPAEModel net_g_*.pth or the authors\' AE_RRDBdecoder_100K.pth')
    parser.add_argument('--ae-opt', required=True, help='option file with the AE (network_g of an AESOPAEModel '
                        'file, pixel_opt.autoencoder of an AESOPLoss run, or the AE dict), or the dict inline')
    pair = parser.add_argument_group('one SR/HR pair')
    pair.add_argument('--sr', help='super-resolved image')
    pair.add_argument('--hr', help='ground-truth image of the same size')
    pair.add_argument('--out', default=None, help='panel PNG (default: <SR name>_aesop_errors.png here)')
    card = parser.add_argument_group('report card of the auto-encoder')
    card.add_argument('--report', metavar='DIR', help='write the report card into DIR (report.md, report.json, '
                      'CSVs, frequency_response.png, images/)')
    card.add_argument('--images', metavar='FOLDER', help='folder of HR images (cropped to multiples of the scale)')
    card.add_argument('--max-images', type=int, default=None, help='use only the first N images (by name)')
    card.add_argument('--freq-images', type=int, default=4,
                      help='images whose centre crops the frequency sweep uses (default 4)')
    card.add_argument('--crop', type=int, default=128, help='crop size of the frequency sweep, px (default 128)')
    card.add_argument('--amplitude', type=float, default=DEFAULT_AMPLITUDE,
                      help=f'amplitude of the sinusoids, image range [0, 1] (default {DEFAULT_AMPLITUDE})')
    parser.add_argument('--param-key', default=None,
                        help='key of the weights in --ae (default params_ema if present, else params; ~ for a '
                        'bare state dict)')
    args = parser.parse_args(argv)
    if args.report is None and (args.sr is None or args.hr is None):
        parser.error('give --sr and --hr (one pair), or --report DIR with --images FOLDER (report card)')
    if args.report is not None and (args.images is None or args.sr is not None or args.hr is not None):
        parser.error('--report needs --images FOLDER and takes no --sr/--hr')
    for key in ('max_images', 'freq_images', 'crop'):
        value = getattr(args, key)
        if value is not None and value < 1:
            parser.error(f'--{key.replace("_", "-")} must be at least 1; got {value}')
    if not args.amplitude > 0:
        parser.error(f'--amplitude must be positive; got {args.amplitude}')
    return args


def report_card(args: argparse.Namespace) -> dict:
    """``--report``: the report card of the ``--ae`` auto-encoder over ``--images``."""
    ae_opt = load_autoencoder_opt(args.ae_opt)
    loss = build_aesop_loss(args.ae, ae_opt, args.param_key)
    if not hasattr(loss.autoencoder, 'encode'):
        raise InspectError(f'--ae-opt: {ae_opt.get("type")} has no encode/decode; the report card needs an '
                           'AESOPAutoEncoder.')
    if torch.cuda.is_available():
        loss.autoencoder.cuda()  # the full-size decoder is slow on a CPU
    paths = list_images(args.images)[:args.max_images]
    source = {'ae': osp.abspath(args.ae), 'ae_opt': args.ae_opt, 'images': osp.abspath(args.images)}
    return write_report_card(loss.autoencoder, paths, args.report, title=osp.basename(args.ae),
                             freq_images=args.freq_images, crop=args.crop, amplitude=args.amplitude, source=source)


@command('aesop-inspect', InspectError)
def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.report is not None:
        try:
            report = report_card(args)
        except (InspectError, ValueError, KeyError, FileNotFoundError, OSError) as err:
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            raise SystemExit(f'aesop-inspect: error: {message}')
        mean = report['mean']
        print(f'reconstruction PSNR {mean["recon_psnr"]:.4f} dB   SSIM {mean["recon_ssim"]:.4f}   '
              f'code PSNR {mean["code_psnr"]:.4f} dB   (mean of {len(report["per_image"])} images)')
        for line in report['verdicts'].values():
            print(f'- {line}')
        print(f'report   {osp.join(args.report, "report.md")}  (plot: frequency_response.png)')
        return
    out = args.out or f'{osp.splitext(osp.basename(args.sr))[0]}_aesop_errors.png'
    try:
        loss = build_aesop_loss(args.ae, load_autoencoder_opt(args.ae_opt), args.param_key)
        result = inspect_pair(loss, args.sr, args.hr)
        if osp.dirname(out):
            os.makedirs(osp.dirname(out), exist_ok=True)
        write_png(out, error_panel([('SR', result['sr'], result['pix_map'], result['ae_map'])]))
    except (InspectError, ValueError, KeyError, FileNotFoundError, OSError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise SystemExit(f'aesop-inspect: error: {message}')
    print(f'L1     {result["l1"]:.8g}  (mean |SR-HR|, RGB in [0, 1])')
    print(f'AESOP  {result["aesop"]:.8g}  (AESOPLoss, l1, weight 1: mean |AE(SR)-AE(HR)|)')
    print(f'PSNR   {result["psnr"]:.4f} dB  (Y channel, {result["crop_border"]} px border cropped)')
    print(f'panel  {out}  (SR | |SR-HR| | |AE(SR)-AE(HR)|, same colour scale)')


if __name__ == '__main__':
    main()
