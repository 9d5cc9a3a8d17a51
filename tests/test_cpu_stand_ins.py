"""CPU versions of checks that otherwise need a GPU (the GPU tests themselves run in scripts/cuda_check.sh).

- The real-world recipe (train_AESOP_RealESRGAN_x4plus.yml): Real-ESRGAN's on-the-fly degradations and one
  RealESRGANModel step with AESOPLoss, with the CPU stand-in for the model's direct ``.cuda()`` calls.
- Where the LPIPS/DISTS networks are placed: the device choice, without a GPU.
"""
import math
import os
from os import path as osp

import cv2
import pytest
import torch
import yaml
from basicsr.models import build_model
from basicsr.utils import set_random_seed
from basicsr.utils.options import ordered_yaml
from basicsr.utils.registry import DATASET_REGISTRY, METRIC_REGISTRY
from torch.utils.data import DataLoader

import realesrgan  # noqa: F401  (registers the realesrgan package's models and datasets)
from aesop_basicsr.metrics import dists_metric, lpips_metric
from aesop_basicsr.metrics.perceptual_util import clear_network_cache, metric_device
from aesop_basicsr.utils.sample_data import load_photo
from conftest import REPO_ROOT
from test_dropin_models import TINY_AE, cuda_is_cpu, tiny_autoencoder  # noqa: F401  (cuda_is_cpu: a fixture)

REAL_WORLD_RECIPE = osp.join(REPO_ROOT, 'options', 'train', 'AESOP', 'train_AESOP_RealESRGAN_x4plus.yml')
TINY_G = dict(num_feat=8, num_block=1, num_grow_ch=4)
BATCH = 2


@pytest.fixture
def real_world_setup(tmp_path, stand_in_vgg19):
    """The shipped real-world recipe as an in-process option dict: its losses, weights and degradation
    settings kept; tiny networks, a signal-carrying tiny AE, four real colour photos as HR."""
    with open(REAL_WORLD_RECIPE) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    hr_dir = tmp_path / 'hr'
    hr_dir.mkdir()
    for name in ('astronaut', 'coffee', 'chelsea', 'rocket'):
        cv2.imwrite(str(hr_dir / f'{name}.png'), load_photo(name)[:300, :300])
    meta_info = tmp_path / 'meta_info.txt'
    meta_info.write_text(''.join(f'{name}\n' for name in sorted(os.listdir(hr_dir))))
    ae_path = str(tmp_path / 'ae.pth')
    torch.save({'params_ema': tiny_autoencoder().state_dict()}, ae_path)

    # a 64-px GT patch (the recipe: 256) and a queue of one batch (the recipe: 180)
    opt.update(num_gpu=0, is_train=True, dist=False, rank=0, world_size=1, queue_size=BATCH, gt_size=64)
    opt['network_g'].update(TINY_G)
    opt['network_d']['num_feat'] = 4
    opt['path'].update(pretrain_network_g=None)
    pixel_opt = opt['train']['pixel_opt']
    assert pixel_opt['type'] == 'AESOPLoss' and opt['l1_gt_usm'] is False  # the authors: AESOP on plain GT
    pixel_opt.update(autoencoder=dict(TINY_AE), pretrain_network_ae=ae_path, param_key_ae='params_ema')
    dataset_opt = dict(opt['datasets']['train'], dataroot_gt=str(hr_dir), meta_info=str(meta_info), phase='train')
    return opt, dataset_opt


def test_real_world_recipe_degrades_and_steps_with_aesop_on_the_cpu(real_world_setup, cuda_is_cpu):  # noqa: F811
    """What scripts/cuda_check.sh runs through train_pipeline on a GPU, as one in-process step on the CPU."""
    opt, dataset_opt = real_world_setup
    set_random_seed(0)
    model = build_model(opt)
    dataset = DATASET_REGISTRY.get(dataset_opt['type'])(dataset_opt)
    data = next(iter(DataLoader(dataset, batch_size=BATCH, shuffle=False, num_workers=0)))
    # the dataset pads to 400 px; the degradations on the 128-px photo crop (kernels unchanged) keep it fast
    data['gt'] = data['gt'][..., :128, :128].contiguous()
    assert data['kernel1'].shape == (BATCH, 21, 21) and data['sinc_kernel'].shape == (BATCH, 21, 21)

    model.feed_data(data)  # Real-ESRGAN's second-order degradation pipeline
    assert model.gt.shape == (BATCH, 3, 64, 64) and model.lq.shape == (BATCH, 3, 16, 16)
    quantised = model.lq * 255
    assert torch.equal(quantised, quantised.round()) and 0 <= model.lq.min() and model.lq.max() <= 1
    g_before = {k: v.clone() for k, v in model.net_g.state_dict().items()}

    model.optimize_parameters(1)
    log = model.get_current_log()
    assert {'l_g_pix', 'l_g_percep', 'l_g_gan', 'l_d_real', 'l_d_fake'} <= set(log)
    assert all(math.isfinite(v) for v in log.values())
    reference = tiny_autoencoder()  # AESOP by hand, against the plain (not USM-sharpened) GT as the recipe says
    with torch.no_grad():
        by_hand = (reference(model.output) - reference(model.gt)).abs().mean().item()
        sharpened = (reference(model.output) - reference(model.gt_usm)).abs().mean().item()
    assert log['l_g_pix'] == pytest.approx(opt['train']['pixel_opt']['loss_weight'] * by_hand, rel=1e-4)
    assert by_hand != pytest.approx(sharpened, rel=1e-3)  # the two targets are told apart
    assert any(not torch.equal(g_before[k], v) for k, v in model.net_g.state_dict().items())


def test_metric_device_is_the_current_cuda_device_if_any_else_the_cpu(monkeypatch):
    assert metric_device('cpu') == torch.device('cpu')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert metric_device() == torch.device('cpu')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 1)
    assert metric_device() == torch.device('cuda', 1)  # where a BasicSR model on GPU 1 runs
    assert metric_device('cuda:0') == torch.device('cuda', 0)  # an explicit device wins


@pytest.mark.parametrize('name', ['calculate_lpips', 'calculate_dists'])
def test_metric_network_is_built_per_device_and_runs_where_it_is_asked(name, stand_in_alexnet, stand_in_vgg16,
                                                                       monkeypatch):
    """The CPU half of the GPU test: ``device`` places the network; one cached network per device."""
    network = lpips_metric.lpips_network if name == 'calculate_lpips' else dists_metric.dists_network
    clear_network_cache()
    try:
        monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
        net = network()
        assert next(net.parameters()).device == torch.device('cpu') and network('cpu') is net
        photo = load_photo('astronaut')[:64, :64]
        noisy = cv2.GaussianBlur(photo, (5, 5), 2)
        metric = METRIC_REGISTRY.get(name)
        assert metric(photo, noisy, 0, device='cpu') == metric(photo, noisy, 0)
        elsewhere = network('meta')  # a device without data: built there, not handed the CPU network
        assert elsewhere is not net and next(elsewhere.parameters()).device.type == 'meta'
    finally:
        clear_network_cache()
