"""Tiny training runs for the reliability tests: option dicts, an auto-encoder that carries signal, processes.

The networks are a few thousand parameters, so that BasicSR's real train_pipeline runs in seconds on
two CPU cores, also as two torchrun processes.
"""
import os
import subprocess
import sys
from copy import deepcopy
from os import path as osp
from typing import Dict, List, Optional

import torch
import yaml
from basicsr.archs.arch_util import default_init_weights
from basicsr.archs.rrdbnet_arch import RRDBNet

from aesop_basicsr.archs.aesop_autoencoder_arch import AESOPAutoEncoder
from conftest import REPO_ROOT

NET_G = dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4, scale=4)
NET_D = dict(type='VGGStyleDiscriminator', num_in_ch=3, num_feat=4, input_size=128)
TINY_DECODER = dict(NET_G)
TINY_AE = dict(type='AESOPAutoEncoder', scale=4, num_in_ch=3, num_feat=48, num_grow_ch=4, num_block=1,
               decoder=TINY_DECODER)


def kwargs_of(opt: dict) -> dict:
    return {k: v for k, v in opt.items() if k != 'type'}


def write_autoencoder(path: str, ae_opt: dict = TINY_AE, seed: int = 0) -> str:
    """An auto-encoder at full initialisation scale (it responds to its input as a trained one does)."""
    torch.manual_seed(seed)
    ae = AESOPAutoEncoder(**kwargs_of(ae_opt))
    default_init_weights(ae, 1)
    state = ae.state_dict()
    torch.save({'params': state, 'params_ema': state}, path)
    return path


def write_decoder(path: str, seed: int = 1) -> str:
    """A tiny RRDBNet saved like a BasicSR SR checkpoint: the pretrained decoder of the AE model."""
    torch.manual_seed(seed)
    net = RRDBNet(**kwargs_of(TINY_DECODER))
    default_init_weights(net, 1)
    torch.save({'params': net.state_dict()}, path)
    return path


def _dataset(name: str, folders: dict, **extra) -> dict:
    return dict(name=name, type='PairedImageDataset', io_backend={'type': 'disk'}, dataroot_gt=folders['gt'],
                dataroot_lq=folders['lq'], filename_tmpl='{}', **extra)


def esrgan_aesop_options(name: str, paired: dict, ae_path: str, total_iter: int, save_every: int = 2,
                         val_every: Optional[int] = None) -> dict:
    """BasicSR's ESRGANModel (relativistic GAN, EMA) with ``pixel_opt: AESOPLoss``; no VGG (it would dominate)."""
    return {
        'name': name, 'model_type': 'ESRGANModel', 'scale': 4, 'num_gpu': 'auto', 'manual_seed': 0,
        'datasets': {
            'train': _dataset('photos', paired['train'], gt_size=128, use_hflip=True, use_rot=True,
                              num_worker_per_gpu=0, batch_size_per_gpu=1, dataset_enlarge_ratio=1,
                              prefetch_mode=None),
            'val': _dataset('photos_val', paired['val']),
        },
        'network_g': deepcopy(NET_G), 'network_d': deepcopy(NET_D),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0.9,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'optim_d': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [1, 3], 'gamma': 0.5},
            'total_iter': total_iter, 'warmup_iter': -1,
            'pixel_opt': {'type': 'AESOPLoss', 'loss_weight': 1.0, 'criterion': 'l1', 'autoencoder': deepcopy(TINY_AE),
                          'pretrain_network_ae': ae_path, 'param_key_ae': 'params_ema'},
            'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'real_label_val': 1.0, 'fake_label_val': 0.0,
                        'loss_weight': 5e-3},
            'net_d_iters': 1, 'net_d_init_iters': 0,
        },
        'val': {'val_freq': val_every or 10**6, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_every, 'use_tb_logger': False, 'wandb': None},
        'dist_params': {'backend': 'nccl', 'port': 29500},
    }


def sr_model_options(name: str, paired: dict, total_iter: int, scale: int = 4, lr: float = 1e-3,
                     save_every: Optional[int] = None, val_every: Optional[int] = None,
                     metrics: Optional[dict] = None) -> dict:
    """BasicSR's SRModel (a tiny RRDBNet, L1): the cheapest real training run."""
    return {
        'name': name, 'model_type': 'SRModel', 'scale': scale, 'num_gpu': 'auto', 'manual_seed': 0,
        'datasets': {
            'train': _dataset('photos', paired['train'], gt_size=16 * scale, use_hflip=True, use_rot=True,
                              num_worker_per_gpu=0, batch_size_per_gpu=1, dataset_enlarge_ratio=1),
            'val': _dataset('photos_val', paired['val']),
        },
        'network_g': dict(NET_G, scale=scale),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'optim_g': {'type': 'Adam', 'lr': lr, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [10**6], 'gamma': 0.5},
            'total_iter': total_iter, 'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
        },
        'val': {'val_freq': val_every or 10**6, 'save_img': False,
                'metrics': metrics or {'psnr': {'type': 'calculate_psnr', 'crop_border': scale}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_every or total_iter, 'use_tb_logger': False},
        'dist_params': {'backend': 'gloo'},
    }


def ae_model_options(name: str, paired: dict, decoder_path: str, total_iter: int) -> dict:
    """AESOPAEModel with the decoder frozen for the whole run (left out of DDP's and the optimizer's parameters)."""
    return {
        'name': name, 'model_type': 'AESOPAEModel', 'scale': 4, 'num_gpu': 'auto', 'manual_seed': 0,
        'datasets': {
            'train': _dataset('photos', paired['train'], gt_size=64, use_hflip=True, use_rot=True,
                              num_worker_per_gpu=0, batch_size_per_gpu=1, dataset_enlarge_ratio=1),
            'val': _dataset('photos_val', paired['val']),
        },
        'network_g': deepcopy(TINY_AE),
        'path': {'pretrain_network_g': None, 'pretrain_network_decoder': decoder_path, 'param_key_decoder': 'params',
                 'resume_state': None},
        'train': {
            'ema_decay': 0.9, 'freeze_decoder_iters': -1,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
            'total_iter': total_iter, 'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
            'lr_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
        },
        'val': {'val_freq': total_iter, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': total_iter, 'use_tb_logger': False},
    }


def write_yaml(path: str, opt: dict) -> str:
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return str(path)


def process_env(**extra: str) -> Dict[str, str]:
    """This checkout first on the path, one thread per process (two cores, often shared)."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
               OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    env.pop('AESOP_DEBUG', None)
    env.update(extra)
    return env


def train_command(*args: str) -> List[str]:
    return [sys.executable, '-m', 'aesop_basicsr.train', *args]


def torchrun_command(nproc: int, *args: str) -> List[str]:
    """``torchrun --standalone --nproc_per_node N -m aesop_basicsr.train ARGS --launcher pytorch``."""
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(nproc),
            '-m', 'aesop_basicsr.train', *args, '--launcher', 'pytorch']


def run(cmd: List[str], cwd: str, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=process_env(**env), capture_output=True, text=True, timeout=timeout)


def must_succeed(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if proc.returncode != 0:
        raise AssertionError(f'{" ".join(proc.args)} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}')
    return proc


def read_logs(exp_root: str) -> str:
    """Every BasicSR training log of a run, oldest first."""
    names = sorted(n for n in os.listdir(exp_root) if n.startswith('train_') and n.endswith('.log'))
    return ''.join(open(osp.join(exp_root, n)).read() for n in names)
