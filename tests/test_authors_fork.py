"""The authors' own option files (their BasicSR fork's names and keys) run on stock BasicSR: aesop_basicsr.compat.

Their files are described in authors_fork_options.py (their types and keys, our paths and tiny sizes). The
two AE-pretraining files and the AESOP RRDB file each train 2 iterations through ``python -m basicsr.train``
(real processes, BasicSR's own train_pipeline, real photos), the AESOP file with the auto-encoder the
synthetic AE file just trained. The real-world file (Real-ESRGAN's pipeline, which calls ``.cuda()``) trains
in-process with the CPU stand-in of test_dropin_models. Each of their test files builds its model and runs
it. scripts/check_authors_option_files.py checks the descriptions against their real files.
"""
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from copy import deepcopy
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.archs.arch_util import default_init_weights
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.data import build_dataloader, build_dataset
from basicsr.metrics import calculate_metric, calculate_psnr, calculate_ssim
from basicsr.models import build_model
from basicsr.utils import set_random_seed, tensor2img
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
from torch.utils.data import DataLoader

import authors_fork_options as fork
from aesop_basicsr.archs.aesop_autoencoder_arch import AESOPAutoEncoder
from aesop_basicsr.compat import authors_fork
from aesop_basicsr.losses.aesop_loss import AESOPLoss
from aesop_basicsr.metrics.lpips_metric import calculate_lpips
from aesop_basicsr.utils.cli import OptionError
from aesop_basicsr.utils.fallback_registry import is_registered
from aesop_basicsr.utils.panels import to_tensor
from aesop_basicsr.utils.sample_data import load_photo
from conftest import REPO_ROOT
from test_ae_toolkit import released_layout
from test_dropin_autoload import explain, package_dir, plain_env, run, write_yaml
from test_dropin_models import cuda_is_cpu  # noqa: F401  (a fixture)
from test_fidelity_metrics import psnr_y

SYNTHETIC_AE, REALWORLD_AE, AESOP_RRDB = 'synthetic_ae', 'realworld_ae', 'aesop_rrdb'


def signal_weights(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Full-scale initialisation: the network's output depends on its input as a trained one's does."""
    torch.manual_seed(seed)
    default_init_weights(net, 1)
    return net


def save(net: torch.nn.Module, path: str, *keys: str) -> str:
    torch.save({key: net.state_dict() for key in keys}, path)
    return path


def photo(name: str = 'astronaut', size: int = 64) -> np.ndarray:
    return load_photo(name)[100:100 + size, 140:140 + size]


def tiny_decoder() -> RRDBNet:
    dec = fork.autoencoder(full=False)['dec_opt']
    return RRDBNet(**{k: v for k, v in dec.items() if k != 'type'})


# ---------------------------------------------------------------- their training files, as processes
@pytest.fixture(scope='module')
def fork_runs(tmp_path_factory, paired_x4, stand_in_vgg19, stand_in_vgg16):
    """Their two AE files and, with the AE the synthetic one trained, their AESOP RRDB file: 2 iterations each,
    ``python -m basicsr.train`` from a BasicSR clone (a folder linking the installed package), two at a time."""
    work = str(tmp_path_factory.mktemp('authors_fork'))
    clone = osp.join(work, 'basicsr_clone')
    os.makedirs(clone)
    os.symlink(package_dir('basicsr'), osp.join(clone, 'basicsr'))
    decoder = signal_weights(tiny_decoder(), seed=1)
    # ESRGAN's PSNR model (the synthetic AE's decoder) stores 'params' only, RealESRNet_x4plus 'params_ema'
    decoders = {SYNTHETIC_AE: save(decoder, osp.join(work, 'ESRGAN_PSNR_tiny.pth'), 'params'),
                REALWORLD_AE: save(decoder, osp.join(work, 'RealESRNet_tiny.pth'), 'params_ema')}
    generator = signal_weights(RRDBNet(**{k: v for k, v in fork.rrdbnet(False, grow=False).items() if k != 'type'}))
    data = {kind: fork.Data(train_gt=paired_x4['train']['gt'], train_lq=paired_x4['train']['lq'],
                            val_gt=paired_x4['val']['gt'], val_lq=paired_x4['val']['lq'],
                            pretrain_decoder=decoders.get(kind)) for kind in decoders}
    options = {SYNTHETIC_AE: fork.train_synthetic_ae(data[SYNTHETIC_AE]),
               REALWORLD_AE: fork.train_realworld_ae(data[REALWORLD_AE])}
    experiments = {kind: osp.join(clone, 'experiments', opt['name']) for kind, opt in options.items()}
    aesop_data = fork.Data(train_gt=paired_x4['train']['gt'], train_lq=paired_x4['train']['lq'],
                           val_gt=paired_x4['val']['gt'], val_lq=paired_x4['val']['lq'],
                           pretrain_g=save(generator, osp.join(work, 'ESRGAN_PSNR_generator.pth'), 'params'),
                           autoencoder=osp.join(experiments[SYNTHETIC_AE], 'models', 'net_g_2.pth'))
    options[AESOP_RRDB] = fork.train_synthetic_aesop_rrdb(aesop_data)
    experiments[AESOP_RRDB] = osp.join(clone, 'experiments', options[AESOP_RRDB]['name'])

    def train(kind: str):
        yml = write_yaml(osp.join(work, f'{kind}.yml'), options[kind])
        return run(['-m', 'basicsr.train', '-opt', yml], clone, plain_env())

    with ThreadPoolExecutor(max_workers=2) as pool:
        procs = {kind: pool.submit(train, kind) for kind in (SYNTHETIC_AE, REALWORLD_AE)}
        procs[SYNTHETIC_AE] = procs[SYNTHETIC_AE].result()  # the AESOP run reads the AE it trains
        procs[AESOP_RRDB] = pool.submit(train, AESOP_RRDB)
        procs = {kind: proc if hasattr(proc, 'returncode') else proc.result() for kind, proc in procs.items()}
    for proc in procs.values():
        assert proc.returncode == 0, explain(proc)
    logs = {kind: ''.join(open(osp.join(folder, n)).read() for n in sorted(os.listdir(folder)) if n.endswith('.log'))
            for kind, folder in experiments.items()}
    return {'procs': procs, 'logs': logs, 'experiments': experiments, 'decoder': decoder.state_dict(),
            'options': options}


def final_losses(log: str) -> dict:
    """The loss terms BasicSR logged at iteration 2."""
    line = next(line for line in log.splitlines() if 'iter:       2' in line)
    return {key: float(value) for key, value in re.findall(r'(l_\w+): ([-\d.e+]+)', line)}


def test_ae_pretraining_files_train_with_their_models_and_networks(fork_runs):
    for kind in (SYNTHETIC_AE, REALWORLD_AE):
        log = fork_runs['logs'][kind]
        assert 'Model [AEModel] is created.' in log and 'Network [AutoEncoder_RRDBNet] is created.' in log
        losses = final_losses(log)
        assert math.isfinite(losses['l_pix']) and losses['l_pix'] > 0
        # their pixel_at_LR_opt is the LR term (logged l_lr; theirs l_pix_at_LR), only in the synthetic file
        assert ('l_lr' in losses) == (kind == SYNTHETIC_AE)
        assert re.search(r'# psnr: [\d.]+', log) and re.search(r'# psnr_lr: [\d.]+', log)  # validated at iter 2
        models = osp.join(fork_runs['experiments'][kind], 'models')
        saved = torch.load(osp.join(models, 'net_g_2.pth'), map_location='cpu')
        assert set(saved) == {'params', 'params_ema'}
        # their AE layout: 2 encoder RRDBs, a num_feat / 16 stem, the RRDBNet decoder
        assert 'body.1.rdb1.conv1.weight' in saved['params'] and 'body.2.rdb1.conv1.weight' not in saved['params']
        assert saved['params']['conv_first.0.weight'].shape[0] == 48 // 16


def test_freeze_decoder_keeps_the_realesrnet_decoder_and_trains_the_synthetic_one(fork_runs):
    """freeze_decoder 9999999 (> total_iter): frozen for the whole run; 0: never frozen."""
    decoder = fork_runs['decoder']
    for kind, frozen in ((REALWORLD_AE, True), (SYNTHETIC_AE, False)):
        saved = torch.load(osp.join(fork_runs['experiments'][kind], 'models', 'net_g_2.pth'), map_location='cpu')
        for key in ('params', 'params_ema'):
            same = [torch.equal(saved[key]['decoder.' + name], value) for name, value in decoder.items()]
            assert all(same) if frozen else not all(same), (kind, key)
    assert 'frozen for the whole run' in fork_runs['logs'][REALWORLD_AE]
    # their param_key_decoder params_ema of a file holding only params falls back, as their load_network does
    assert 'has no params_ema; loading its params into the decoder' in fork_runs['logs'][SYNTHETIC_AE]
    assert 'Loaded the decoder (RRDBNet)' in fork_runs['logs'][REALWORLD_AE]


def test_aesop_rrdb_file_trains_with_the_autoencoder_the_ae_file_trained(fork_runs):
    log = fork_runs['logs'][AESOP_RRDB]
    for built in ('Model [AesopESRGANArtifactsDisModel] is created.', 'Loss [AutoEncoderLoss] is created.',
                  'Network [VGGStyleDiscriminator128] is created.', 'Network [RRDBNet] is created.'):
        assert built in log, built
    ae_file = fork_runs['options'][AESOP_RRDB]['train']['aesop_opt']['autoencoder_load']['path']
    assert ae_file in log  # AESOPLoss read the AE checkpoint the AE run wrote
    losses = final_losses(log)
    # aesop_opt -> l_g_pix (theirs l_g_aesep), artifacts_opt -> l_g_ldl (theirs l_g_artifacts)
    assert {'l_g_pix', 'l_g_ldl', 'l_g_percep', 'l_g_gan'} <= set(losses) and losses['l_g_pix'] > 0
    assert 'Loading: params_ema does not exist, use params.' in log  # BasicSR's fallback for param_key_g
    # their metric names, validated at iteration 2 (val_start_iter 0)
    assert re.search(r'# psnr: [\d.]+', log) and re.search(r'# dists: [\d.]+', log)
    assert osp.isfile(osp.join(fork_runs['experiments'][AESOP_RRDB], 'models', 'net_g_2.pth'))


# ---------------------------------------------------------------- the real-world file, in-process
def realworld_options(paired_x4, ae_file: str) -> dict:
    data = fork.Data(train_gt=paired_x4['train']['gt'], val_gt=paired_x4['val']['gt'], val_lq=paired_x4['val']['lq'],
                     autoencoder=ae_file)
    opt = fork.train_realworld_aesop(data)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    opt['datasets']['train'].update(phase='train', scale=4)
    return opt


@pytest.fixture(scope='module')
def fork_ae_file(tmp_path_factory):
    """An auto-encoder in their AutoEncoder_RRDBNet layout (tiny), with weights that carry signal."""
    ae = signal_weights(build_network(fork.autoencoder(full=False)))
    return save(ae, str(tmp_path_factory.mktemp('fork_ae') / 'AE_tiny.pth'), 'params_ema')


def test_realworld_file_trains_with_aesop_on_the_plain_gt(paired_x4, fork_ae_file, stand_in_vgg19,
                                                          cuda_is_cpu):  # noqa: F811
    opt = realworld_options(paired_x4, fork_ae_file)
    set_random_seed(0)
    dataset = build_dataset(opt['datasets']['train'])  # meta_info ~: their dataset scans dataroot_gt
    names = sorted(os.listdir(paired_x4['train']['gt']))
    assert dataset.paths == [osp.join(paired_x4['train']['gt'], n) for n in names]
    model = build_model(opt)
    assert type(model).__name__ == 'AesopRealESRGANArtifactsDisModel' and model.opt['l1_gt_usm'] is False
    assert isinstance(model.cri_pix, AESOPLoss) and type(model.cri_pix).__name__ == 'AutoEncoderLoss'
    reference = build_network(fork.autoencoder(full=False))
    reference.load_state_dict(torch.load(fork_ae_file, map_location='cpu')['params_ema'])
    reference.eval()
    calls = []  # forward passes of the first RRDB of the trunk (checkpointing re-runs them without hooks)
    block, block_forward = model.net_g.body[0], model.net_g.body[0].forward
    block.forward = lambda x: calls.append(1) or block_forward(x)
    loader = iter(DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0))
    for step in (1, 2):
        data = next(loader)
        data['gt'] = data['gt'][..., :128, :128].contiguous()  # the 400-px padded photo costs seconds on a CPU
        calls.clear()
        model.feed_data(data)
        model.optimize_parameters(step)
        # network_g:use_checkpoint: the RRDB trunk runs again in backward
        assert len(calls) == 2, calls
        with torch.no_grad():
            by_hand = (reference(model.output) - reference(model.gt)).abs().mean().item()
        assert model.get_current_log()['l_g_pix'] == pytest.approx(by_hand, rel=1e-4)
        assert not torch.equal(model.gt, model.gt_usm)  # AESOP saw the plain GT, not the sharpened one


def test_gan_models_refuse_what_they_cannot_honour(paired_x4, fork_ae_file):
    opt = realworld_options(paired_x4, fork_ae_file)
    both = deepcopy(opt)
    both['train']['pixel_opt'] = dict(type='L1Loss', loss_weight=1e-2)
    with pytest.raises(OptionError, match=r'^train:aesop_opt: given beside train:pixel_opt'):
        build_model(both)
    missing = deepcopy(opt)
    del missing['train']['aesop_opt']
    with pytest.raises(OptionError, match=r'^train:aesop_opt: missing: AesopRealESRGANArtifactsDisModel'):
        build_model(missing)
    no_gan = deepcopy(opt)
    del no_gan['train']['gan_opt']
    with pytest.raises(OptionError, match=r'^train:gan_opt: missing'):
        build_model(no_gan)
    # their artifacts term maps onto BasicSR's LDL term, which the real-world model has too
    train = {'aesop_opt': {'type': 'AESOPLoss'}, 'artifacts_opt': {'type': 'L1Loss'}, 'gan_opt': {'type': 'GANLoss'}}
    translated = {'is_train': True, 'train': deepcopy(train)}
    authors_fork.translate_gan_options(translated, 'M', aesop_required=True)
    assert translated['train'] == {'pixel_opt': {'type': 'AESOPLoss'}, 'ldl_opt': {'type': 'L1Loss'},
                                   'gan_opt': {'type': 'GANLoss'}}


# ---------------------------------------------------------------- names, one by one
def test_autoencoder_rrdbnet_is_the_papers_autoencoder_with_their_tensors():
    their = fork.autoencoder(full=False)
    net = build_network(their)
    assert isinstance(net, AESOPAutoEncoder) and net.scale == 4
    keys = set(net.state_dict())
    # their code: conv_first (2 convs to num_feat // 16), 2 RRDBs of num_feat, conv_last (2 convs), RRDBNet decoder
    assert {k.split('.')[0] for k in keys} == {'conv_first', 'body', 'conv_last', 'decoder'}
    assert {k.split('.')[1] for k in keys if k.startswith('body.')} == {'0', '1'}
    assert net.conv_first[0].out_channels == their['dec_opt']['num_feat'] // 16
    decoder = tiny_decoder()
    assert {k[len('decoder.'):] for k in keys if k.startswith('decoder.')} == set(decoder.state_dict())
    # their released files hold the encoder twice (encoder.0/2/3 too): they load strictly
    signal_weights(net)
    reloaded = build_network(their)
    reloaded.load_state_dict(released_layout(net.state_dict()), strict=True)
    x = to_tensor(photo())
    with torch.no_grad():
        assert torch.equal(reloaded(x), net(x))
    with pytest.raises(OptionError, match=r'^AutoEncoder_RRDBNet:dec_opt:type: \'SwinIR\''):
        build_network(dict(their, dec_opt=dict(type='SwinIR', upscale=4)))
    with pytest.raises(OptionError, match=r'^AutoEncoder_RRDBNet:dec_opt:num_in_ch: missing'):
        build_network(dict(their, dec_opt={k: v for k, v in their['dec_opt'].items() if k != 'num_in_ch'}))


def test_autoencoder_loss_is_aesop_of_the_file_named_in_autoencoder_load(fork_ae_file):
    their = dict(type='AutoEncoderLoss', loss_weight=0.5, as_loss_map=False, reduction='mean', criterion='l1',
                 autoencoder_arch=fork.autoencoder(full=False),
                 autoencoder_load=dict(path=fork_ae_file, key='params_ema'))
    psi = build_network(fork.autoencoder(full=False))
    psi.load_state_dict(torch.load(fork_ae_file, map_location='cpu')['params_ema'])
    psi = psi.double().eval()
    sr, hr = to_tensor(photo('coffee')), to_tensor(photo('astronaut'))
    with torch.no_grad():
        difference = psi(sr.double()) - psi(hr.double())
    for criterion, expected in (('l1', difference.abs().mean()), ('l2', difference.pow(2).mean())):
        loss = LOSS_REGISTRY.get('AutoEncoderLoss')(**{k: v for k, v in dict(their, criterion=criterion).items()
                                                       if k != 'type'})
        assert loss(sr, hr).item() == pytest.approx(0.5 * expected.item(), rel=1e-5)
    kwargs = {k: v for k, v in their.items() if k != 'type'}
    with pytest.raises(OptionError, match=r'^as_loss_map: true weights L1'):
        LOSS_REGISTRY.get('AutoEncoderLoss')(**dict(kwargs, as_loss_map=True))
    with pytest.raises(OptionError, match=r'^autoencoder_load: needs \{path'):
        LOSS_REGISTRY.get('AutoEncoderLoss')(**dict(kwargs, autoencoder_load=None))


def test_their_metric_names_compute_the_papers_protocol(stand_in_alexnet):
    """PSNR/SSIM with their defaults; LPIPS here, DISTS in the AESOP run's validation (fork_runs)."""
    sr, hr = photo('coffee', 64), photo('astronaut', 64)
    assert METRIC_REGISTRY.get('calculate_psnr_pytorch')(sr, hr, 4) == pytest.approx(psnr_y(sr, hr, 4), abs=1e-6)
    ssim = METRIC_REGISTRY.get('calculate_ssim_pytorch')
    assert ssim(sr, hr, 4) == calculate_ssim(sr, hr, 4, test_y_channel=False)  # their default: RGB
    assert ssim(sr, hr, 4, test_y_channel=True) == calculate_ssim(sr, hr, 4, test_y_channel=True)
    block = dict(type='calculate_lpips_pytorch', crop_border=0)
    assert calculate_metric({'img': sr, 'img2': hr}, block) == calculate_lpips(sr, hr, 0)


BATCH_NORM_TENSORS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


def test_vgg_discriminators_have_their_layout():
    for size in (128, 256):
        net = build_network(dict(type=f'VGGStyleDiscriminator{size}', num_in_ch=3, num_feat=4))
        stages = 5 if size == 128 else 6  # theirs: conv0..conv4, and conv5 for 256
        expected = {'conv0_0.weight', 'conv0_0.bias', 'linear1.weight', 'linear1.bias', 'linear2.weight',
                    'linear2.bias'}
        for i in range(stages):
            for j in (0, 1):
                if (i, j) != (0, 0):
                    expected |= {f'conv{i}_{j}.weight'} | {f'bn{i}_{j}.{p}' for p in BATCH_NORM_TENSORS}
        assert set(net.state_dict()) == expected
        assert net.linear1.in_features == 4 * 8 * 4 * 4
        assert tuple(net(torch.rand(2, 3, size, size)).shape) == (2, 1)


def legacy_keys(state: dict) -> dict:
    """BasicSR's RRDBNet keys -> the ESRGAN repository's (their RRDBNet_LEGACY, RRDB_ESRGAN_x4.pth, BSRGAN.pth)."""
    out = {}
    for key, value in state.items():
        for new, old in (('body.', 'RRDB_trunk.'), ('conv_body.', 'trunk_conv.'), ('conv_up1.', 'upconv1.'),
                         ('conv_up2.', 'upconv2.'), ('conv_hr.', 'HRconv.')):
            if key.startswith(new):
                key = old + key[len(new):]
        out[key.replace('.rdb', '.RDB')] = value
    return out


def test_rrdbnet_legacy_reads_the_old_layout_and_computes_esrgan():
    """spandrel's ESRGAN under their name loads their layout strictly and equals BasicSR's RRDBNet (an independent
    implementation of the same network) on the same weights, in float64."""
    basicsr_net = signal_weights(RRDBNet(3, 3, num_feat=8, num_block=2, num_grow_ch=32), seed=3).double().eval()
    legacy = build_network(dict(type='RRDBNet_LEGACY', in_nc=3, out_nc=3, nf=8, nb=2, gc=32))
    assert type(legacy).__name__ == 'RRDBNet_LEGACY'
    legacy.load_state_dict(legacy_keys(basicsr_net.state_dict()), strict=True)
    legacy = legacy.double().eval()
    x = to_tensor(photo('chelsea', 24)).double()
    with torch.no_grad():
        assert (legacy(x) - basicsr_net(x)).abs().max().item() < 1e-10
    # its own state dict (spandrel's layout) loads back as it is
    build_network(dict(type='RRDBNet_LEGACY', nf=8, nb=2)).load_state_dict(legacy.state_dict(), strict=True)
    with pytest.raises(OptionError, match=r'^RRDBNet_LEGACY:gc: 16'):
        build_network(dict(type='RRDBNet_LEGACY', nf=8, nb=2, gc=16))


def test_their_legacy_esrgan_test_file_loads_the_released_layout(tmp_path):
    """Their test file for RRDB_ESRGAN_x4.pth / BSRGAN.pth (a bare state dict in the old layout), through BasicSR's
    load_network: with ``param_key_g: ~`` (their fork skipped the key for these files by name) every tensor arrives."""
    legacy = signal_weights(RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=32), seed=4)
    path = str(tmp_path / 'RRDB_ESRGAN_x4.pth')
    torch.save(legacy_keys(legacy.state_dict()), path)
    opt = fork.TEST_FILES['test/baselines/baselines_main/test_Synthetic_officialESRGAN.yml'](
        fork.Data(pretrain_g=path), False)
    opt['path']['param_key_g'] = None
    opt.update(is_train=False, dist=False, rank=0, world_size=1)
    model = build_model(opt)
    lq = to_tensor(photo('coffee', 16))
    with torch.no_grad():
        assert torch.allclose(model.net_g(lq), legacy(lq), atol=1e-5)


def test_use_flip_reaches_the_dataset_as_use_hflip(paired_x4):
    for flip in (True, False):
        opt = dict(name='DF2K', type='PairedImageDataset', phase='train', scale=4, dataroot_gt=paired_x4['train']['gt'],
                   dataroot_lq=paired_x4['train']['lq'], filename_tmpl='{}', io_backend=dict(type='disk'), gt_size=64,
                   use_flip=flip, use_rot=False)
        dataset = build_dataset(opt)
        assert dataset.opt['use_hflip'] is flip and 'use_hflip' not in opt
        assert dataset[0]['gt'].shape == (3, 64, 64)
    # BasicSR's own key is left as given
    assert authors_fork.translate_dataset_options({'use_flip': True, 'use_hflip': False})['use_hflip'] is False


def test_ae_model_keys_become_aesop_ae_model_keys():
    def translated(**train):
        opt = {'is_train': True, 'train': dict(total_iter=100, **train)}
        authors_fork.translate_ae_options(opt)
        return opt['train']

    for until, iters in ((0, 0), (5, 5), (99, 99), (100, -1), (9999999, -1), (-3, 0)):
        assert translated(freeze_decoder=until)['freeze_decoder_iters'] == iters, until
    assert translated(pixel_at_LR_opt={'type': 'L1Loss'})['lr_opt'] == {'type': 'L1Loss'}
    with pytest.raises(OptionError, match=r'^train:pixel_at_LR_opt: given beside train:lr_opt'):
        translated(pixel_at_LR_opt={'type': 'L1Loss'}, lr_opt={'type': 'L1Loss'})
    with pytest.raises(OptionError, match=r'^train:freeze_decoder: given beside train:freeze_decoder_iters'):
        translated(freeze_decoder=5, freeze_decoder_iters=5)
    with pytest.raises(OptionError, match=r"^train:freeze_decoder: 'all' is not an iteration number"):
        translated(freeze_decoder='all')


def test_val_start_iter_delays_validation(paired_x4, tmp_path):
    data = fork.Data(train_gt=paired_x4['train']['gt'], train_lq=paired_x4['train']['lq'],
                     val_gt=paired_x4['val']['gt'], val_lq=paired_x4['val']['lq'])
    opt = fork.train_synthetic_ae(data)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    opt['val'].update(val_start_iter=1, save_img=False)
    opt['path'].update(visualization=str(tmp_path))
    val_opt = dict(opt['datasets']['val'], phase='val', scale=4)
    loader = build_dataloader(build_dataset(val_opt), val_opt, num_gpu=0, dist=False)
    model = build_model(opt)
    model.validation(loader, 1, None, False)
    assert not hasattr(model, 'metric_results')
    model.validation(loader, 2, None, False)
    assert model.metric_results['psnr'] > 0 and model.metric_results['psnr_lr'] > 0


def test_later_registrations_win_and_registered_names_are_never_replaced():
    """A project that registers one of these names after us (BasicSR refuses a second registration) registers it
    and gets its own class; while it has not, BasicSR's lookup finds ours."""
    assert 'AEModel' not in MODEL_REGISTRY and is_registered(MODEL_REGISTRY, 'AEModel')
    assert MODEL_REGISTRY.get('AEModel') is authors_fork.AEModel
    own = type('VGGStyleDiscriminator128', (torch.nn.Module, ), {})
    ARCH_REGISTRY.register(own)  # as the authors' fork's archs/__init__ would
    try:
        assert ARCH_REGISTRY.get('VGGStyleDiscriminator128') is own
    finally:
        del ARCH_REGISTRY._obj_map['VGGStyleDiscriminator128']
    assert ARCH_REGISTRY.get('VGGStyleDiscriminator128') is authors_fork.VGGStyleDiscriminator128
    assert ARCH_REGISTRY.get('RRDBNet').__module__ == 'basicsr.archs.rrdbnet_arch'  # BasicSR's, not touched


# ---------------------------------------------------------------- their test files build and run
@pytest.mark.parametrize('name', sorted(fork.TEST_FILES), ids=lambda n: osp.basename(n))
def test_their_test_files_build_and_run(name):
    opt = fork.TEST_FILES[name](fork.Data(), False)
    opt.update(is_train=False, dist=False, rank=0, world_size=1)
    model = build_model(opt)
    hr = photo('astronaut', 32)
    lq = hr if name.endswith('test_Autoencoder.yml') else hr[::4, ::4]  # the AE test feeds HR as the LQ
    model.feed_data({'lq': to_tensor(np.ascontiguousarray(lq))})
    model.test()
    assert tuple(model.output.shape) == (1, 3, 32, 32) and torch.isfinite(model.output).all()
    sr = tensor2img([model.output])
    for metric in (opt['val'].get('metrics') or {}).values():
        if metric['type'] in ('calculate_psnr_pytorch', 'calculate_ssim_pytorch'):
            assert math.isfinite(calculate_metric({'img': sr, 'img2': hr}, metric))


def test_our_autoencoder_test_file_measures_psi_hr_against_hr(paired_x4, fork_ae_file):
    """options/test/test_AESOP_autoencoder_x4_benchmarks.yml, reduced to a tiny AE and two photos: BasicSR's
    validation measures the saved psi(HR) against HR (the reconstruction PSNR)."""
    with open(osp.join(REPO_ROOT, 'options/test/test_AESOP_autoencoder_x4_benchmarks.yml')) as f:
        opt = yaml.safe_load(f)
    opt['network_g'] = authors_fork.as_aesop_autoencoder(fork.autoencoder(full=False))
    opt['path'] = dict(opt['path'], pretrain_network_g=fork_ae_file, visualization='unused')
    opt['val'].update(save_img=False, metrics={k: v for k, v in opt['val']['metrics'].items() if k == 'psnr'})
    opt.update(num_gpu=0, is_train=False, dist=False, rank=0, world_size=1)
    dataset_opt = dict(opt['datasets']['test_1'], dataroot_gt=paired_x4['val']['gt'],
                       dataroot_lq=paired_x4['val']['gt'], phase='test', scale=4)
    loader = build_dataloader(build_dataset(dataset_opt), dataset_opt, num_gpu=0, dist=False)
    model = build_model(opt)
    model.validation(loader, 'test', None, False)
    psi = build_network(opt['network_g'])
    psi.load_state_dict(torch.load(fork_ae_file, map_location='cpu')['params_ema'])
    psi.eval()
    expected = []
    for name in sorted(os.listdir(paired_x4['val']['gt'])):
        hr = cv2.imread(osp.join(paired_x4['val']['gt'], name), cv2.IMREAD_COLOR)
        with torch.no_grad():
            expected.append(calculate_psnr(tensor2img([psi(to_tensor(hr))]), hr, 4, test_y_channel=True))
    assert model.metric_results['psnr'] == pytest.approx(np.mean(expected), abs=1e-6)
