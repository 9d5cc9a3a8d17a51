"""CUDA: ESRGAN with AESOPLoss trains and resumes through BasicSR's pipeline on the GPU (skipped without one)."""
import os
import re
from os import path as osp

import pytest
import torch
from basicsr.archs.arch_util import default_init_weights

from aesop_basicsr.archs.aesop_autoencoder_arch import AESOPAutoEncoder
from conftest import run_module
from test_train_esrgan_e2e import NAME, TINY_AE, kwargs_of, logs, read, train_options, write_yaml

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


def test_esrgan_with_aesop_trains_and_auto_resumes_on_cuda(tmp_path, paired_x4, stand_in_vgg19):
    torch.manual_seed(0)
    ae = AESOPAutoEncoder(**kwargs_of(TINY_AE))
    default_init_weights(ae, 1)
    ae_path = str(tmp_path / 'ae.pth')
    torch.save({'params_ema': ae.state_dict()}, ae_path)
    opt = train_options(paired_x4, ae_path)
    opt.update(num_gpu=1, name=NAME + '_cuda')
    opt['datasets']['train']['prefetch_mode'] = 'cuda'
    opt['datasets']['train']['pin_memory'] = True
    yml = write_yaml(str(tmp_path / 'train.yml'), opt)
    cwd = str(tmp_path / 'run')
    os.makedirs(cwd)
    run_module('aesop_basicsr.train', '-opt', yml, cwd=cwd)
    resumed = run_module('aesop_basicsr.train', '-opt', yml, '--auto_resume', '--force_yml', 'train:total_iter=6',
                         cwd=cwd)
    exp = osp.join(cwd, 'experiments', opt['name'])
    text = '\n'.join(read(p) for p in logs(exp, f'train_{opt["name"]}'))
    pix = [float(v) for v in re.findall(r'l_g_pix: (\S+)', text)]
    assert len(pix) == 6 and all(v == v and 0 < v < 1e3 for v in pix)
    assert 'Resuming from training state' in resumed.stdout
    assert osp.isfile(osp.join(exp, 'models', 'net_g_6.pth'))
    state = torch.load(osp.join(exp, 'models', 'net_g_6.pth'), weights_only=True)
    assert not any('decoder' in k or 'autoencoder' in k for k in state['params'])


def test_aesop_loss_on_cuda_matches_cpu():
    from basicsr.losses import build_loss
    torch.manual_seed(0)
    loss = build_loss(dict(type='AESOPLoss', autoencoder=TINY_AE))
    default_init_weights(loss.autoencoder, 1)
    target = torch.rand(2, 3, 64, 64)
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    cpu = loss(pred, target)
    loss.cuda()
    assert all(p.is_cuda for p in loss.autoencoder.parameters())
    gpu = loss(pred.cuda().requires_grad_(True), target.cuda())
    assert torch.allclose(gpu.cpu(), cpu, rtol=1e-3)
