"""``aesop-eval``: PSNR / SSIM / LPIPS / DISTS of super-resolved images against their HR images.

The paper's protocol: PSNR and SSIM on the Y channel with a 4-pixel border cropped (BasicSR's
``calculate_psnr`` / ``calculate_ssim``), LPIPS (AlexNet, v0.1) and DISTS on the whole RGB image (the
``calculate_lpips`` / ``calculate_dists`` metrics registered by aesop_basicsr; lower is better). Prints a
markdown table (per image and the average) and writes the same numbers as CSV. The supplement's two
fidelity measures are extra columns: ``--lr-psnr`` (PSNR of the MATLAB-bicubic downscales of SR and HR,
``calculate_lr_psnr``) and ``--ae AE.pth --ae-opt OPT`` (PSNR of psi(SR) and psi(HR), ``calculate_ae_psnr``),
both on Y with the PSNR border.

    aesop-eval --sr results/my_run/visualization/Set5 --hr datasets/Set5/HR_mod4
    aesop-eval --opt options/test/test_AESOP_RRDB_x4_benchmarks.yml   # every dataset aesop-test wrote
    aesop-eval --protocol paper --results results --datasets datasets  # the paper's table, every run
    aesop-eval --protocol paper --lr-psnr --ae AE_RRDBdecoder_100K.pth --ae-opt '{type: AESOPAutoEncoder}'

SR files are matched to HR files by name: ``baby.png`` or, as BasicSR's test saves them,
``baby_<suffix>.png`` (the suffix is found automatically, or give ``--suffix``).
"""
import argparse
import csv
import os
import sys
from collections import Counter
from os import path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import yaml
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils.options import ordered_yaml
from basicsr.utils.registry import METRIC_REGISTRY
from PIL import Image

import aesop_basicsr  # noqa: F401  (registers the LPIPS/DISTS metrics)
from aesop_basicsr.inspect_loss import choose_param_key, load_autoencoder_opt
from aesop_basicsr.metrics.ae_psnr_metric import calculate_ae_psnr
from aesop_basicsr.metrics.lr_psnr_metric import calculate_lr_psnr
from aesop_basicsr.utils.cli import command
from aesop_basicsr.utils.options import find_placeholders

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
FIDELITY_METRICS = ('psnr', 'ssim')
SUPPLEMENT_METRICS = ('lr_psnr', 'ae_psnr')  # the supplement's fidelity measures, on request
PERCEPTUAL_METRICS = ('lpips', 'dists')
LOWER_IS_BETTER = {'psnr': False, 'ssim': False, 'lr_psnr': False, 'ae_psnr': False, 'lpips': True, 'dists': True}
LABELS = {'psnr': 'PSNR', 'ssim': 'SSIM', 'lr_psnr': 'LR-PSNR', 'ae_psnr': 'AE-PSNR', 'lpips': 'LPIPS',
          'dists': 'DISTS'}
DECIBEL_METRICS = ('psnr', 'lr_psnr', 'ae_psnr')


# The authors' benchmarks, in the order of their test files and tables: (name, HR mod-crop)
PAPER_BENCHMARKS: Tuple[Tuple[str, int], ...] = (
    ('Set14', 4), ('Manga109', 4), ('General100', 4), ('Urban100', 4), ('DIV2K100', 4),
    ('BSD100mod12', 12), ('LSDIR250mod12', 12))


class EvalError(Exception):
    """A problem with the inputs, reported to the user without a traceback."""


def _images(folder: str, role: str) -> Dict[str, str]:
    if not osp.isdir(folder):
        raise EvalError(f'{role}: {folder!r} is not a folder.')
    found = {osp.splitext(n)[0]: osp.join(folder, n) for n in sorted(os.listdir(folder))
             if n.lower().endswith(IMAGE_EXTENSIONS)}
    if not found:
        raise EvalError(f'{role}: no images in {folder!r}.')
    return found


def detect_suffix(sr_stems: Sequence[str], hr_stems: Sequence[str]) -> str:
    """'' when SR and HR names agree, else the most common ``X`` in SR names ``<hr name>_X``."""
    hr_set = set(hr_stems)
    if all(s in hr_set for s in sr_stems):
        return ''
    candidates = Counter()
    for sr in sr_stems:
        for hr in hr_stems:
            if sr.startswith(hr + '_'):
                candidates[sr[len(hr) + 1:]] += 1
    return candidates.most_common(1)[0][0] if candidates else ''


def pair_images(sr_dir: str, hr_dir: str, suffix: Optional[str] = None) -> List[Tuple[str, str, str]]:
    """(HR name, SR path, HR path) for every HR image; error on any image without its partner."""
    sr, hr = _images(sr_dir, '--sr'), _images(hr_dir, '--hr')
    if suffix is None:
        suffix = detect_suffix(list(sr), list(hr))
    expected = {stem: f'{stem}_{suffix}' if suffix else stem for stem in hr}
    missing = [f'{osp.basename(hr[stem])} (expected {sr_stem}.png)' for stem, sr_stem in expected.items()
               if sr_stem not in sr]
    extra = sorted(set(sr) - set(expected.values()))
    if missing or extra:
        lines = [f'SR images in {sr_dir!r} do not match HR images in {hr_dir!r}'
                 f'{f" with suffix _{suffix}" if suffix else ""}:']
        if missing:
            lines.append(f'  {len(missing)} HR images have no SR image: {", ".join(missing[:10])}'
                         f'{" ..." if len(missing) > 10 else ""}')
        if extra:
            lines.append(f'  {len(extra)} SR images have no HR image: '
                         f'{", ".join(osp.basename(sr[s]) for s in extra[:10])}{" ..." if len(extra) > 10 else ""}')
        lines.append('  (BasicSR test results are named <image>_<suffix>.png; pass --suffix if it was not found.)')
        raise EvalError('\n'.join(lines))
    return [(stem, sr[expected[stem]], hr[stem]) for stem in sorted(hr)]


def check_sizes(pairs: Sequence[Tuple[str, str, str]]) -> None:
    """Every SR image has its HR image's size (read from the headers, before any metric runs)."""
    wrong = []
    for _, sr_path, hr_path in pairs:
        with Image.open(sr_path) as sr, Image.open(hr_path) as hr:
            if sr.size != hr.size:
                wrong.append(f'  {sr_path} is {sr.size[0]}x{sr.size[1]} but {hr_path} is {hr.size[0]}x{hr.size[1]}')
    if wrong:
        raise EvalError(f'{len(wrong)} SR/HR pairs differ in size (HR must be cropped to a multiple of the '
                        'scale, e.g. by aesop-prepare):\n' + '\n'.join(wrong[:10]) + ('\n  ...' if len(wrong) > 10 else ''))


def metric_functions(metrics: Sequence[str], crop_border: int, perceptual_crop_border: int, scale: int = 4,
                     ae_options: Optional[Dict[str, object]] = None
                     ) -> Dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """name -> f(sr, hr) on uint8 BGR HWC images, as BasicSR's validation calls its metrics.

    ``scale`` is LR-PSNR's downscaling factor; ``ae_options`` (``autoencoder``, ``pretrain_network_ae``,
    ``param_key_ae``) name AE-PSNR's auto-encoder.
    """
    functions: Dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        'psnr': lambda sr, hr: calculate_psnr(sr, hr, crop_border, input_order='HWC', test_y_channel=True),
        'ssim': lambda sr, hr: calculate_ssim(sr, hr, crop_border, input_order='HWC', test_y_channel=True),
        'lr_psnr': lambda sr, hr: calculate_lr_psnr(sr, hr, crop_border, scale=scale, test_y_channel=True),
        'ae_psnr': lambda sr, hr: calculate_ae_psnr(sr, hr, crop_border, test_y_channel=True, **(ae_options or {})),
    }
    for name in PERCEPTUAL_METRICS:
        if name not in metrics:
            continue
        registered = f'calculate_{name}'
        if registered not in METRIC_REGISTRY:
            raise EvalError(f"{registered} is not in BasicSR's METRIC_REGISTRY, so {name.upper()} cannot be computed "
                            'here. Pass --skip-perceptual for PSNR/SSIM only.')
        fn = METRIC_REGISTRY.get(registered)
        functions[name] = lambda sr, hr, fn=fn: fn(sr, hr, crop_border=perceptual_crop_border)
    return {name: functions[name] for name in metrics}


def evaluate_pairs(pairs: Sequence[Tuple[str, str, str]], functions: Dict[str, Callable],
                   progress: bool = True) -> List[Dict[str, object]]:
    """One row per pair: {'image': name, metric: value, ...}."""
    from tqdm import tqdm
    rows = []
    for index, (name, sr_path, hr_path) in enumerate(tqdm(pairs, unit='image', desc='aesop-eval',
                                                          disable=not progress)):
        sr, hr = cv2.imread(sr_path, cv2.IMREAD_COLOR), cv2.imread(hr_path, cv2.IMREAD_COLOR)
        for image, path in ((sr, sr_path), (hr, hr_path)):
            if image is None:
                raise EvalError(f'{path!r} is not an image OpenCV can read.')
        row: Dict[str, object] = {'image': name}
        for metric, fn in functions.items():
            try:
                row[metric] = float(fn(sr, hr))
            except Exception as err:  # the first call of LPIPS/DISTS is where missing weights show up
                if index or metric not in PERCEPTUAL_METRICS:
                    raise
                raise EvalError(f'{metric.upper()} could not be computed ({type(err).__name__}: {err}). '
                                'Pass --skip-perceptual for PSNR/SSIM only.') from err
        rows.append(row)
    return rows


def average(rows: Sequence[Dict[str, object]], metrics: Sequence[str], label: str = 'average') -> Dict[str, object]:
    return {'image': label, **{m: float(np.mean([r[m] for r in rows])) for m in metrics}}


def _format(metric: str, value: float) -> str:
    return f'{value:.2f}' if metric in DECIBEL_METRICS else f'{value:.4f}'


def _heading(metric: str) -> str:
    return f'{LABELS[metric]} {"↓" if LOWER_IS_BETTER[metric] else "↑"}'


def markdown_table(rows: Sequence[Dict[str, object]], metrics: Sequence[str], first: str = 'image') -> str:
    arrows = {m: _heading(m) for m in metrics}
    lines = [f'| {first} | ' + ' | '.join(arrows[m] for m in metrics) + ' |',
             '|---|' + '---:|' * len(metrics)]
    for row in rows:
        lines.append(f'| {row["image"]} | ' + ' | '.join(_format(m, row[m]) for m in metrics) + ' |')
    return '\n'.join(lines)


def write_csv(path: str, rows: Sequence[Dict[str, object]], metrics: Sequence[str], first: str = 'image') -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow([first, *metrics])
        for row in rows:
            writer.writerow([row['image'], *(f'{row[m]:.6f}' for m in metrics)])


def evaluate_folders(sr_dir: str, hr_dir: str, metrics: Sequence[str], crop_border: int = 4,
                     perceptual_crop_border: int = 0, suffix: Optional[str] = None, progress: bool = True,
                     scale: int = 4, ae_options: Optional[Dict[str, object]] = None) -> List[Dict[str, object]]:
    """Per-image rows followed by the average row (``scale``, ``ae_options``: see :func:`metric_functions`)."""
    pairs = pair_images(sr_dir, hr_dir, suffix)
    check_sizes(pairs)
    functions = metric_functions(metrics, crop_border, perceptual_crop_border, scale, ae_options)
    rows = evaluate_pairs(pairs, functions, progress)
    return rows + [average(rows, metrics)]


def datasets_of_test_file(opt_file: str, results_root: str) -> Tuple[str, str, List[Tuple[str, str, str]]]:
    """(run name, SR suffix, [(dataset name, SR folder, HR folder)]) for a BasicSR test option file."""
    with open(opt_file) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    left = [key for key, _ in find_placeholders(opt.get('datasets', {})) if key.endswith('dataroot_gt')]
    if left:
        raise EvalError(f'{opt_file}: set datasets:{left[0]} (and the other placeholders) first, as for aesop-test.')
    suffix = (opt.get('val') or {}).get('suffix') or opt['name']
    visualization = osp.join(results_root, 'results', opt['name'], 'visualization')
    sets = [(d['name'], osp.join(visualization, d['name']), d['dataroot_gt']) for d in opt['datasets'].values()
            if d.get('dataroot_gt')]
    if not sets:
        raise EvalError(f'{opt_file}: no dataset with a dataroot_gt to compare against.')
    return opt['name'], suffix, sets


def paper_hr_folder(datasets_root: str, name: str, mod: int) -> str:
    """Where aesop-prepare puts a benchmark's HR images: ``<root>/<name>/HR_mod<mod>``."""
    return osp.join(datasets_root, name, f'HR_mod{mod}')


def paper_runs(results_root: str, runs: Optional[Sequence[str]] = None) -> List[str]:
    """The runs to tabulate: ``runs`` in that order, else every ``<results>/<run>`` with a visualization folder
    holding at least one paper benchmark, sorted."""
    if not osp.isdir(results_root):
        raise EvalError(f'--results: {results_root!r} is not a folder (aesop-test writes results/<name>/).')
    if runs:
        missing = [r for r in runs if not osp.isdir(osp.join(results_root, r, 'visualization'))]
        if missing:
            raise EvalError(f'--runs: no {results_root}/<run>/visualization for {", ".join(missing)}.')
        return list(runs)
    found = [r for r in sorted(os.listdir(results_root))
             if any(osp.isdir(osp.join(results_root, r, 'visualization', name)) for name, _ in PAPER_BENCHMARKS)]
    if not found:
        raise EvalError(f'--results: no run in {results_root!r} has SR images of a paper benchmark '
                        f'({", ".join(n for n, _ in PAPER_BENCHMARKS)}) under <run>/visualization/.')
    return found


def paper_table(results_root: str, datasets_root: str, metrics: Sequence[str], runs: Optional[Sequence[str]] = None,
                progress: bool = True, **options) -> Tuple[List[str], List[Dict[str, object]]]:
    """The authors' protocol over every run: (columns, one row per run).

    Columns are ``<benchmark> <metric>`` for the seven benchmarks x ``metrics``; a row holds each run's
    average over a benchmark's images, or None where the run has no SR images of that benchmark.
    PSNR/SSIM: Y channel, 4-pixel border; LPIPS/DISTS: RGB, no crop (the defaults of ``options``).
    """
    columns = [f'{name} {metric}' for name, _ in PAPER_BENCHMARKS for metric in metrics]
    rows = []
    for run in paper_runs(results_root, runs):
        row: Dict[str, object] = {'image': run}
        for name, mod in PAPER_BENCHMARKS:
            sr_dir = osp.join(results_root, run, 'visualization', name)
            if not osp.isdir(sr_dir):
                row.update({f'{name} {m}': None for m in metrics})
                continue
            hr_dir = paper_hr_folder(datasets_root, name, mod)
            if not osp.isdir(hr_dir):
                raise EvalError(f'{run} has SR images of {name} but {hr_dir!r} does not exist; make it with '
                                f'aesop-prepare --input <{name} HR images> --output {osp.join(datasets_root, name)} '
                                f'--scale 4 --mod {mod}')
            mean = evaluate_folders(sr_dir, hr_dir, metrics, progress=progress, **options)[-1]
            row.update({f'{name} {m}': mean[m] for m in metrics})
        rows.append(row)
    return columns, rows


def paper_markdown(columns: Sequence[str], rows: Sequence[Dict[str, object]]) -> str:
    """Rows = methods, columns = benchmarks x metrics, as the paper lays out its tables."""
    def head(column: str) -> str:
        benchmark, metric = column.rsplit(' ', 1)
        return f'{benchmark} {_heading(metric)}'

    lines = ['| method | ' + ' | '.join(head(c) for c in columns) + ' |', '|---|' + '---:|' * len(columns)]
    for row in rows:
        cells = ['–' if row[c] is None else _format(c.rsplit(' ', 1)[1], row[c]) for c in columns]
        lines.append(f'| {row["image"]} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def write_paper_csv(path: str, columns: Sequence[str], rows: Sequence[Dict[str, object]]) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['method', *columns])
        for row in rows:
            writer.writerow([row['image'], *('' if row[c] is None else f'{row[c]:.6f}' for c in columns)])


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='aesop-eval', description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--sr', help='folder of super-resolved images (with --hr)')
    source.add_argument('--opt', help="a test option file: evaluate every dataset of the run's results folder")
    source.add_argument('--protocol', choices=['paper'],
                        help="'paper': the authors' protocol over every run in --results, one table "
                             '(rows = runs, columns = the 7 benchmarks x metrics)')
    parser.add_argument('--results', default='results', help='with --protocol: the folder of runs aesop-test wrote')
    parser.add_argument('--datasets', default='datasets',
                        help='with --protocol: benchmark HR images are <datasets>/<name>/HR_mod4 (HR_mod12 for '
                             'BSD100mod12, LSDIR250mod12), as aesop-prepare writes them')
    parser.add_argument('--runs', nargs='+', default=None,
                        help='with --protocol: these runs (table rows) in this order; default every run found')
    parser.add_argument('--hr', help='folder of HR images, the same size as the SR images')
    parser.add_argument('--suffix', default=None, help='SR names are <HR name>_<suffix>; found automatically')
    parser.add_argument('--results-root', default='.', help='with --opt: the folder aesop-test ran in')
    parser.add_argument('--crop-border', type=int, default=4, help='border cropped for PSNR/SSIM')
    parser.add_argument('--perceptual-crop-border', type=int, default=0, help='border cropped for LPIPS/DISTS')
    parser.add_argument('--skip-perceptual', action='store_true', help='PSNR and SSIM only (no LPIPS/DISTS)')
    parser.add_argument('--lr-psnr', action='store_true',
                        help='add LR-PSNR: PSNR of the MATLAB-bicubic downscales by --scale of SR and HR (Y, '
                             '--crop-border / scale LR pixels cropped)')
    parser.add_argument('--scale', type=int, default=4, help='the SR factor, for --lr-psnr')
    parser.add_argument('--ae', default=None,
                        help='add AE-PSNR: PSNR of psi(SR) and psi(HR) (Y, --crop-border) for this auto-encoder '
                             'checkpoint (with --ae-opt)')
    parser.add_argument('--ae-opt', default=None,
                        help="with --ae: the auto-encoder's options, as for aesop-inspect (an AESOPAEModel or "
                             "AESOPLoss option file, or the dict inline, e.g. '{type: AESOPAutoEncoder, scale: 4}')")
    parser.add_argument('--param-key', default=None,
                        help='with --ae: key of the weights in the file (default params_ema if present, else params)')
    parser.add_argument('--csv', default=None,
                        help='CSV to write (default: <SR folder>_metrics.csv; with --opt, '
                             'results/<name>/aesop_eval_*.csv; with --protocol, <results>/paper_table.csv)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    if args.sr and not args.hr:
        parser.error('--sr needs --hr')
    if (args.ae is None) != (args.ae_opt is None):
        parser.error('--ae and --ae-opt go together (the checkpoint and its options)')
    if args.scale < 1:
        parser.error(f'--scale must be a positive integer; got {args.scale}')
    return args


def supplement_metrics(args: argparse.Namespace) -> Tuple[Tuple[str, ...], Dict[str, object]]:
    """The extra columns asked for (``--lr-psnr``, ``--ae``) and the options of their metric functions."""
    metrics = (('lr_psnr', ) if args.lr_psnr else ()) + (('ae_psnr', ) if args.ae else ())
    options: Dict[str, object] = {'scale': args.scale}
    if args.ae:
        options['ae_options'] = {'autoencoder': load_autoencoder_opt(args.ae_opt), 'pretrain_network_ae': args.ae,
                                 'param_key_ae': choose_param_key(args.ae, args.param_key)}
    return metrics, options


@command('aesop-eval', EvalError)
def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    supplement, supplement_options = supplement_metrics(args)
    metrics = FIDELITY_METRICS + supplement + (() if args.skip_perceptual else PERCEPTUAL_METRICS)
    options = dict(metrics=metrics, crop_border=args.crop_border, perceptual_crop_border=args.perceptual_crop_border,
                   progress=not args.no_progress, **supplement_options)
    try:
        if args.protocol:
            for fixed in ('crop_border', 'perceptual_crop_border'):
                options.pop(fixed)
            if (args.crop_border, args.perceptual_crop_border) != (4, 0):
                raise EvalError('--protocol paper fixes the borders (4 for PSNR/SSIM, 0 for LPIPS/DISTS); '
                                'drop --crop-border/--perceptual-crop-border or evaluate with --opt.')
            columns, rows = paper_table(args.results, args.datasets, runs=args.runs, suffix=args.suffix, **options)
            csv_path = args.csv or osp.join(args.results, 'paper_table.csv')
            write_paper_csv(csv_path, columns, rows)
            print(paper_markdown(columns, rows))
        elif args.sr:
            rows = evaluate_folders(args.sr, args.hr, suffix=args.suffix, **options)
            csv_path = args.csv or osp.normpath(args.sr) + '_metrics.csv'
            write_csv(csv_path, rows, metrics)
            print(markdown_table(rows, metrics))
        else:
            name, suffix, sets = datasets_of_test_file(args.opt, args.results_root)
            summary = []
            for dataset, sr_dir, hr_dir in sets:
                rows = evaluate_folders(sr_dir, hr_dir, suffix=args.suffix or suffix, **options)
                write_csv(osp.join(args.results_root, 'results', name, f'aesop_eval_{dataset}.csv'), rows, metrics)
                summary.append({**rows[-1], 'image': dataset})
            csv_path = args.csv or osp.join(args.results_root, 'results', name, 'aesop_eval_summary.csv')
            write_csv(csv_path, summary, metrics, first='dataset')
            print(markdown_table(summary, metrics, first='dataset'))
    except EvalError as err:
        sys.exit(f'aesop-eval: error: {err}')
    print(f'\nCSV: {csv_path}')


if __name__ == '__main__':
    main()
