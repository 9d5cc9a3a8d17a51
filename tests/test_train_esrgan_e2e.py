"""End to end through BasicSR's real train/test pipelines: ESRGAN with ``pixel_opt: AESOPLoss``.

``python -m aesop_basicsr.train`` trains BasicSR's ESRGANModel (tiny RRDBNet, VGGStyleDiscriminator on
128-px GT patches of real photos, VGG19 perceptual loss with stand-in weights, relativistic GAN loss)
with only the pixel loss swapped for AESOPLoss, validates with PSNR, saves, resumes with
``--auto_resume`` to a higher total_iter, and ``python -m aesop_basicsr.test`` runs the trained net_g.
The three runs happen once per module; each test checks one promise on their outputs.
"""
import glob
import hashlib
import math
import os
import re
from os import path as osp

import cv2
import pytest
import torch
import yaml
from basicsr.archs.arch_util import default_init_weights
from basicsr.archs.discriminator_arch import VGGStyleDiscriminator
from basicsr.archs.rrdbnet_arch import RRDBNet

from aesop_basicsr.archs.aesop_autoencoder_arch import AESOPAutoEncoder
from conftest import run_module

NAME = 'esrgan_aesop_e2e'
FIRST_ITERS, RESUMED_ITERS = 4, 6  # checkpoints every 2 iterations
NET_G = dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4, scale=4)
NET_D = dict(type='VGGStyleDiscriminator', num_in_ch=3, num_feat=4, input_size=128)
TINY_AE = dict(type='AESOPAutoEncoder', scale=4, num_in_ch=3, num_feat=16, num_grow_ch=4, num_block=1,
               decoder=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4,
                            scale=4))
METRIC_LINE = re.compile(r'# psnr: (\S+)')


def sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def kwargs_of(opt: dict) -> dict:
    return {k: v for k, v in opt.items() if k != 'type'}


def train_options(paired_x4: dict, ae_path: str) -> dict:
    return {
        'name': NAME,
        'model_type': 'ESRGANModel',
        'scale': 4,
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {
            'train': {
                'name': 'photos', 'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'},
                'dataroot_gt': paired_x4['train']['gt'], 'dataroot_lq': paired_x4['train']['lq'],
                'filename_tmpl': '{}', 'gt_size': 128, 'use_hflip': True, 'use_rot': True,
                'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1,
                'prefetch_mode': None,
            },
            'val': {
                'name': 'photos_val', 'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'},
                'dataroot_gt': paired_x4['val']['gt'], 'dataroot_lq': paired_x4['val']['lq'],
                'filename_tmpl': '{}',
            },
        },
        'network_g': NET_G,
        'network_d': NET_D,
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0.999,
            'optim_g': {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'optim_d': {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
            'total_iter': FIRST_ITERS,
            'warmup_iter': -1,
            # the only change against an ESRGAN option file: pixel_opt
            'pixel_opt': {'type': 'AESOPLoss', 'loss_weight': 1.0, 'criterion': 'l1', 'reduction': 'mean',
                          'autoencoder': TINY_AE, 'pretrain_network_ae': ae_path, 'param_key_ae': 'params_ema',
                          'strict_load_ae': True},
            'perceptual_opt': {'type': 'PerceptualLoss', 'vgg_type': 'vgg19', 'use_input_norm': True,
                               'range_norm': False, 'perceptual_weight': 1.0, 'style_weight': 0,
                               'criterion': 'l1',
                               'layer_weights': {'conv1_2': 0.1, 'conv2_2': 0.1, 'conv3_4': 1, 'conv4_4': 1,
                                                 'conv5_4': 1}},
            'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'real_label_val': 1.0, 'fake_label_val': 0.0,
                        'loss_weight': 5e-3},
            'net_d_iters': 1,
            'net_d_init_iters': 0,
        },
        'val': {'val_freq': 2, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': False}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False, 'wandb': None},
        'dist_params': {'backend': 'nccl', 'port': 29500},
    }


def inference_options(paired_x4: dict, net_g_path: str) -> dict:
    return {
        'name': NAME + '_test',
        'model_type': 'ESRGANModel',
        'scale': 4,
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {
            'test_1': {
                'name': 'photos_test', 'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'},
                'dataroot_gt': paired_x4['val']['gt'], 'dataroot_lq': paired_x4['val']['lq'],
                'filename_tmpl': '{}',
            },
        },
        'network_g': NET_G,
        'path': {'pretrain_network_g': net_g_path, 'param_key_g': 'params_ema', 'strict_load_g': True},
        'val': {'save_img': True, 'suffix': None,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}}},
    }


def write_yaml(path: str, opt: dict) -> str:
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def logs(folder: str, prefix: str) -> list:
    """Log files of BasicSR runs in ``folder``, oldest first (their names end with a timestamp)."""
    return sorted(glob.glob(osp.join(folder, f'{prefix}_*.log')))


def metric_values(log_text: str) -> list:
    return [float(v) for v in METRIC_LINE.findall(log_text)]


@pytest.fixture(scope='module')
def runs(tmp_path_factory, paired_x4, stand_in_vgg19) -> dict:
    """Train, resume and test once; return the paths and facts the tests check."""
    work = tmp_path_factory.mktemp('esrgan_e2e')
    cwd = str(work / 'run')
    os.makedirs(cwd)
    # BasicSR's VGG looks for this relative file first; the run must rely on $TORCH_HOME instead
    assert not osp.exists(osp.join(cwd, 'experiments', 'pretrained_models', 'vgg19-dcbb9e9d.pth'))

    torch.manual_seed(0)
    ae = AESOPAutoEncoder(**kwargs_of(TINY_AE))
    # at their usual 0.1 initialisation scale random weights map every image to nearly the same
    # output; at full scale psi responds to its input as a trained auto-encoder does
    default_init_weights(ae, 1)
    ae_path = str(work / 'tiny_ae.pth')
    torch.save({'params_ema': ae.state_dict()}, ae_path)
    ae_digest, ae_mtime = sha256(ae_path), os.stat(ae_path).st_mtime_ns

    train_yml = write_yaml(str(work / 'train.yml'), train_options(paired_x4, ae_path))
    run_module('aesop_basicsr.train', '-opt', train_yml, cwd=cwd)
    exp = osp.join(cwd, 'experiments', NAME)
    first_logs = logs(exp, f'train_{NAME}')
    first_files = set(os.listdir(osp.join(exp, 'models'))), set(os.listdir(osp.join(exp, 'training_states')))

    resumed = run_module('aesop_basicsr.train', '-opt', train_yml, '--auto_resume', '--force_yml',
                         f'train:total_iter={RESUMED_ITERS}', cwd=cwd)
    resumed_logs = [p for p in logs(exp, f'train_{NAME}') if p not in first_logs]

    test_yml = write_yaml(str(work / 'test.yml'),
                          inference_options(paired_x4, osp.join(exp, 'models', 'net_g_latest.pth')))
    run_module('aesop_basicsr.test', '-opt', test_yml, cwd=cwd)

    return dict(cwd=cwd, exp=exp, ae_path=ae_path, ae_digest=ae_digest, ae_mtime=ae_mtime, ae=ae,
                first_logs=first_logs, first_files=first_files, resumed=resumed, resumed_logs=resumed_logs)


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_training_logs_finite_aesop_loss_and_validation_psnr(runs):
    assert len(runs['first_logs']) == 1, runs['first_logs']
    text = read(runs['first_logs'][0])
    assert 'AESOPLoss' in text  # the option dump shows the pixel loss that was used
    pix = [float(v) for v in re.findall(r'l_g_pix: (\S+)', text)]
    assert len(pix) == FIRST_ITERS and all(math.isfinite(v) and v > 0 for v in pix), pix
    psnr = metric_values(text)
    # validation at iterations 2 and 4, then once more after the last save
    assert len(psnr) == 3 and all(math.isfinite(v) and 0 < v < 100 for v in psnr), psnr


def test_checkpoints_and_states_are_saved(runs):
    models, states = runs['first_files']
    for it in (2, 4, 'latest'):
        assert f'net_g_{it}.pth' in models and f'net_d_{it}.pth' in models, models
    assert {'2.state', '4.state'} <= states, states


def test_checkpoints_hold_no_autoencoder_tensors(runs):
    models = osp.join(runs['exp'], 'models')
    g_keys = set(RRDBNet(**kwargs_of(NET_G)).state_dict())
    d_keys = set(VGGStyleDiscriminator(**kwargs_of(NET_D)).state_dict())
    ae_keys = set(runs['ae'].state_dict())
    for it in (2, 4, 6, 'latest'):
        net_g = torch.load(osp.join(models, f'net_g_{it}.pth'), map_location='cpu', weights_only=True)
        assert set(net_g) == {'params', 'params_ema'}
        for params in net_g.values():
            assert set(params) == g_keys  # exactly the generator, nothing of the loss's auto-encoder
        net_d = torch.load(osp.join(models, f'net_d_{it}.pth'), map_location='cpu', weights_only=True)
        assert set(net_d['params']) == d_keys
    assert not any(k.startswith(('autoencoder.', 'cri_pix.')) for k in g_keys | d_keys)
    assert ae_keys - g_keys  # the check above could tell the two apart

    # the optimizers in the training state hold exactly net_g's and net_d's parameters
    state = torch.load(osp.join(runs['exp'], 'training_states', '4.state'), map_location='cpu',
                       weights_only=False)
    n_g = len(list(RRDBNet(**kwargs_of(NET_G)).parameters()))
    n_d = len(list(VGGStyleDiscriminator(**kwargs_of(NET_D)).parameters()))
    sizes = [sum(len(group['params']) for group in o['param_groups']) for o in state['optimizers']]
    assert sizes == [n_g, n_d]


def test_auto_resume_continues_from_the_saved_state(runs):
    assert len(runs['resumed_logs']) == 1, runs['resumed_logs']
    text = read(runs['resumed_logs'][0])
    state_file = osp.join(runs['exp'], 'training_states', f'{FIRST_ITERS}.state')
    assert f'Resuming from training state {state_file}.' in runs['resumed'].stdout
    assert re.search(rf'Resuming training from epoch: \d+, iter: {FIRST_ITERS}\.', text), text[-2000:]
    iters = [int(v) for v in re.findall(r'iter:\s*(\d+), lr:', text)]
    assert iters == list(range(FIRST_ITERS + 1, RESUMED_ITERS + 1)), iters
    assert all(math.isfinite(v) for v in metric_values(text)) and metric_values(text)

    new_models = set(os.listdir(osp.join(runs['exp'], 'models'))) - runs['first_files'][0]
    assert {'net_g_6.pth', 'net_d_6.pth'} <= new_models, new_models
    assert '6.state' in os.listdir(osp.join(runs['exp'], 'training_states'))
    # the resumed generator started from net_g_4, not from a fresh initialisation: two Adam steps
    # at lr 1e-4 move each weight by about 2e-4 at most
    models = osp.join(runs['exp'], 'models')
    net_g_4 = torch.load(osp.join(models, 'net_g_4.pth'), weights_only=True)['params']
    net_g_6 = torch.load(osp.join(models, 'net_g_6.pth'), weights_only=True)['params']
    drift = max((net_g_6[k] - net_g_4[k]).abs().max().item() for k in net_g_4)
    assert 0 < drift < 1e-3, drift


def test_autoencoder_file_is_untouched(runs):
    assert os.stat(runs['ae_path']).st_mtime_ns == runs['ae_mtime']
    assert sha256(runs['ae_path']) == runs['ae_digest']


def test_test_entry_point_writes_images_and_metric(runs):
    results = osp.join(runs['cwd'], 'results', NAME + '_test')
    images = sorted(glob.glob(osp.join(results, 'visualization', 'photos_test', '*.png')))
    assert len(images) == 2, images
    assert all(cv2.imread(image).shape == (128, 128, 3) for image in images)  # x4 of the 32-px LR inputs
    test_logs = logs(results, f'test_{NAME}_test')
    assert len(test_logs) == 1
    psnr = metric_values(read(test_logs[0]))
    assert len(psnr) == 1 and math.isfinite(psnr[0]) and 0 < psnr[0] < 100, psnr


# ---- AESOP alone drives the generator ---------------------------------------------------------

def aesop_only_options(paired_x4: dict, ae_path: str, g_path: str, loss_weight: float) -> dict:
    """SRModel whose only generator loss is AESOPLoss, starting from ``g_path``: one iteration, then saved."""
    train_set = dict(train_options(paired_x4, ae_path)['datasets']['train'], use_hflip=False, use_rot=False)
    return {
        'name': f'aesop_only_w{loss_weight:g}', 'model_type': 'SRModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'train': train_set},
        'network_g': NET_G,
        'path': {'pretrain_network_g': g_path, 'param_key_g': 'params', 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
            'total_iter': 1, 'warmup_iter': -1,
            'pixel_opt': {'type': 'AESOPLoss', 'loss_weight': loss_weight, 'criterion': 'l1', 'reduction': 'mean',
                          'autoencoder': TINY_AE, 'pretrain_network_ae': ae_path, 'param_key_ae': 'params_ema'},
        },
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 1, 'use_tb_logger': False, 'wandb': None},
        'dist_params': {'backend': 'nccl', 'port': 29500},
    }


def test_aesop_alone_moves_the_generator_through_train_pipeline(tmp_path, paired_x4):
    """With AESOP the only generator loss, one train_pipeline iteration moves net_g; with its weight at 0 it
    does not. So the move comes from AESOP's gradient through psi(pred), which a detached psi would cut."""
    torch.manual_seed(0)
    ae = AESOPAutoEncoder(**kwargs_of(TINY_AE))
    default_init_weights(ae, 1)  # an AE that carries signal (see the runs fixture)
    ae_path = str(tmp_path / 'ae.pth')
    torch.save({'params_ema': ae.state_dict()}, ae_path)
    g = RRDBNet(**kwargs_of(NET_G))
    g_path = str(tmp_path / 'g_start.pth')
    torch.save({'params': g.state_dict()}, g_path)
    start = g.state_dict()

    moves, logged = {}, {}
    for weight in (1.0, 0.0):
        opt = aesop_only_options(paired_x4, ae_path, g_path, weight)
        cwd = tmp_path / f'w{weight:g}'
        cwd.mkdir()
        run_module('aesop_basicsr.train', '-opt', write_yaml(str(cwd / 'train.yml'), opt), cwd=str(cwd))
        exp = osp.join(str(cwd), 'experiments', opt['name'])
        after = torch.load(osp.join(exp, 'models', 'net_g_1.pth'), weights_only=True)['params']
        moves[weight] = {k: after[k] - start[k] for k in start}
        logged[weight] = [float(v) for v in re.findall(r'l_pix: (\S+)', read(logs(exp, f'train_{opt["name"]}')[0]))]
    assert len(logged[1.0]) == 1 and logged[1.0][0] > 1e-3 and logged[0.0] == [0.0]
    largest = max(move.abs().max().item() for move in moves[1.0].values())
    assert 1e-4 < largest < 2e-3  # one Adam step at lr 1e-3 moves a weight by up to about 1e-3
    assert all(torch.count_nonzero(move) == 0 for move in moves[0.0].values())
    assert any(not torch.equal(moves[1.0][k], moves[0.0][k]) for k in start)
