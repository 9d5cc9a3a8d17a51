"""AESOPAEModel: auto-encoder pretraining through BasicSR's train_pipeline on real images.

A tiny auto-encoder (RRDB encoder with 16 features, RRDBNet decoder with 8) keeps each
training step well under a second on a CPU.
"""
import logging
import os
import subprocess
import sys
from contextlib import contextmanager
from copy import deepcopy
from glob import glob
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from basicsr.archs import build_network
from basicsr.archs.arch_util import default_init_weights
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.data import build_dataloader, build_dataset
from basicsr.losses import build_loss
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.models import build_model
from basicsr.utils import tensor2img
from basicsr.utils.options import ordered_yaml

from aesop_basicsr.losses.aesop_loss import AESOPLoss
from aesop_basicsr.models.aesop_ae_model import AESOPAEModel, _loss_value
from conftest import REPO_ROOT, run_module

TINY_DECODER = dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4, scale=4)
TINY_AE = dict(type='AESOPAutoEncoder', scale=4, num_in_ch=3, num_feat=16, num_grow_ch=4, num_block=1,
               decoder=TINY_DECODER)
SHIPPED = {
    'DF2K': osp.join(REPO_ROOT, 'options', 'train', 'AESOP', 'train_AE_RRDBdecoder_x4_DF2K.yml'),
    'RealESRNet': osp.join(REPO_ROOT, 'options', 'train', 'AESOP', 'train_AE_RRDBdecoder_x4_RealESRNet.yml'),
}


def decoder_state(state_dict):
    """The decoder's tensors of an auto-encoder state dict, keyed as in the decoder itself."""
    return {k[len('decoder.'):]: v for k, v in state_dict.items() if k.startswith('decoder.')}


def same_tensors(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope='module')
def stand_in_decoder(tmp_path_factory) -> str:
    """A tiny RRDBNet saved like a BasicSR SR checkpoint (``params``): plays the PSNR-oriented decoder."""
    torch.manual_seed(1)
    path = str(tmp_path_factory.mktemp('decoder') / 'tiny_rrdbnet.pth')
    net = RRDBNet(**{k: v for k, v in TINY_DECODER.items() if k != 'type'})
    torch.save({'params': net.state_dict()}, path)
    return path


def train_options(name, paired, decoder_path, total_iter, freeze_decoder_iters):
    return {
        'name': name, 'model_type': 'AESOPAEModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': {'name': 'photos', 'type': 'PairedImageDataset', 'dataroot_gt': paired['train']['gt'],
                      'dataroot_lq': paired['train']['lq'], 'io_backend': {'type': 'disk'}, 'gt_size': 64,
                      'use_hflip': True, 'use_rot': True, 'use_shuffle': True, 'num_worker_per_gpu': 0,
                      'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1},
            'val': {'name': 'photos_val', 'type': 'PairedImageDataset', 'dataroot_gt': paired['val']['gt'],
                    'dataroot_lq': paired['val']['lq'], 'io_backend': {'type': 'disk'}},
        },
        'network_g': deepcopy(TINY_AE),
        'path': {'pretrain_network_g': None, 'pretrain_network_decoder': decoder_path,
                 'param_key_decoder': 'params', 'strict_load_decoder': True, 'resume_state': None},
        'train': {
            'ema_decay': 0.9, 'freeze_decoder_iters': freeze_decoder_iters,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
            'total_iter': total_iter, 'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
            'lr_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
        },
        'val': {'val_freq': 2, 'save_img': True, 'metrics': {
            'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True},
            'ssim': {'type': 'calculate_ssim', 'crop_border': 4, 'test_y_channel': True}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }


def write_yml(path, opt) -> str:
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return str(path)


def read_log(exp_root) -> str:
    return ''.join(open(p).read() for p in sorted(glob(osp.join(exp_root, 'train_*.log'))))


@contextmanager
def basicsr_messages(caplog):
    """Capture what BasicSR's root logger ('basicsr', which does not propagate) logs at INFO and above."""
    caplog.set_level(logging.INFO, logger='basicsr')
    logger = logging.getLogger('basicsr')
    logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


# ---- end to end through train_pipeline -----------------------------------------------------

def test_train_pipeline_freezes_decoder_then_trains_it_and_auto_resumes(tmp_path, paired_x4, stand_in_decoder):
    """Iters 1-3 frozen (2 in the first run, 1 after --auto_resume), iter 4 trains the decoder."""
    exp = osp.join(tmp_path, 'experiments', 'ae_tiny')
    opt = train_options('ae_tiny', paired_x4, stand_in_decoder, total_iter=2, freeze_decoder_iters=3)
    run_module('aesop_basicsr.train', '-opt', write_yml(tmp_path / 'first.yml', opt), cwd=str(tmp_path))
    first_log = read_log(exp)
    assert 'Iter 1: the decoder is frozen until iteration 3.' in first_log
    assert 'l_pix: ' in first_log and 'l_lr: ' in first_log
    for metric in ('psnr', 'ssim', 'psnr_lr', 'ssim_lr'):
        assert f'# {metric}: ' in first_log

    pretrained = torch.load(stand_in_decoder)['params']
    at_2 = torch.load(osp.join(exp, 'models', 'net_g_2.pth'))
    for key in ('params', 'params_ema'):  # frozen: bit-identical to the loaded decoder, EMA copy included
        assert same_tensors(decoder_state(at_2[key]), pretrained), key

    # the second run continues the first one (same name) up to iteration 4
    opt['train']['total_iter'] = 4
    proc = run_module('aesop_basicsr.train', '-opt', write_yml(tmp_path / 'second.yml', opt), '--auto_resume',
                      cwd=str(tmp_path))
    assert not glob(osp.join(tmp_path, 'experiments', 'ae_tiny_archived_*')), 'resuming must not start afresh'
    log = proc.stdout + proc.stderr  # the console copy of the resumed run's log
    assert 'Resuming training from epoch: ' in log and 'iter: 2.' in log
    assert 'Resuming: the decoder comes from the resumed net_g checkpoint' in log
    assert 'Iter 3: the decoder is frozen until iteration 3.' in log
    assert 'Iter 4: the decoder trains from now on (train:freeze_decoder_iters=3).' in log
    at_4 = torch.load(osp.join(exp, 'models', 'net_g_4.pth'))
    for key in ('params', 'params_ema'):
        assert not same_tensors(decoder_state(at_4[key]), pretrained), f'{key}: the decoder did not train at iter 4'
        encoder_2 = {k: v for k, v in at_2[key].items() if not k.startswith('decoder.')}
        encoder_4 = {k: v for k, v in at_4[key].items() if not k.startswith('decoder.')}
        assert not same_tensors(encoder_2, encoder_4), f'{key}: the encoder did not train after resuming'

    # the final validation saved D(E(HR)) and E(HR) of the EMA network, which AESOPLoss reproduces
    latest = osp.join(exp, 'models', 'net_g_latest.pth')
    loss = AESOPLoss(autoencoder=TINY_AE, pretrain_network_ae=latest, param_key_ae='params_ema')
    name = sorted(os.listdir(paired_x4['val']['gt']))[0]
    stem = osp.splitext(name)[0]
    hr = cv2.imread(osp.join(paired_x4['val']['gt'], name)).astype(np.float32) / 255.
    x = torch.from_numpy(hr[..., ::-1].transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        expected = {'': tensor2img(loss.autoencoder(x)), '_lr': tensor2img(loss.autoencoder.encode(x))}
    saved_iters = [osp.basename(p)[len(stem) + 1:-4] for p in glob(osp.join(exp, 'visualization', stem, '*.png'))]
    final_iter = max(int(it) for it in saved_iters if it.isdigit())
    assert final_iter >= 4
    for tag, image in expected.items():
        saved = cv2.imread(osp.join(exp, 'visualization', stem, f'{stem}_{final_iter}{tag}.png'))
        assert saved.shape == ((128, 128, 3) if tag == '' else (32, 32, 3))
        assert np.abs(saved.astype(int) - image.astype(int)).max() <= 1, tag


@pytest.mark.parametrize('recipe', sorted(SHIPPED))
def test_shipped_option_files_fail_until_paths_are_filled(tmp_path, recipe):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    proc = subprocess.run([sys.executable, '-m', 'aesop_basicsr.train', '-opt', SHIPPED[recipe]], cwd=str(tmp_path),
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    for key in ('datasets:train:dataroot_gt', 'datasets:train:dataroot_lq', 'datasets:val:dataroot_gt',
                'path:pretrain_network_decoder'):
        assert key in proc.stderr, key
    assert not osp.exists(tmp_path / 'experiments'), 'nothing may be created before the check'


# ---- in-process: the model itself ------------------------------------------------------------

def model_options(tmp_path, network=None, **train):
    """What BasicSR's parse_options gives the model for a CPU training run."""
    root = str(tmp_path / 'exp')
    opt = {
        'name': 'ae', 'model_type': 'AESOPAEModel', 'scale': 4, 'num_gpu': 0, 'dist': False, 'rank': 0,
        'world_size': 1, 'is_train': True, 'network_g': deepcopy(network or TINY_AE),
        'path': {'experiments_root': root, 'models': osp.join(root, 'models'), 'log': root,
                 'training_states': osp.join(root, 'training_states'),
                 'visualization': osp.join(root, 'visualization')},
        'train': {'ema_decay': 0.5, 'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'val': {'metrics': {}},
    }
    opt['train'].update(train)
    for folder in ('models', 'training_states'):
        os.makedirs(opt['path'][folder], exist_ok=True)
    return opt


@pytest.fixture(scope='module')
def batch(paired_x4):
    """Two 128 px HR photos with their 32 px LR pairs, from BasicSR's PairedImageDataset."""
    dataset = build_dataset({'name': 'photos', 'type': 'PairedImageDataset', 'phase': 'val', 'scale': 4,
                             'dataroot_gt': paired_x4['train']['gt'], 'dataroot_lq': paired_x4['train']['lq'],
                             'io_backend': {'type': 'disk'}})
    items = [dataset[0], dataset[1]]
    return {key: torch.stack([item[key] for item in items]) for key in ('gt', 'lq')}


def bare_parts(model):
    net = model.get_bare_model(model.net_g)
    decoder = [p for n, p in net.named_parameters() if n.startswith('decoder.')]
    encoder = [p for n, p in net.named_parameters() if not n.startswith('decoder.')]
    return net, encoder, decoder


def test_lr_term_gradient_reaches_only_the_encoder(tmp_path, batch):
    torch.manual_seed(0)
    model = build_model(model_options(tmp_path, lr_opt={'type': 'L1Loss', 'loss_weight': 1.0}))
    net, encoder, decoder = bare_parts(model)
    model.feed_data(batch)
    _, losses = model.compute_losses()
    assert set(losses) == {'l_pix', 'l_lr'}
    assert torch.equal(model.encoded, net.encode(batch['gt']))  # the code is E(HR) of the same pass

    losses['l_lr'].backward(retain_graph=True)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder)
    assert all(p.grad is None for p in decoder)
    losses['l_pix'].backward()  # for contrast: the reconstruction term does reach the decoder
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in decoder)


def with_signal(model):
    """Re-initialise net_g at full scale (Kaiming, scale 1), so that its output depends on its input as a
    trained auto-encoder's does (the default 0.1 scale maps every image to nearly the same output)."""
    default_init_weights(model.get_bare_model(model.net_g), 1)
    if hasattr(model, 'net_g_ema'):
        model.model_ema(0)  # the EMA network starts as a copy, as after BasicSR's own initialisation
    return model


def test_saved_checkpoint_loads_into_aesop_loss_and_reproduces_the_model(tmp_path, batch):
    torch.manual_seed(0)
    model = with_signal(build_model(model_options(tmp_path, lr_opt={'type': 'L1Loss', 'loss_weight': 1.0})))
    model.feed_data(batch)
    for it in range(1, 4):
        model.optimize_parameters(it)
    model.save(epoch=0, current_iter=3)
    path = osp.join(model.opt['path']['models'], 'net_g_3.pth')

    x = batch['gt'][:1]
    outputs = {}
    for key, net in (('params', model.get_bare_model(model.net_g)), ('params_ema', model.net_g_ema)):
        loss = AESOPLoss(autoencoder=TINY_AE, pretrain_network_ae=path, param_key_ae=key)
        with torch.no_grad():
            outputs[key] = loss.autoencoder(x)
            # the loss runs its AE channels-last by default: same weights, another summation order
            assert torch.allclose(outputs[key], net.eval()(x), rtol=1e-5, atol=1e-5), key
    assert not torch.equal(outputs['params'], outputs['params_ema'])  # two different networks were saved
    assert (outputs['params'] - outputs['params_ema']).abs().mean() > 1e-4
    assert (outputs['params'] - loss.autoencoder(batch['gt'][1:])).abs().mean() > 1e-3  # psi depends on x


@pytest.mark.parametrize('keys', [('params',), ('params', 'params_ema')])
def test_pretrained_whole_autoencoder_loads_into_net_g_and_its_ema_copy(tmp_path, keys):
    """BasicSR loads path:pretrain_network_g into the EMA network under params_ema; a file saved without
    EMA (params only) loads its params there instead, as BasicSR's own load_network does."""
    states = {}
    for seed, key in enumerate(keys):
        torch.manual_seed(10 + seed)
        source = build_network(deepcopy(TINY_AE))
        default_init_weights(source, 1)
        states[key] = source.state_dict()
    path = str(tmp_path / 'ae_pretrained.pth')
    torch.save(states, path)
    opt = model_options(tmp_path)
    opt['path']['pretrain_network_g'] = path
    torch.manual_seed(0)
    model = build_model(opt)
    assert same_tensors(model.get_bare_model(model.net_g).state_dict(), states['params'])
    assert same_tensors(model.net_g_ema.state_dict(), states[keys[-1]])


def save_without(state, missing: str, path: str):
    """Save ``state`` less one tensor under ``params``, as a checkpoint that a strict load must refuse."""
    del state[missing]
    torch.save({'params': state}, path)
    return state, path


def test_pretrained_whole_autoencoder_loads_strictly_unless_strict_load_g_is_false(tmp_path):
    """path:pretrain_network_g honours path:strict_load_g and path:param_key_g; errors name those options."""
    torch.manual_seed(10)
    source = build_network(deepcopy(TINY_AE))
    default_init_weights(source, 1)
    state, path = save_without(source.state_dict(), 'conv_last.1.bias', str(tmp_path / 'partial.pth'))
    opt = model_options(tmp_path)
    opt['path']['pretrain_network_g'] = path
    with pytest.raises(ValueError, match=r"path:pretrain_network_g: '.*partial.pth' does not fit the configured "
                                         r"network: 1 missing tensors \(first: \['conv_last.1.bias'\]\)"):
        build_model(opt)
    opt['path']['strict_load_g'] = False
    model = build_model(opt)
    for net in (model.get_bare_model(model.net_g), model.net_g_ema):  # the EMA copy from params too
        loaded = net.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in state.items())
    opt['path'].update(strict_load_g=True, param_key_g='weights')
    with pytest.raises(KeyError, match="path:param_key_g: 'weights' is not in"):
        build_model(opt)


PERCEPTUAL_OPT = {'type': 'PerceptualLoss', 'layer_weights': {'conv1_2': 0.5, 'conv2_2': 1.0}, 'vgg_type': 'vgg19',
                  'use_input_norm': True, 'range_norm': False, 'perceptual_weight': 0.3, 'style_weight': 0.2,
                  'criterion': 'l1'}


def test_perceptual_and_style_terms_are_logged_and_in_the_total(tmp_path, batch, stand_in_vgg19):
    """train:perceptual_opt adds BasicSR's PerceptualLoss(D(E(HR)), HR): l_percep and l_style, both in the total."""
    torch.manual_seed(0)
    model = with_signal(build_model(model_options(tmp_path, perceptual_opt=dict(PERCEPTUAL_OPT))))
    model.feed_data(batch)
    total, losses = model.compute_losses()
    assert list(losses) == ['l_pix', 'l_percep', 'l_style']
    reference = build_loss(dict(PERCEPTUAL_OPT))  # an independent copy on the same (stand-in) VGG19 weights
    output = model.output.detach()
    with torch.no_grad():
        percep, style = reference(output, batch['gt'])
    assert losses['l_pix'].item() == pytest.approx((output - batch['gt']).abs().mean().item(), rel=1e-5)
    assert losses['l_percep'].item() == pytest.approx(percep.item(), rel=1e-5)
    assert losses['l_style'].item() == pytest.approx(style.item(), rel=1e-5)
    assert percep.item() > 1e-3 and style.item() > 0
    assert total.item() == pytest.approx(losses['l_pix'].item() + percep.item() + style.item(), rel=1e-6)

    model.optimize_parameters(1)
    assert set(model.log_dict) == {'l_pix', 'l_percep', 'l_style'}
    assert model.log_dict['l_percep'] == pytest.approx(percep.item(), rel=1e-5)


def test_decoder_frozen_for_the_whole_run_is_not_optimised(tmp_path, batch, stand_in_decoder, caplog):
    torch.manual_seed(0)
    opt = model_options(tmp_path, freeze_decoder_iters=-1)
    opt['path']['pretrain_network_decoder'] = stand_in_decoder
    model = build_model(opt)
    net, encoder, decoder = bare_parts(model)
    optimised = {id(p) for group in model.optimizer_g.param_groups for p in group['params']}
    assert optimised == {id(p) for p in encoder}
    assert not any(p.requires_grad for p in decoder)

    encoder_before = [p.detach().clone() for p in encoder]
    model.feed_data(batch)
    with basicsr_messages(caplog):
        for it in range(1, 3):
            model.optimize_parameters(it)
    assert [r.getMessage() for r in caplog.records if 'the decoder' in r.getMessage()] == [
        'Iter 1: the decoder is frozen until the end of the run.']  # said once, when it starts
    pretrained = torch.load(stand_in_decoder)['params']
    assert same_tensors(decoder_state(net.state_dict()), pretrained)
    assert same_tensors(decoder_state(model.net_g_ema.state_dict()), pretrained)
    assert not all(torch.equal(a, b) for a, b in zip(encoder_before, encoder))


class CPUDistributedDataParallel(torch.nn.parallel.DistributedDataParallel):
    """BaseModel.model_to_device passes a CUDA device id; a CPU module takes none."""

    def __init__(self, module, device_ids=None, **kwargs):
        super().__init__(module, **kwargs)


@pytest.mark.parametrize('freeze_decoder_iters', [2, -1])
def test_frozen_decoder_trains_under_distributed_data_parallel(tmp_path, batch, stand_in_decoder, monkeypatch,
                                                                freeze_decoder_iters):
    """Real DDP (gloo, one process): it raises if a parameter it wrapped gets no gradient."""
    import basicsr.models.base_model as base_model
    import torch.distributed as dist
    monkeypatch.setattr(base_model, 'DistributedDataParallel', CPUDistributedDataParallel)
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/dist_init', rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        opt = model_options(tmp_path, freeze_decoder_iters=freeze_decoder_iters,
                            lr_opt={'type': 'L1Loss', 'loss_weight': 1.0})
        opt['dist'] = True
        opt['path']['pretrain_network_decoder'] = stand_in_decoder
        model = build_model(opt)
        assert isinstance(model.net_g, CPUDistributedDataParallel)
        net = model.get_bare_model(model.net_g)
        pretrained = torch.load(stand_in_decoder)['params']
        model.feed_data(batch)
        for it in range(1, 4):
            model.optimize_parameters(it)
            frozen = freeze_decoder_iters < 0 or it <= freeze_decoder_iters
            assert same_tensors(decoder_state(net.state_dict()), pretrained) == frozen, it
        assert set(model.log_dict) == {'l_pix', 'l_lr'}
    finally:
        dist.destroy_process_group()


def val_loader(paired, name: str = 'photos_val'):
    """BasicSR's validation loader over the two paired validation photos."""
    dataset_opt = {'name': name, 'type': 'PairedImageDataset', 'phase': 'val', 'scale': 4,
                   'dataroot_gt': paired['val']['gt'], 'dataroot_lq': paired['val']['lq'],
                   'io_backend': {'type': 'disk'}}
    return build_dataloader(build_dataset(dataset_opt), dataset_opt, num_gpu=0, dist=False)


@pytest.mark.parametrize('scale_in_opt', [True, False])
def test_validation_reports_hr_and_lr_metrics_and_saves_both_images(tmp_path, paired_x4, scale_in_opt):
    """With the fixed ``area`` encoder E(HR) is close to the bicubic LR, so ``psnr_lr`` is a real number to check.
    The LR crop border is divided by the scale: the option file's ``scale``, else the auto-encoder's."""
    network = dict(TINY_AE, encoder_type='area')
    opt = model_options(tmp_path, network=network)
    if not scale_in_opt:
        del opt['scale']
    opt['val'] = {'save_img': True, 'metrics': {
        'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True},
        'ssim': {'type': 'calculate_ssim', 'crop_border': 4, 'test_y_channel': True}}}
    torch.manual_seed(0)
    model = build_model(opt)
    model.validation(val_loader(paired_x4), current_iter=7, tb_logger=None, save_img=True)

    expected = {name: [] for name in ('psnr', 'ssim', 'psnr_lr', 'ssim_lr')}
    for name in sorted(os.listdir(paired_x4['val']['gt'])):
        stem = osp.splitext(name)[0]
        folder = osp.join(opt['path']['visualization'], stem)
        recon, encoded = (cv2.imread(osp.join(folder, f'{stem}_7{tag}.png')) for tag in ('', '_lr'))
        hr = cv2.imread(osp.join(paired_x4['val']['gt'], name))
        lr = cv2.imread(osp.join(paired_x4['val']['lq'], name))
        assert recon.shape == hr.shape == (128, 128, 3) and encoded.shape == lr.shape == (32, 32, 3)
        expected['psnr'].append(calculate_psnr(recon, hr, crop_border=4, test_y_channel=True))
        expected['ssim'].append(calculate_ssim(recon, hr, crop_border=4, test_y_channel=True))
        expected['psnr_lr'].append(calculate_psnr(encoded, lr, crop_border=1, test_y_channel=True))
        expected['ssim_lr'].append(calculate_ssim(encoded, lr, crop_border=1, test_y_channel=True))
    assert list(model.metric_results) == list(expected)
    for name, values in expected.items():
        assert model.metric_results[name] == pytest.approx(np.mean(values), abs=1e-9), name
    assert model.metric_results['psnr_lr'] > 25  # box average vs bicubic: close, unlike the random decoder
    assert model.metric_results['psnr'] < model.metric_results['psnr_lr']


class ScalarRecorder:
    """Stands in for the tensorboard SummaryWriter that BasicSR passes as ``tb_logger``: records add_scalar."""

    def __init__(self) -> None:
        self.scalars = []

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))


def test_best_values_are_kept_per_dataset_in_the_direction_each_metric_names(tmp_path, paired_x4):
    """BasicSR's best-metric bookkeeping, for the D(E(HR)) metrics and their E(HR) copies alike: per dataset, the
    best value so far and its iteration (ties go to the later one), the maximum for ``better: higher`` (the default)
    and the minimum for ``better: lower`` (PSNR marked so here only to exercise that branch)."""
    opt = model_options(tmp_path, network=dict(TINY_AE, encoder_type='area'))
    opt['val'] = {'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4},
                              'psnr_low': {'type': 'calculate_psnr', 'crop_border': 4, 'better': 'lower'}}}
    torch.manual_seed(0)
    model = with_signal(build_model(opt))
    history = {'photos_val': [], 'photos_other': []}
    tb_logger = ScalarRecorder()
    expected_scalars = []

    def validate(dataset: str, it: int) -> None:
        model.validation(val_loader(paired_x4, dataset), current_iter=it, tb_logger=tb_logger, save_img=False)
        history[dataset].append((it, dict(model.metric_results)))
        expected_scalars.extend((f'metrics/{dataset}/{name}', value, it)
                                for name, value in model.metric_results.items())

    validate('photos_val', 1)
    validate('photos_other', 1)
    with torch.no_grad():  # validation runs the EMA network: another decoder for the next round
        for p in model.net_g_ema.decoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    validate('photos_val', 2)
    # so for one of psnr and psnr_low the second round is worse, and the best must stay at the first
    assert abs(history['photos_val'][1][1]['psnr'] - history['photos_val'][0][1]['psnr']) > 0.1

    for dataset, rounds in history.items():
        assert set(model.best_metric_results[dataset]) == {'psnr', 'psnr_low', 'psnr_lr', 'psnr_low_lr'}
        for name, best in model.best_metric_results[dataset].items():
            better = 'lower' if name.startswith('psnr_low') else 'higher'
            sign = -1 if better == 'lower' else 1
            it, value = max(((it, results[name]) for it, results in rounds), key=lambda r: (sign * r[1], r[0]))
            assert best == {'better': better, 'val': value, 'iter': it}, (dataset, name)
    assert tb_logger.scalars == expected_scalars  # every value, at its iteration


def test_an_lr_copy_clashing_with_a_metric_name_is_named(tmp_path, paired_x4):
    opt = model_options(tmp_path)
    opt['val'] = {'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4},
                              'psnr_lr': {'type': 'calculate_psnr', 'crop_border': 1}}}
    model = build_model(opt)
    with pytest.raises(ValueError, match='val:metrics:psnr_lr clashes with the LR copy of psnr; rename it'):
        model.validation(val_loader(paired_x4), current_iter=1, tb_logger=None, save_img=False)


@pytest.mark.parametrize('suffix', [None, 'aesop'])
def test_testing_saves_both_images_under_the_dataset_with_the_suffix_or_the_run_name(tmp_path, paired_x4, suffix):
    """Outside training (basicsr.test), images go to visualization/<dataset>/<image>_<suffix>[_lr].png, the suffix
    defaulting to the run's name; E(HR) of the area encoder is the box average of HR."""
    opt = model_options(tmp_path, network=dict(TINY_AE, encoder_type='area'))
    opt.update(is_train=False, name='ae_test')
    opt['val'] = {'suffix': suffix, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}}
    torch.manual_seed(0)
    model = build_model(opt)
    net = model.get_bare_model(model.net_g)
    model.validation(val_loader(paired_x4), current_iter='test', tb_logger=None, save_img=True)
    for name in sorted(os.listdir(paired_x4['val']['gt'])):
        stem = osp.splitext(name)[0]
        hr = cv2.imread(osp.join(paired_x4['val']['gt'], name)).astype(np.float32) / 255.
        x = torch.from_numpy(hr[..., ::-1].transpose(2, 0, 1).copy())[None]
        with torch.no_grad():
            expected = {'': tensor2img(net(x)), '_lr': tensor2img(F.avg_pool2d(x, 4))}
        for tag, image in expected.items():
            file = f'{stem}_{suffix or "ae_test"}{tag}.png'
            saved = cv2.imread(osp.join(opt['path']['visualization'], 'photos_val', file))
            assert saved is not None and np.abs(saved.astype(int) - image.astype(int)).max() <= 1, (stem, tag)


def test_testing_loads_the_decoder_checkpoint_too(tmp_path, stand_in_decoder):
    opt = model_options(tmp_path)
    opt['is_train'] = False
    opt['path']['pretrain_network_decoder'] = stand_in_decoder
    model = build_model(opt)
    assert same_tensors(decoder_state(model.get_bare_model(model.net_g).state_dict()),
                        torch.load(stand_in_decoder)['params'])


def test_current_visuals_are_the_images_of_the_last_test_pass(tmp_path, batch):
    torch.manual_seed(0)
    model = with_signal(build_model(model_options(tmp_path)))
    model.feed_data(batch)
    model.test()
    visuals = model.get_current_visuals()
    assert list(visuals) == ['result', 'encoded', 'gt', 'lq']
    with torch.no_grad():
        net = model.net_g_ema.eval()
        expected = {'result': net(batch['gt']), 'encoded': net.encode(batch['gt']), 'gt': batch['gt'],
                    'lq': batch['lq']}
    for key, value in expected.items():
        assert torch.equal(visuals[key], value), key
    model.feed_data({'gt': batch['gt']})
    model.test()
    assert list(model.get_current_visuals()) == ['result', 'encoded', 'gt']


def test_ema_by_hand_while_the_decoder_is_frozen_and_after(tmp_path, batch, caplog):
    """EMA = d * EMA + (1 - d) * param for every tensor, except a frozen decoder's EMA copy, which stays as it
    is; validation (test) runs the EMA network."""
    decay = 0.9
    torch.manual_seed(0)
    model = with_signal(build_model(model_options(tmp_path, ema_decay=decay, freeze_decoder_iters=1,
                                                  lr_opt={'type': 'L1Loss', 'loss_weight': 1.0})))
    net = model.get_bare_model(model.net_g)
    with torch.no_grad():  # an EMA decoder that differs from the current one, as after some training
        for p in model.net_g_ema.decoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.feed_data(batch)
    for it in (1, 2):  # iteration 1: decoder frozen; iteration 2: it trains
        ema_before = {k: v.clone() for k, v in model.net_g_ema.state_dict().items()}
        with basicsr_messages(caplog):
            model.optimize_parameters(it)
        params, ema = net.state_dict(), model.net_g_ema.state_dict()
        for key in ema:
            if key.startswith('decoder.') and it == 1:
                assert torch.equal(ema[key], ema_before[key]), (it, key)
            else:
                expected = decay * ema_before[key].double() + (1 - decay) * params[key].double()
                assert torch.allclose(ema[key].double(), expected, rtol=1e-5, atol=1e-7), (it, key)
    assert [r.getMessage() for r in caplog.records if 'the decoder' in r.getMessage()] == [
        'Iter 1: the decoder is frozen until iteration 1.',
        'Iter 2: the decoder trains from now on (train:freeze_decoder_iters=1).']
    model.test()
    with torch.no_grad():
        assert torch.equal(model.output, model.net_g_ema.eval()(batch['gt']))
        assert not torch.allclose(model.output, net.eval()(batch['gt']), atol=1e-4)


def test_without_ema_training_and_validation_use_net_g(tmp_path, batch):
    torch.manual_seed(0)
    model = with_signal(build_model(model_options(tmp_path, ema_decay=0)))
    assert not hasattr(model, 'net_g_ema')
    model.feed_data(batch)
    model.optimize_parameters(1)
    model.test()
    with torch.no_grad():
        assert torch.equal(model.output, model.get_bare_model(model.net_g).eval()(batch['gt']))


@pytest.mark.parametrize('freeze, frozen_iters', [(None, []), (0, []), (2, [1, 2]), (-1, [1, 2, 3, 4, 5])])
def test_decoder_frozen_at_follows_freeze_decoder_iters(tmp_path, freeze, frozen_iters):
    """0 (the default) never freezes, N freezes iterations 1..N, a negative value the whole run (1-based)."""
    options = model_options(tmp_path) if freeze is None else model_options(tmp_path, freeze_decoder_iters=freeze)
    model = build_model(options)
    assert [it for it in range(1, 6) if model.decoder_frozen_at(it)] == frozen_iters


def test_batches_without_lq_and_without_gt(tmp_path, batch):
    model = build_model(model_options(tmp_path))
    model.feed_data({'gt': batch['gt']})  # no LR term: HR alone is enough
    assert model.lq is None and set(model.compute_losses()[1]) == {'l_pix'}
    with pytest.raises(KeyError, match=r'AESOPAEModel trains on HR images: the dataset must provide "gt" '
                                       r'\(e.g. PairedImageDataset with dataroot_gt\)'):
        model.feed_data({'lq': batch['lq']})
    with_lr = build_model(model_options(tmp_path, lr_opt={'type': 'L1Loss', 'loss_weight': 1.0}))
    with_lr.feed_data({'gt': batch['gt']})
    with pytest.raises(KeyError, match=r'AESOPAEModel: train:lr_opt needs LR images \("lq"\) from the training '
                                       r'dataset; use PairedImageDataset with dataroot_lq, or remove lr_opt'):
        with_lr.compute_losses()
    with_lr.feed_data({'gt': batch['gt'], 'lq': batch['lq'][..., :16, :16]})  # LR of another scale
    with pytest.raises(ValueError, match=r'E\(HR\) has shape \(2, 3, 32, 32\) but the LR batch has \(2, 3, 16, 16\); '
                                         'check scale and dataroot_lq'):
        with_lr.compute_losses()


def test_a_loss_returning_a_pair_counts_its_parts():
    """BasicSR's PerceptualLoss returns (percep, style), either of which may be None."""
    a, b = torch.tensor(0.25), torch.tensor(0.5)
    assert _loss_value(a) is a
    assert _loss_value((a, None)).item() == 0.25 and _loss_value((a, b)).item() == 0.75
    with pytest.raises(ValueError, match=r'AESOPAEModel: a loss returned no value \(all parts are None\); check its '
                                         'weights'):
        _loss_value((None, None))


# ---- clear errors before training --------------------------------------------------------------

def test_whole_ae_and_decoder_checkpoints_together_are_an_error(tmp_path, stand_in_decoder):
    opt = model_options(tmp_path)
    opt['path'].update(pretrain_network_g=stand_in_decoder, pretrain_network_decoder=stand_in_decoder)
    with pytest.raises(ValueError, match=r'AESOPAEModel: path:pretrain_network_g \(a whole auto-encoder, .* '
                                         r'path:pretrain_network_decoder .* are both set; set one of them to ~'):
        build_model(opt)


def test_decoder_checkpoint_errors_name_the_option(tmp_path, stand_in_decoder):
    opt = model_options(tmp_path)
    opt['path'].update(pretrain_network_decoder=stand_in_decoder, param_key_decoder='params_ema')
    with pytest.raises(KeyError, match="path:param_key_decoder: 'params_ema' is not in"):
        build_model(opt)
    opt['path']['param_key_decoder'] = 'params'
    opt['network_g']['decoder']['num_feat'] = 16
    with pytest.raises(ValueError, match=r'path:pretrain_network_decoder: .*tiny_rrdbnet.pth.* does not fit.*'
                                         r'Check network_g:decoder \(type, num_feat, num_block, num_grow_ch, scale\)'):
        build_model(opt)


def test_decoder_checkpoint_loads_strictly_unless_strict_load_decoder_is_false(tmp_path):
    torch.manual_seed(1)
    decoder = RRDBNet(**{k: v for k, v in TINY_DECODER.items() if k != 'type'})
    state, path = save_without(decoder.state_dict(), 'conv_last.bias', str(tmp_path / 'partial_decoder.pth'))
    opt = model_options(tmp_path)
    opt['path']['pretrain_network_decoder'] = path
    with pytest.raises(ValueError, match=r"path:pretrain_network_decoder: .* 1 missing tensors \(first: "
                                         r"\['conv_last.bias'\]\)"):
        build_model(opt)
    opt['path']['strict_load_decoder'] = False
    model = build_model(opt)
    loaded = model.get_bare_model(model.net_g).decoder.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_resuming_takes_the_decoder_from_the_resumed_net_g_not_the_decoder_checkpoint(tmp_path, stand_in_decoder,
                                                                                     caplog):
    """train.py points path:pretrain_network_g at the latest net_g when resuming, with resume_state set: its decoder
    (possibly trained since) must not be overwritten by path:pretrain_network_decoder."""
    torch.manual_seed(3)
    resumed = build_network(deepcopy(TINY_AE))
    default_init_weights(resumed, 1)
    path = str(tmp_path / 'net_g_2.pth')
    torch.save({'params': resumed.state_dict(), 'params_ema': resumed.state_dict()}, path)
    opt = model_options(tmp_path)
    opt['path'].update(pretrain_network_g=path, pretrain_network_decoder=stand_in_decoder,
                       resume_state=str(tmp_path / '2.state'))
    with basicsr_messages(caplog):
        model = build_model(opt)
    for net in (model.get_bare_model(model.net_g), model.net_g_ema):
        assert same_tensors(net.state_dict(), resumed.state_dict())
    assert 'Resuming: the decoder comes from the resumed net_g checkpoint, not from path:pretrain_network_decoder.' \
        in caplog.messages


@pytest.mark.parametrize('freeze, weights, expected', [
    (0, None, []),
    (1, None, ['The decoder is frozen for iterations 1-1 (train:freeze_decoder_iters).']),
    (2, None, ['The decoder is frozen for iterations 1-2 (train:freeze_decoder_iters).']),
    (-1, None, ['The decoder is not optimised; the optimizer holds the encoder only.',
                'The decoder is frozen for the whole run (train:freeze_decoder_iters < 0).',
                'The decoder is frozen but no pretrained weights were given for it (path:pretrain_network_decoder); '
                'it stays randomly initialised.']),
    (-1, 'decoder', ['The decoder is not optimised; the optimizer holds the encoder only.',
                     'The decoder is frozen for the whole run (train:freeze_decoder_iters < 0).']),
    (-1, 'whole', ['The decoder is not optimised; the optimizer holds the encoder only.',
                   'The decoder is frozen for the whole run (train:freeze_decoder_iters < 0).']),
])
def test_freezing_is_announced_and_a_frozen_random_decoder_warned_about(tmp_path, stand_in_decoder, caplog, freeze,
                                                                        weights, expected):
    opt = model_options(tmp_path, freeze_decoder_iters=freeze)
    if weights == 'decoder':
        opt['path']['pretrain_network_decoder'] = stand_in_decoder
    elif weights == 'whole':
        opt['path']['pretrain_network_g'] = str(tmp_path / 'ae.pth')
        torch.save({'params': build_network(deepcopy(TINY_AE)).state_dict()}, opt['path']['pretrain_network_g'])
    with basicsr_messages(caplog):
        build_model(opt)
    assert [m for m in caplog.messages if m.startswith('The decoder')] == expected


@pytest.mark.parametrize('change, message', [
    (lambda opt: opt['train'].pop('pixel_opt'), r'AESOPAEModel: train:pixel_opt is required \(the reconstruction '
                                                r'loss between D\(E\(HR\)\) and HR; the paper uses L1Loss'),
    (lambda opt: opt['train'].update(freeze_decoder_iters='100k'), 'train:freeze_decoder_iters must be an integer'),
    (lambda opt: (opt['train'].update(lr_opt={'type': 'L1Loss'}), opt['network_g'].update(encoder_type='area')),
     "train:lr_opt is set but network_g:encoder_type is 'area', a fixed downsampler with no parameters for the LR "
     'term to train; remove lr_opt'),
    (lambda opt: opt['network_g'].update(type='RRDBNet'), "network_g:type is 'RRDBNet'; it must be an auto-encoder "
                                                          'with encode/decode and a decoder submodule, e.g. '
                                                          'AESOPAutoEncoder'),
    (lambda opt: opt['network_g'].update(type='NoSuchNet'), "network_g:type is 'NoSuchNet'; it must be"),
    (lambda opt: opt.pop('network_g'), 'network_g:type is None; it must be'),
])
def test_inconsistent_options_fail_before_building(tmp_path, change, message):
    opt = model_options(tmp_path)
    change(opt)
    with pytest.raises(ValueError, match=message):
        build_model(opt)


@pytest.mark.parametrize('recipe', sorted(SHIPPED))
def test_shipped_recipes_build_the_papers_auto_encoder(tmp_path, recipe):
    """The shipped files with their placeholders filled: full-size AE, decoder loaded, paper's settings."""
    with open(SHIPPED[recipe]) as f:
        shipped = yaml.load(f, Loader=ordered_yaml()[0])
    opt = model_options(tmp_path, network=shipped['network_g'])
    opt['train'] = shipped['train']
    opt['val'] = shipped['val']
    param_key = shipped['path']['param_key_decoder']
    torch.manual_seed(2)
    decoder = RRDBNet(**{k: v for k, v in shipped['network_g']['decoder'].items() if k != 'type'})
    decoder_path = str(tmp_path / 'psnr_decoder.pth')
    torch.save({param_key: decoder.state_dict()}, decoder_path)
    opt['path'].update(pretrain_network_decoder=decoder_path, param_key_decoder=param_key)

    model = build_model(opt)
    assert isinstance(model, AESOPAEModel)
    net = model.get_bare_model(model.net_g)
    assert same_tensors(decoder_state(net.state_dict()), decoder.state_dict())
    assert model.ema_decay == 0.999 and shipped['train']['total_iter'] == 100000
    assert shipped['datasets']['train']['gt_size'] == 256 and shipped['datasets']['train']['batch_size_per_gpu'] == 16
    group = model.optimizer_g.param_groups[0]
    assert group['lr'] == 1e-4 and tuple(group['betas']) == (0.9, 0.99)
    optimised = {id(p) for p in group['params']}
    decoder_params = {id(p) for p in net.decoder.parameters()}
    if recipe == 'DF2K':  # L1 + 1.0 * L1 on the LR image, the decoder trains
        assert model.cri_lr is not None and model.cri_lr.loss_weight == 1.0
        assert decoder_params <= optimised and model.freeze_decoder_iters == 0
    else:  # no LR term, decoder frozen throughout
        assert model.cri_lr is None
        assert not decoder_params & optimised and model.freeze_decoder_iters < 0
