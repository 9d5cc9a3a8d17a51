"""``aesop-demo`` / ``python -m aesop_basicsr.demo``: the whole AESOP method on a CPU in minutes.

No data, GPU or network needed. The demo

1. builds a small paired x4 dataset from scikit-image's sample photos (train/val split),
2. trains a small PSNR-oriented MSRResNet (it plays the pretrained decoder and GAN initialisation),
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
import threading
import time
from contextlib import contextmanager
from os import path as osp
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import aesop_basicsr  # noqa: F401  (registers AESOP into BasicSR; must precede basicsr)
import torch
import yaml

from aesop_basicsr.demo.options import (AUTOENCODER, GAN_WEIGHT, GAN_WEIGHT_WITHOUT_PERCEPTUAL, GENERATOR, GT_SIZE,
                                        PRETRAIN_GT_SIZE, DemoSettings, all_options, checkpoint_path, dataset_folders)
from aesop_basicsr.demo.report import build_report, colour_table, markdown_table
from aesop_basicsr.utils.cli import command
from aesop_basicsr.utils.sample_data import write_paired_dataset

# Mostly colour photos, and scikit-image's colour wheel (every hue and saturation on one image): an
# auto-encoder trained on grey ones leaves colour errors unpenalised.
TRAIN_PHOTOS = ('astronaut', 'rocket', 'immunohistochemistry', 'retina', 'camera', 'gravel', 'colorwheel')
VAL_PHOTOS = ('chelsea', 'coffee', 'brick')
TRAIN_HR_SIZE, TRAIN_CROPS, VAL_HR_SIZE = 256, 3, 192
QUICK = DemoSettings(psnr_iters=20, ae_iters=10, gan_iters=6, batch_size=2, pretrain_batch_size=2)
MARKER = 'aesop_demo.json'  # written first into every report folder; --overwrite only deletes folders holding it
VGG19_FILE = 'vgg19-dcbb9e9d.pth'
STAGE_TITLES = {'psnr': 'training the PSNR-oriented SR network (SRModel, L1)',
                'ae': 'pretraining the AESOP auto-encoder (AESOPAEModel, decoder from step 2, fixed bicubic encoder)',
                'gans': 'training the same GAN twice from step 2 (ESRGANLDLModel: ESRGAN + LDL)',
                'gan_l1': 'L1 as pixel_opt',
                'gan_aesop': 'AESOPLoss as pixel_opt (the auto-encoder of step 3)'}
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
                        pretrain_batch_size=base.pretrain_batch_size, perceptual=perceptual, seed=base.seed)


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
            title = f'{STAGE_TITLES["gans"]}, {STAGE_TITLES[stage]}' if stage.startswith('gan') else STAGE_TITLES[stage]
            f.write(f'# aesop-demo stage {index}: {title}.\n'
                    f'# Rerun from the report folder: aesop-train -opt {rel}\n')
            yaml.safe_dump(opt, f, sort_keys=False)
        files[stage] = rel
    return files


def train_env(threads: Optional[int] = None) -> Dict[str, str]:
    """The environment of a training subprocess: this very aesop_basicsr first on the path.

    OpenMP threads are told to sleep rather than spin while they wait (unless the user chose
    otherwise): on a CPU shared with other busy processes, spinning threads make torch an order
    of magnitude slower. ``threads`` sets ``OMP_NUM_THREADS`` unless the user set it.
    """
    package_root = osp.dirname(osp.dirname(osp.abspath(aesop_basicsr.__file__)))
    path = os.environ.get('PYTHONPATH', '')
    env = dict(os.environ, PYTHONPATH=package_root + (os.pathsep + path if path else ''))
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    if threads is not None:
        env.setdefault('OMP_NUM_THREADS', str(threads))
    env['PYTHONUNBUFFERED'] = '1'  # progress lines arrive as they are logged
    return env


def cpu_count() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class TrainingRun:
    """``python -m aesop_basicsr.train -opt opt_file`` started in ``root``, its output teed to ``log_file``
    by a reader thread that also keeps the last logged iteration and validation PSNR."""

    def __init__(self, root: str, opt_file: str, log_file: str, total_iters: int,
                 threads: Optional[int] = None) -> None:
        self.root, self.opt_file, self.log_file, self.total_iters = root, opt_file, log_file, total_iters
        self.cmd = [sys.executable, '-m', 'aesop_basicsr.train', '-opt', opt_file]
        self.iter, self.psnr, self.tail = '0', None, []
        self.log = open(osp.join(root, log_file), 'w')
        self.proc = subprocess.Popen(self.cmd, cwd=root, env=train_env(threads), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        with self.log:
            for line in self.proc.stdout:
                self.log.write(line)
                self.log.flush()
                self.tail = (self.tail + [line])[-30:]
                match = ITER_RE.search(line)
                if match:
                    self.iter = match.group(1)
                match = PSNR_RE.search(line)
                if match:
                    self.psnr = float(match.group(1))

    def finished(self) -> bool:
        return self.proc.poll() is not None and not self.reader.is_alive()

    def result(self) -> Optional[float]:
        """Wait for the run; its last validation PSNR, or DemoError naming its log if it failed."""
        self.proc.wait()
        self.reader.join()
        if self.proc.returncode != 0:
            raise DemoError(f'{" ".join(self.cmd[2:])} failed (exit code {self.proc.returncode}) in {self.root}; '
                            f'full log: {osp.join(self.root, self.log_file)}\n' + ''.join(self.tail))
        return self.psnr


def run_side_by_side(root: str, runs: Sequence[Tuple[str, str, int]],
                     on_finish: Optional[Callable[[int, Optional[float]], None]] = None) -> List[Optional[float]]:
    """Run training jobs ``(opt_file, log_file, total_iters)`` at the same time, the CPU cores shared out
    between them (one thread each on two cores; as many as torch picks for a single run).

    Shows their iterations on a terminal and calls ``on_finish(index, psnr)`` as each ends; returns
    their last validation PSNRs. If one fails, the others are stopped and DemoError names its log.
    """
    threads = max(1, cpu_count() // len(runs)) if len(runs) > 1 else None
    started = [TrainingRun(root, *run, threads=threads) for run in runs]
    results: Dict[int, Optional[float]] = {}
    tty = sys.stdout.isatty()
    try:
        while len(results) < len(started):
            for index, run in enumerate(started):
                if index not in results and run.finished():
                    results[index] = run.result()
                    if tty:
                        print('\r' + ' ' * 60 + '\r', end='')
                    if on_finish:
                        on_finish(index, results[index])
            if tty and len(results) < len(started):
                print('\r      iter ' + ', '.join(f'{run.iter}/{run.total_iters}' for run in started), end='',
                      flush=True)
            time.sleep(0.2)
    finally:
        for run in started:
            if run.proc.poll() is None:
                run.proc.terminate()
                run.proc.wait()
    return [results[index] for index in range(len(started))]


def run_training(root: str, opt_file: str, log_file: str, total_iters: int) -> Optional[float]:
    """``python -m aesop_basicsr.train -opt opt_file`` in ``root``, its output teed to ``log_file``.

    Shows the iteration on a terminal; returns the last validation PSNR it logged.
    """
    return run_side_by_side(root, [(opt_file, log_file, total_iters)])[0]


def cpu_seconds() -> float:
    """User + system CPU time so far of this process and its finished children (the training runs), in s
    (children's time is 0 where the system does not report it, e.g. Windows)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class StageClock:
    """Wall and CPU seconds (:func:`cpu_seconds`) of each stage of the demo, and of the whole run as 'total'."""

    def __init__(self) -> None:
        self.wall: Dict[str, float] = {}
        self.cpu: Dict[str, float] = {}
        self._run_start = self._stage_start = (time.time(), cpu_seconds())

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the ``with`` block as stage ``name``."""
        self._stage_start = (time.time(), cpu_seconds())
        yield
        self.wall[name], self.cpu[name] = self._since(self._stage_start)

    def elapsed(self) -> float:
        """Wall seconds since the current stage began."""
        return time.time() - self._stage_start[0]

    def stop(self) -> None:
        """Record the whole run as 'total'."""
        self.wall['total'], self.cpu['total'] = self._since(self._run_start)

    @staticmethod
    def _since(start: Tuple[float, float]) -> Tuple[float, float]:
        return time.time() - start[0], cpu_seconds() - start[1]


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
                 timings: Dict[str, float], cpu_times: Dict[str, float]) -> None:
    stems = sorted(next(iter(report['methods'].values()))['images'])
    card = report['ae_report_card']
    lines = [
        '# aesop-demo report', '',
        'Validation images (held-out skimage photos, x4 MATLAB-bicubic LR). PSNR/SSIM on the Y channel '
        f'with a {report["crop_border"]} px border crop (BasicSR\'s calculate_psnr/calculate_ssim); '
        '"HF energy SR/HR" is the SR image\'s spectral energy above the LR Nyquist frequency divided by HR\'s '
        '(Y channel, Hann-windowed FFT; 1 = as detailed as HR, below 1 = blurred, above 1 = more high-frequency '
        'energy than HR, e.g. noise or GAN artefacts; calculate_hf_energy_ratio); '
        '"L1 to HR" and "AESOP to HR" are mean |SR-HR| and mean |AE(SR)-AE(HR)| on RGB in [0, 1]. '
        'PSNR-RGB (all three channels) and the mean-colour offset see colour casts, which PSNR-Y and SSIM-Y '
        'cannot: the offset is mean(SR) - mean(HR) per channel in grey levels (0-255), 0 for a faithful colour; '
        'the table gives the worst channel (calculate_colour_offset), the next table every channel.', '',
        markdown_table(report), '',
        'Mean-colour offset of each output from HR, R/G/B in grey levels (pink: G below 0, R and B above):', '',
        colour_table(report), '',
        f'Runs: PSNR network {settings.psnr_iters} iterations, auto-encoder {settings.ae_iters}, '
        f'each GAN {settings.gan_iters} (PSNR network and auto-encoder: batch {settings.pretrain_batch_size} of '
        f'{PRETRAIN_GT_SIZE} px HR patches; GANs: batch {settings.batch_size} of {GT_SIZE} px). {vgg_note}',
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
              'Wall time per stage (s): ' + ', '.join(f'{k} {v:.0f}' for k, v in timings.items()),
              'CPU time per stage (s, user + system, all threads): '
              + ', '.join(f'{k} {v:.0f}' for k, v in cpu_times.items()), '']
    with open(osp.join(root, 'README.md'), 'w') as f:
        f.write('\n'.join(lines))


def run_demo(args: argparse.Namespace) -> str:
    """Run all stages; returns the report folder."""
    clock = StageClock()
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
                    'or experiments/pretrained_models (nothing is downloaded); the GANs use pixel, LDL and adversarial '
                    f'losses only, the adversarial at {GAN_WEIGHT_WITHOUT_PERCEPTUAL:g} instead of {GAN_WEIGHT:g}.')
    with open(osp.join(root, MARKER), 'w') as f:
        json.dump({'settings': vars(settings), 'vgg19': vgg_file, 'command': sys.argv}, f, indent=2)
    print(f'aesop-demo: report folder {root}')
    print(f'  {vgg_note}')
    with clock.stage('data'):
        print('[1/5] building a paired x4 dataset from scikit-image photos ...', flush=True)
        train = write_paired_dataset(osp.join(root, 'data', 'train'), 4, TRAIN_HR_SIZE, TRAIN_PHOTOS, TRAIN_CROPS)
        val = write_paired_dataset(osp.join(root, 'data', 'val'), 4, VAL_HR_SIZE, VAL_PHOTOS, 1)
        assert train == {k: osp.join(root, v) for k, v in dataset_folders('train').items()}
        print(f'      {len(os.listdir(train["gt"]))} train pairs ({TRAIN_HR_SIZE} px HR), '
              f'{len(os.listdir(val["gt"]))} validation pairs ({VAL_HR_SIZE} px HR)')
        options = write_options(root, settings)
        os.makedirs(osp.join(root, 'logs'), exist_ok=True)

    iters = {'psnr': settings.psnr_iters, 'ae': settings.ae_iters, 'gan_l1': settings.gan_iters,
             'gan_aesop': settings.gan_iters}
    logs = {stage: f'logs/{osp.splitext(osp.basename(opt_file))[0]}.log' for stage, opt_file in options.items()}

    def report_stage(stage: str, psnr: Optional[float], seconds: float, cpu: Optional[float] = None) -> None:
        what = {'ae': 'AE(HR) vs HR', 'psnr': 'SR vs HR'}.get(stage, "the EMA generator's SR vs HR")
        result = f', validation PSNR-Y ({what}) {psnr:.2f} dB' if psnr is not None else ''
        cpu_note = f' (CPU {cpu:.0f} s)' if cpu is not None else ''
        print(f'      {stage}: done in {seconds:.0f} s{cpu_note}{result}; log {logs[stage]}', flush=True)

    for step, stage in (('[2/5]', 'psnr'), ('[3/5]', 'ae')):
        with clock.stage(stage):
            print(f'{step} {STAGE_TITLES[stage]}, {iters[stage]} iterations ...', flush=True)
            psnr = run_training(root, options[stage], logs[stage], iters[stage])
        report_stage(stage, psnr, clock.wall[stage], clock.cpu[stage])

    # The two GANs need only stages 1 and 2: they train side by side, one thread each. A single run
    # keeps two cores only ~70% busy (the PSNR stage: CPU time 1.4x its wall time), the pair ~90%
    # (1.8x), so on two cores the pair beats two-thread runs one after the other.
    gans = ('gan_l1', 'gan_aesop')
    with clock.stage('gans'):
        print(f'[4/5] {STAGE_TITLES["gans"]}, {settings.gan_iters} iterations each, side by side:', flush=True)
        for stage in gans:
            print(f'      {stage}: {STAGE_TITLES[stage]}', flush=True)
        run_side_by_side(root, [(options[stage], logs[stage], iters[stage]) for stage in gans],
                         on_finish=lambda index, psnr: report_stage(gans[index], psnr, clock.elapsed()))

    with clock.stage('report'):
        print('[5/5] evaluating on the validation images and drawing panels ...', flush=True)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small images: one thread is as fast, and does not spin-wait on a busy CPU
        try:
            generators = {key: osp.join(root, checkpoint_path(key)) for key in ('psnr', 'gan_l1', 'gan_aesop')}
            report = build_report(root, GENERATOR, AUTOENCODER, generators, osp.join(root, checkpoint_path('ae')), val)
        finally:
            torch.set_num_threads(threads)
    clock.stop()
    write_readme(root, report, settings, options, vgg_note, clock.wall, clock.cpu)
    print(markdown_table(report))
    print('Mean-colour offset of each output from HR (R/G/B, grey levels):')
    print(colour_table(report))
    print(f'Auto-encoder report card ({osp.join(root, report["ae_report_card"]["folder"], "report.md")}):')
    for line in report['ae_report_card']['verdicts'].values():
        print(f'  - {line}')
    if report['lpips_note']:
        print(f'  LPIPS not reported: {report["lpips_note"]}')
    print(f'Done in {clock.wall["total"] / 60:.1f} min ({clock.cpu["total"] / 60:.1f} CPU min). '
          f'Report: {osp.join(root, "README.md")}; panels in {osp.join(root, "panels")}')
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
