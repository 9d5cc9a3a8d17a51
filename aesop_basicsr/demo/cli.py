"""``aesop-demo`` / ``python -m aesop_basicsr.demo``: the whole AESOP method on a CPU in minutes.

No data, GPU or network needed. The demo

1. builds a small paired x4 dataset from scikit-image's sample photos (train/val split),
2. trains a tiny PSNR-oriented RRDBNet (it plays the pretrained decoder and GAN initialisation),
3. pretrains an AESOP auto-encoder from it with ``AESOPAEModel``,
4. trains the same small ESRGAN setup twice from the PSNR network, with L1 and with AESOPLoss as
   ``pixel_opt`` (VGG19 perceptual loss only when its weights are on disk already),
5. writes a report: option files, logs, metric table (with a weight-free blur measure), SR images,
   panels and the auto-encoder's report card.

Every training run is BasicSR's own ``train_pipeline`` on a generated option file, started as
``python -m aesop_basicsr.train -opt options/<stage>.yml`` in the report folder.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from os import path as osp
from typing import Dict, List, Optional, Sequence

import aesop_basicsr  # noqa: F401  (registers AESOP into BasicSR; must precede basicsr)
import torch
import yaml

from aesop_basicsr.demo.options import (AUTOENCODER, GENERATOR, DemoSettings, all_options, checkpoint_path,
                                        dataset_folders)
from aesop_basicsr.demo.report import build_report, markdown_table
from aesop_basicsr.utils.cli import command
from aesop_basicsr.utils.sample_data import write_paired_dataset

# Mostly colour photos: an auto-encoder trained on grey ones leaves colour errors unpenalised.
TRAIN_PHOTOS = ('astronaut', 'rocket', 'immunohistochemistry', 'retina', 'camera', 'gravel')
VAL_PHOTOS = ('chelsea', 'coffee', 'brick')
TRAIN_HR_SIZE, TRAIN_CROPS, VAL_HR_SIZE = 256, 3, 192
QUICK = DemoSettings(psnr_iters=20, ae_iters=10, gan_iters=6, batch_size=2)
MARKER = 'aesop_demo.json'  # written first into every report folder; --overwrite only deletes folders holding it
VGG19_FILE = 'vgg19-dcbb9e9d.pth'
STAGE_TITLES = {'psnr': 'training the PSNR-oriented SR network (SRModel, L1)',
                'ae': 'pretraining the AESOP auto-encoder (AESOPAEModel, decoder from step 2)',
                'gan_l1': 'training the GAN with L1 as pixel_opt (ESRGANModel)',
                'gan_aesop': 'training the same GAN with AESOPLoss as pixel_opt (ESRGANModel)'}
ITER_RE = re.compile(r'iter:\s*([\d,]+)')
PSNR_RE = re.compile(r'# psnr: ([\d.]+)')


class DemoError(RuntimeError):
    """A stage failed; the message says which and where its log is."""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='aesop-demo', description=__doc__.split('\n\n')[0],
        epilog='Default run: about 7 minutes measured on 2 CPU cores (12 while other jobs loaded them); '
        '--quick takes about a minute. The option files land in OUT/options and rerun '
        'with `cd OUT && aesop-train -opt options/4_gan_aesop.yml`.')
    parser.add_argument('--out', default='aesop_demo',
                        help='report folder (default ./aesop_demo); if it already holds files, a new '
                        'timestamped folder beside it is used unless --overwrite is given')
    parser.add_argument('--overwrite', action='store_true', help='replace an earlier demo report in --out')
    parser.add_argument('--quick', action='store_true',
                        help=f'a smoke run of a minute or so ({QUICK.psnr_iters}/{QUICK.ae_iters}/{QUICK.gan_iters} '
                        'iterations): checks the pipeline, shows nothing about AESOP')
    defaults = DemoSettings()
    parser.add_argument('--iters', '--gan-iters', dest='gan_iters', type=int, default=None,
                        help=f'iterations of each GAN run (default {defaults.gan_iters})')
    parser.add_argument('--psnr-iters', type=int, default=None,
                        help=f'iterations of the PSNR network (default {defaults.psnr_iters})')
    parser.add_argument('--ae-iters', type=int, default=None,
                        help=f'iterations of the auto-encoder (default {defaults.ae_iters})')
    parser.add_argument('--no-perceptual', action='store_true',
                        help='run the GANs without VGG19 perceptual loss even when its weights are on disk '
                        '(with it each GAN step takes seconds on a CPU)')
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace, perceptual: bool) -> DemoSettings:
    base = QUICK if args.quick else DemoSettings()
    def pick(value: Optional[int], default: int) -> int:
        return default if value is None else value

    return DemoSettings(psnr_iters=pick(args.psnr_iters, base.psnr_iters), ae_iters=pick(args.ae_iters, base.ae_iters),
                        gan_iters=pick(args.gan_iters, base.gan_iters), batch_size=base.batch_size,
                        perceptual=perceptual, seed=base.seed)


def choose_report_dir(out: str, overwrite: bool) -> str:
    """``out`` if new or empty; with ``overwrite`` an earlier demo report there is deleted; otherwise a new
    ``out_<timestamp>`` beside it, so that no earlier report is lost."""
    out = osp.abspath(out)
    if not osp.exists(out) or (osp.isdir(out) and not os.listdir(out)):
        return out
    if not osp.isdir(out):
        raise DemoError(f'--out {out!r} is a file, not a folder.')
    if overwrite:
        if not osp.isfile(osp.join(out, MARKER)):
            raise DemoError(f'--out {out!r} holds files but no {MARKER}: it is not an aesop-demo report, '
                            'so --overwrite will not delete it. Choose another --out.')
        shutil.rmtree(out)
        return out
    stamp = time.strftime('%Y%m%d_%H%M%S')
    candidate, n = f'{out}_{stamp}', 1
    while osp.exists(candidate):
        n += 1
        candidate = f'{out}_{stamp}_{n}'
    return candidate


def find_vgg19(cwd: str) -> Optional[str]:
    """A VGG19 file where BasicSR looks for it: the torch hub cache, or experiments/pretrained_models in ``cwd``."""
    for candidate in (osp.join(torch.hub.get_dir(), 'checkpoints', VGG19_FILE),
                      osp.join(cwd, 'experiments', 'pretrained_models', VGG19_FILE)):
        if osp.isfile(candidate):
            return candidate
    return None


def expose_vgg19(vgg_file: str, root: str) -> None:
    """Make BasicSR's relative experiments/pretrained_models path find ``vgg_file`` from ``root`` too."""
    if vgg_file.startswith(torch.hub.get_dir()):
        return  # the hub cache is found from any working directory
    target = osp.join(root, 'experiments', 'pretrained_models', VGG19_FILE)
    os.makedirs(osp.dirname(target), exist_ok=True)
    try:
        os.symlink(vgg_file, target)
    except OSError:
        shutil.copyfile(vgg_file, target)


def write_options(root: str, settings: DemoSettings) -> Dict[str, str]:
    """Write the four option files under root/options; stage key -> path relative to root."""
    os.makedirs(osp.join(root, 'options'), exist_ok=True)
    files = {}
    for index, (stage, opt) in enumerate(all_options(settings).items(), 1):
        rel = f'options/{index}_{stage}.yml'
        with open(osp.join(root, rel), 'w') as f:
            f.write(f'# aesop-demo stage {index}: {STAGE_TITLES[stage]}.\n'
                    f'# Rerun from the report folder: aesop-train -opt {rel}\n')
            yaml.safe_dump(opt, f, sort_keys=False)
        files[stage] = rel
    return files


def train_env() -> Dict[str, str]:
    """The environment of a training subprocess: this very aesop_basicsr first on the path.

    OpenMP threads are told to sleep rather than spin while they wait (unless the user chose
    otherwise): on a CPU shared with other busy processes, spinning threads make torch an order
    of magnitude slower.
    """
    package_root = osp.dirname(osp.dirname(osp.abspath(aesop_basicsr.__file__)))
    path = os.environ.get('PYTHONPATH', '')
    env = dict(os.environ, PYTHONPATH=package_root + (os.pathsep + path if path else ''))
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    env['PYTHONUNBUFFERED'] = '1'  # progress lines arrive as they are logged
    return env


def run_training(root: str, opt_file: str, log_file: str, total_iters: int) -> Optional[float]:
    """``python -m aesop_basicsr.train -opt opt_file`` in ``root``, its output teed to ``log_file``.

    Shows the iteration on a terminal; returns the last validation PSNR it logged.
    """
    cmd = [sys.executable, '-m', 'aesop_basicsr.train', '-opt', opt_file]
    tty = sys.stdout.isatty()
    psnr, tail = None, []
    with open(osp.join(root, log_file), 'w') as log, subprocess.Popen(
            cmd, cwd=root, env=train_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            bufsize=1) as proc:
        for line in proc.stdout:
            log.write(line)
            log.flush()
            tail = (tail + [line])[-30:]
            match = ITER_RE.search(line)
            if match and tty:
                print(f'\r      iter {match.group(1)}/{total_iters}', end='', flush=True)
            match = PSNR_RE.search(line)
            if match:
                psnr = float(match.group(1))
    if tty:
        print('\r' + ' ' * 40 + '\r', end='')
    if proc.returncode != 0:
        raise DemoError(f'{" ".join(cmd[2:])} failed (exit code {proc.returncode}) in {root}; full log: '
                        f'{osp.join(root, log_file)}\n' + ''.join(tail))
    return psnr


def reading_of_table(report: dict) -> str:
    """What the mean PSNR and HF-energy figures of the two GANs say, in one sentence each, stated as measured."""
    methods = report['methods']
    if not {'gan_l1', 'gan_aesop', 'bicubic'} <= set(methods):
        return ''
    l1, aesop, bicubic = (methods[k]['mean'] for k in ('gan_l1', 'gan_aesop', 'bicubic'))
    sharper = 'more' if aesop['hf'] > l1['hf'] else 'less'
    closer = abs(aesop['hf'] - 1) < abs(l1['hf'] - 1)
    return (f'Detail: bicubic upscaling keeps {bicubic["hf"]:.2f} of HR\'s energy above the LR Nyquist frequency '
            f'(blur), the L1-GAN {l1["hf"]:.2f}, the AESOP-GAN {aesop["hf"]:.2f}: AESOP left {sharper} '
            f'high-frequency energy than L1, {"closer to" if closer else "further from"} HR\'s. '
            f'Fidelity: PSNR-Y {l1["psnr"]:.2f} dB (L1-GAN) vs {aesop["psnr"]:.2f} dB (AESOP-GAN), '
            f'{aesop["psnr"] - l1["psnr"]:+.2f} dB. These are this run\'s measurements, not a general result.')


def write_readme(root: str, report: dict, settings: DemoSettings, options: Dict[str, str], vgg_note: str,
                 timings: Dict[str, float]) -> None:
    stems = sorted(next(iter(report['methods'].values()))['images'])
    card = report['ae_report_card']
    lines = [
        '# aesop-demo report', '',
        'Validation images (held-out skimage photos, x4 MATLAB-bicubic LR). PSNR/SSIM on the Y channel '
        f'with a {report["crop_border"]} px border crop (BasicSR\'s calculate_psnr/calculate_ssim); '
        '"HF energy SR/HR" is the SR image\'s spectral energy above the LR Nyquist frequency divided by HR\'s '
        '(Y channel, Hann-windowed FFT; 1 = as detailed as HR, below 1 = blurred, above 1 = more high-frequency '
        'energy than HR, e.g. noise or GAN artefacts; calculate_hf_energy_ratio); '
        '"L1 to HR" and "AESOP to HR" are mean |SR-HR| and mean |AE(SR)-AE(HR)| on RGB in [0, 1].', '',
        markdown_table(report), '',
        f'Runs: PSNR network {settings.psnr_iters} iterations, auto-encoder {settings.ae_iters}, '
        f'each GAN {settings.gan_iters} (batch {settings.batch_size}, 128 px GT patches). {vgg_note}',
        f'LPIPS: {"included" if "lpips" in report["metrics"] else "not reported; " + report["lpips_note"]}.', '',
        '## What this demo shows, and what it cannot', '',
        reading_of_table(report), '',
        'It cannot show the paper\'s gains: the networks are tiny, trained for minutes on a handful of photos '
        'and evaluated on three; GAN training this short is noisy, so a different seed can reorder close '
        'numbers. The paper\'s claim is about full-size networks trained for 300k iterations on DF2K. What the '
        'demo does show is the mechanism: the same GAN with AESOP in place of L1, every other setting equal, '
        'and an auto-encoder whose report card below says what AESOP can and cannot penalise.', '',
        f'## The auto-encoder\'s report card ([{card["folder"]}/report.md]({card["folder"]}/report.md))', '',
        f'![frequency response]({card["folder"]}/frequency_response.png)', '',
    ] + [f'- {line}' for line in card['verdicts'].values()] + [
        '',
        'Panels (`panels/`): `<image>_compare.png` is bicubic | L1-GAN | AESOP-GAN | HR; '
        '`<image>_errors.png` shows, for each GAN, its output, |SR-HR| (what L1 penalises) and '
        '|AE(SR)-AE(HR)| (what AESOP penalises), both on the same colour scale (square root; black = 0, '
        'yellow = an error of 0.1, about 25 grey levels, or more).', '',
    ]
    lines += [f'![{stem}](panels/{stem}_compare.png)\n![{stem} errors](panels/{stem}_errors.png)\n' for stem in stems]
    lines += ['## Files', '',
              '- `options/`: the option files that were run; from this folder, rerun or edit them with '
              '`aesop-train -opt options/<file>.yml`.',
              '- `logs/`: the console output of each run; `experiments/<name>/` holds BasicSR\'s own log, '
              'checkpoints and training states.',
              '- `metrics.json`, `metrics.csv`: per-image and mean metrics; `images/`: every SR output as PNG.',
              '- `data/`: the generated train/val dataset.', '',
              'Wall time per stage (s): ' + ', '.join(f'{k} {v:.0f}' for k, v in timings.items()), '']
    with open(osp.join(root, 'README.md'), 'w') as f:
        f.write('\n'.join(lines))


def run_demo(args: argparse.Namespace) -> str:
    """Run all stages; returns the report folder."""
    start = time.time()
    root = choose_report_dir(args.out, args.overwrite)
    requested = osp.abspath(args.out)
    if root != requested:
        print(f'{requested} already holds files; writing this report to {root} (use --overwrite to replace '
              'an earlier report).')
    os.makedirs(root, exist_ok=True)

    vgg_file = None if args.no_perceptual else find_vgg19(os.getcwd())
    settings = settings_from_args(args, perceptual=vgg_file is not None)
    if vgg_file:
        expose_vgg19(vgg_file, root)
        vgg_note = f'VGG19 perceptual loss on (weights: {vgg_file}).'
    elif args.no_perceptual:
        vgg_note = 'VGG19 perceptual loss off (--no-perceptual).'
    else:
        vgg_note = (f'VGG19 perceptual loss off: no {VGG19_FILE} in {osp.join(torch.hub.get_dir(), "checkpoints")} '
                    'or experiments/pretrained_models (nothing is downloaded); the GANs use pixel + adversarial '
                    'loss only.')
    with open(osp.join(root, MARKER), 'w') as f:
        json.dump({'settings': vars(settings), 'vgg19': vgg_file, 'command': sys.argv}, f, indent=2)
    print(f'aesop-demo: report folder {root}')
    print(f'  {vgg_note}')
    timings: Dict[str, float] = {}

    t0 = time.time()
    print('[1/5] building a paired x4 dataset from scikit-image photos ...', flush=True)
    train = write_paired_dataset(osp.join(root, 'data', 'train'), 4, TRAIN_HR_SIZE, TRAIN_PHOTOS, TRAIN_CROPS)
    val = write_paired_dataset(osp.join(root, 'data', 'val'), 4, VAL_HR_SIZE, VAL_PHOTOS, 1)
    assert train == {k: osp.join(root, v) for k, v in dataset_folders('train').items()}
    print(f'      {len(os.listdir(train["gt"]))} train pairs ({TRAIN_HR_SIZE} px HR), '
          f'{len(os.listdir(val["gt"]))} validation pairs ({VAL_HR_SIZE} px HR)')
    options = write_options(root, settings)
    os.makedirs(osp.join(root, 'logs'), exist_ok=True)
    timings['data'] = time.time() - t0

    iters = {'psnr': settings.psnr_iters, 'ae': settings.ae_iters, 'gan_l1': settings.gan_iters,
             'gan_aesop': settings.gan_iters}
    steps = {'psnr': '[2/5]', 'ae': '[3/5]', 'gan_l1': '[4/5]', 'gan_aesop': '[4/5]'}
    for stage, opt_file in options.items():
        t0 = time.time()
        print(f'{steps[stage]} {STAGE_TITLES[stage]}, {iters[stage]} iterations ...', flush=True)
        log_file = f'logs/{osp.splitext(osp.basename(opt_file))[0]}.log'
        psnr = run_training(root, opt_file, log_file, iters[stage])
        timings[stage] = time.time() - t0
        what = 'AE(HR) vs HR' if stage == 'ae' else 'SR vs HR'
        result = f', validation PSNR-Y ({what}) {psnr:.2f} dB' if psnr is not None else ''
        print(f'      done in {timings[stage]:.0f} s{result}; log {log_file}', flush=True)

    t0 = time.time()
    print('[5/5] evaluating on the validation images and drawing panels ...', flush=True)
    report = build_report(root, GENERATOR, AUTOENCODER,
                          {key: osp.join(root, checkpoint_path(key)) for key in ('psnr', 'gan_l1', 'gan_aesop')},
                          osp.join(root, checkpoint_path('ae')), val)
    timings['report'] = time.time() - t0
    timings['total'] = time.time() - start
    write_readme(root, report, settings, options, vgg_note, timings)
    print(markdown_table(report))
    print(f'Auto-encoder report card ({osp.join(root, report["ae_report_card"]["folder"], "report.md")}):')
    for line in report['ae_report_card']['verdicts'].values():
        print(f'  - {line}')
    if report['lpips_note']:
        print(f'  LPIPS not reported: {report["lpips_note"]}')
    print(f'Done in {timings["total"] / 60:.1f} min. Report: {osp.join(root, "README.md")}; panels in '
          f'{osp.join(root, "panels")}')
    return root


@command('aesop-demo')
def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    try:
        run_demo(args)
    except DemoError as err:
        sys.exit(f'aesop-demo: {err}')


if __name__ == '__main__':
    main()
