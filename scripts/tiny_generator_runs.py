"""Train each generator family with AESOP at a tiny size and print what the runs logged (the README's table).

For every generator (BasicSR's RRDBNet and SwinIR; DRCT, HAT and SPAN through spandrel) this writes the
AESOP recipe's model (ESRGANLDLModel: AESOPLoss as the pixel term, LDL, relativistic GAN with a VGG-style
discriminator, EMA) with tiny networks, runs ``aesop-train`` (BasicSR's train_pipeline) as a separate
process on scikit-image's sample photos (128-px HR, MATLAB-bicubic LR), and prints one markdown row per
generator: its option block, its parameter count, and the loss line BasicSR logged at the last iteration.
No perceptual loss (its VGG19 weights would be downloaded). The auto-encoder is random (full-scale
initialisation, so AESOP carries signal): the numbers show the mechanics, not quality. SPAN runs with
img_range 1 here (its own files use 255 with their pretrained weights; from scratch, 1 starts in range).

    python scripts/tiny_generator_runs.py [--iters 10] [--out /tmp/tiny_generator_runs]
"""
import argparse
import os
import re
import subprocess
import sys
from copy import deepcopy
from os import path as osp

import torch
import yaml

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
GENERATORS = {
    'RRDBNet': dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=16, num_block=2, num_grow_ch=8, scale=4),
    'SwinIR': dict(type='SwinIR', upscale=4, in_chans=3, img_size=32, window_size=8, img_range=1., depths=[2, 2],
                   embed_dim=24, num_heads=[2, 2], mlp_ratio=2, upsampler='pixelshuffle', resi_connection='1conv'),
    'DRCT': dict(type='DRCT', upscale=4, in_chans=3, img_size=32, window_size=8, compress_ratio=3, squeeze_factor=30,
                 conv_scale=0.01, overlap_ratio=0.5, img_range=1., depths=[1, 1], embed_dim=24, num_heads=[2, 2],
                 mlp_ratio=2, upsampler='pixelshuffle', resi_connection='1conv', gc=8, use_checkpoint=True),
    'HAT': dict(type='HAT', upscale=4, in_chans=3, img_size=32, window_size=8, compress_ratio=3, squeeze_factor=4,
                conv_scale=0.01, overlap_ratio=0.5, img_range=1., depths=[1, 1], embed_dim=24, num_heads=[2, 2],
                mlp_ratio=2, upsampler='pixelshuffle', resi_connection='1conv', num_feat=16, use_checkpoint=True),
    'SPAN': dict(type='SPAN', num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=4, bias=True, img_range=1.,
                 rgb_mean=[0.4488, 0.4371, 0.4040]),
}
AUTOENCODER = dict(type='AESOPAutoEncoder', scale=4, num_in_ch=3, num_feat=32, num_grow_ch=8, num_block=1,
                   decoder=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=16, num_block=2, num_grow_ch=8,
                                scale=4))


def write_autoencoder(path: str) -> str:
    from basicsr.archs import build_network
    from basicsr.archs.arch_util import default_init_weights
    torch.manual_seed(0)
    ae = build_network(deepcopy(AUTOENCODER))
    default_init_weights(ae, 1)
    torch.save({'params_ema': ae.state_dict()}, path)
    return path


def options(name: str, generator: dict, data: dict, ae_path: str, iters: int) -> dict:
    """The AESOP recipe's model and losses (no perceptual term), tiny networks, ``iters`` iterations."""
    adam = {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]}
    return {
        'name': f'tiny_aesop_{name}', 'model_type': 'ESRGANLDLModel', 'scale': 4, 'num_gpu': 'auto', 'manual_seed': 0,
        'datasets': {'train': {
            'name': 'photos', 'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'},
            'dataroot_gt': data['gt'], 'dataroot_lq': data['lq'], 'filename_tmpl': '{}', 'gt_size': 128,
            'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
            'dataset_enlarge_ratio': 10, 'prefetch_mode': None}},
        'network_g': deepcopy(generator),
        'network_d': {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3, 'num_feat': 16, 'input_size': 128},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0.999, 'optim_g': dict(adam), 'optim_d': dict(adam),
            'scheduler': {'type': 'MultiStepLR', 'milestones': [iters], 'gamma': 1}, 'total_iter': iters,
            'warmup_iter': -1,
            'pixel_opt': {'type': 'AESOPLoss', 'loss_weight': 1.0, 'criterion': 'l1', 'reduction': 'mean',
                          'autoencoder': deepcopy(AUTOENCODER), 'pretrain_network_ae': ae_path,
                          'param_key_ae': 'params_ema'},
            'ldl_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
            'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'real_label_val': 1.0, 'fake_label_val': 0.0,
                        'loss_weight': 5e-3},
            'net_d_iters': 1, 'net_d_init_iters': 0},
        'logger': {'print_freq': max(1, iters // 2), 'save_checkpoint_freq': iters, 'use_tb_logger': False,
                   'wandb': None},
        'dist_params': {'backend': 'nccl', 'port': 29500},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--out', default='/tmp/tiny_generator_runs')
    parser.add_argument('--only', nargs='*', choices=sorted(GENERATORS), help='run these generators only')
    args = parser.parse_args(argv)

    sys.path.insert(0, REPO_ROOT)
    from aesop_basicsr.utils.sample_data import PHOTO_NAMES, write_paired_dataset
    os.makedirs(args.out, exist_ok=True)
    data = write_paired_dataset(osp.join(args.out, 'photos'), scale=4, hr_size=128, names=PHOTO_NAMES[:4],
                                crops_per_photo=2)
    ae_path = write_autoencoder(osp.join(args.out, 'tiny_ae.pth'))
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    rows = []
    for name in args.only or GENERATORS:
        opt_file = osp.join(args.out, f'{name}.yml')
        with open(opt_file, 'w') as f:
            yaml.safe_dump(options(name, GENERATORS[name], data, ae_path, args.iters), f, sort_keys=False)
        proc = subprocess.run([sys.executable, '-m', 'aesop_basicsr.train', '-opt', opt_file], cwd=args.out, env=env,
                              capture_output=True, text=True)  # experiments/ under --out
        text = proc.stdout + proc.stderr
        if proc.returncode:
            print(text[-4000:], file=sys.stderr)
            rows.append(f'| {name} | failed (exit {proc.returncode}) | |')
            continue
        params = re.search(r'Network: \w+, with parameters: ([\d,]+)', text)
        losses = [line for line in text.splitlines() if f'iter:{args.iters:8d},' in line]
        loss = re.sub(r'^.*\] (?=l_g_)', '', losses[-1]) if losses else '(no loss line)'
        block = ', '.join(f'{k}: {v}' for k, v in GENERATORS[name].items() if k != 'type')
        rows.append(f'| {name} | `{block}` | {params.group(1) if params else "?"} | iter {args.iters}: `{loss}` |')
        print(rows[-1], flush=True)
    print('\n| generator | tiny network_g | parameters | logged |\n| --- | --- | --- | --- |')
    print('\n'.join(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
