"""Soak test: a tiny ESRGAN + AESOPLoss trains for many iterations on CPU with flat resident memory.

    .venv/bin/python scripts/soak_aesop_training.py              # 500 iterations, warm-up 50
    .venv/bin/python scripts/soak_aesop_training.py --iters 2000 --warmup 100

Runs ``aesop-train``'s real pipeline in this process (BasicSR's train_pipeline with the plugin's
hooks: checkpoints, training states and validation included) on real photos, and reads the resident
set size (VmRSS) after every iteration. Passes (exit 0) when the largest RSS after the warm-up is
less than ``--max-growth`` (5 %) above the RSS at the end of the warm-up. Not part of the timed test
suite: it takes minutes.
"""
import argparse
import subprocess
import sys
import tempfile
import time
from os import path as osp
from typing import List

import torch
import yaml

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import aesop_basicsr  # noqa: E402,F401  (registers AESOP; must precede basicsr)
from basicsr.archs.arch_util import default_init_weights  # noqa: E402

from aesop_basicsr import train as aesop_train  # noqa: E402
from aesop_basicsr.archs.aesop_autoencoder_arch import AESOPAutoEncoder  # noqa: E402
from aesop_basicsr.utils.sample_data import PHOTO_NAMES, write_paired_dataset  # noqa: E402

NET_G = dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4, scale=4)
TINY_AE = dict(type='AESOPAutoEncoder', scale=4, num_in_ch=3, num_feat=48, num_grow_ch=4, num_block=1,
               decoder=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4,
                            scale=4))


def resident_kib() -> int:
    """This process's resident set size in KiB (Linux /proc)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise RuntimeError('no VmRSS in /proc/self/status')


def write_run(work: str, iters: int) -> str:
    train = write_paired_dataset(osp.join(work, 'data', 'train'), scale=4, hr_size=128, names=PHOTO_NAMES[:4])
    val = write_paired_dataset(osp.join(work, 'data', 'val'), scale=4, hr_size=128, names=PHOTO_NAMES[4:6])
    torch.manual_seed(0)
    ae = AESOPAutoEncoder(**{k: v for k, v in TINY_AE.items() if k != 'type'})
    default_init_weights(ae, 1)  # a random AE at full scale responds to its input as a trained one does
    ae_path = osp.join(work, 'tiny_ae.pth')
    torch.save({'params_ema': ae.state_dict()}, ae_path)
    every = max(iters // 4, 1)
    dataset = {'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'}, 'filename_tmpl': '{}'}
    opt = {
        'name': 'soak_esrgan_aesop', 'model_type': 'ESRGANModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': dict(dataset, name='photos', dataroot_gt=train['gt'], dataroot_lq=train['lq'], gt_size=128,
                          use_hflip=True, use_rot=True, num_worker_per_gpu=0, batch_size_per_gpu=2,
                          dataset_enlarge_ratio=1, prefetch_mode=None),
            'val': dict(dataset, name='photos_val', dataroot_gt=val['gt'], dataroot_lq=val['lq']),
        },
        'network_g': NET_G,
        'network_d': {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3, 'num_feat': 4, 'input_size': 128},
        'path': {'pretrain_network_g': None, 'resume_state': None, 'experiments_root': osp.join(work, 'run')},
        'train': {
            'ema_decay': 0.999,
            'optim_g': {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.99]},
            'optim_d': {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [iters // 2], 'gamma': 0.5},
            'total_iter': iters, 'warmup_iter': -1,
            'pixel_opt': {'type': 'AESOPLoss', 'loss_weight': 1.0, 'autoencoder': TINY_AE,
                          'pretrain_network_ae': ae_path, 'param_key_ae': 'params_ema'},
            'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 5e-3},
            'net_d_iters': 1, 'net_d_init_iters': 0,
        },
        'val': {'val_freq': every, 'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr',
                                                                            'crop_border': 4}}},
        'logger': {'print_freq': every, 'save_checkpoint_freq': every, 'use_tb_logger': False},
    }
    path = osp.join(work, 'soak.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def main() -> int:
    if sys.argv[1:2] == ['--prepare']:  # the child that writes the data and the auto-encoder
        print(write_run(sys.argv[2], int(sys.argv[3])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=500)
    parser.add_argument('--warmup', type=int, default=50, help='iterations before the reference RSS')
    parser.add_argument('--max-growth', type=float, default=0.05, help='allowed RSS growth after warm-up')
    parser.add_argument('--work', help='working folder (default: a new temporary one)')
    args = parser.parse_args()
    if not 0 < args.warmup < args.iters:
        parser.error('--warmup must be between 0 and --iters')
    torch.set_num_threads(1)
    work = args.work or tempfile.mkdtemp(prefix='aesop-soak-')
    # prepared in a child process: building networks here would set up BasicSR's logger before
    # train_pipeline does (without its log file), and would count in this process's memory
    opt_file = subprocess.run([sys.executable, __file__, '--prepare', work, str(args.iters)], check=True,
                              capture_output=True, text=True).stdout.strip().splitlines()[-1]

    rss: List[int] = []
    build = aesop_train.build_model

    def build_and_measure(opt):
        model = build(opt)
        step = model.optimize_parameters

        def optimize_and_measure(current_iter):
            step(current_iter)
            rss.append(resident_kib())

        model.optimize_parameters = optimize_and_measure
        return model

    aesop_train.build_model = build_and_measure
    sys.argv = ['aesop-train', '-opt', opt_file]
    start = time.time()
    aesop_train.main(work)
    minutes = (time.time() - start) / 60

    reference = rss[args.warmup - 1]
    after = rss[args.warmup:]
    growth = max(after) / reference - 1
    print(f'\n{len(rss)} iterations in {minutes:.1f} min ({work})')
    for it in sorted({1, args.warmup // 2, args.warmup, *range(100, len(rss) + 1, 100), len(rss)}):
        print(f'  RSS after iteration {it:5d}: {rss[it - 1] / 1024:8.1f} MiB')
    print(f'RSS after warm-up (iteration {args.warmup}): {reference / 1024:.1f} MiB; largest after it: '
          f'{max(after) / 1024:.1f} MiB; final: {rss[-1] / 1024:.1f} MiB; growth {100 * growth:+.2f} % '
          f'(limit {100 * args.max_growth:.0f} %)')
    ok = growth < args.max_growth
    print('PASS: resident memory is flat' if ok else 'FAIL: resident memory grows')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
