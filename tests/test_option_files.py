"""Every option file shipped under options/ parses, names only registered components, builds at full size,
refuses to run with placeholders left in, and (two reduced copies) trains end to end on real images.

The file list is a glob, so option files added later are checked too. Registry checks are strict: a type
that ``import aesop_basicsr`` does not register (e.g. ESRGANLDLModel, calculate_lpips, calculate_dists,
AESOPAEModel before their branches are merged) fails here by name.
"""
import glob
import inspect
import os
import subprocess
import sys
import time
import warnings
from collections import OrderedDict
from copy import deepcopy
from os import path as osp
from typing import Any, Dict, Iterator, Tuple

import cv2
import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.archs.vgg_arch import NAMES
from basicsr.losses import build_loss
from basicsr.utils.file_client import FileClient
from basicsr.utils.options import ordered_yaml
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

from aesop_basicsr.archs.aesop_autoencoder_arch import declared_scale
from aesop_basicsr.utils.options import PLACEHOLDER_PREFIX, find_placeholders
from aesop_basicsr.utils.sample_data import load_photo
from conftest import REPO_ROOT, run_module

OPTION_FILES = sorted(glob.glob(osp.join(REPO_ROOT, 'options', '**', '*.yml'), recursive=True))
TRAIN_FILES = [f for f in OPTION_FILES if osp.sep + 'train' + osp.sep in f]
TEST_FILES = [f for f in OPTION_FILES if osp.sep + 'test' + osp.sep in f]


def rel(path: str) -> str:
    return osp.relpath(path, REPO_ROOT)


def load(path: str) -> OrderedDict:
    """An option file exactly as BasicSR's parse_options reads it."""
    with open(path) as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


# BasicSR 1.4.2 builds only these (BaseModel.get_optimizer / setup_schedulers)
OPTIMIZERS = ('Adam', )
SCHEDULERS = ('MultiStepLR', 'MultiStepRestartLR', 'CosineAnnealingRestartLR')
# option keys whose value is a path on the user's machine: shipped files leave each as a placeholder
USER_PATH_PREFIXES = ('dataroot_', 'meta_info', 'pretrain_network_', 'resume_state', 'model_path')


def typed_blocks(opt: dict) -> Iterator[Tuple[str, str, dict]]:
    """(kind, key path, block) for every option dict with a ``type``, classified by where it sits.

    Raises for a typed block this test does not know how to check, so a new kind of block in a
    future option file cannot slip through unchecked.
    """

    def nested_archs(block: dict, path: str) -> Iterator[Tuple[str, str, dict]]:
        for key, value in block.items():
            if isinstance(value, dict) and 'type' in value:
                yield 'arch', f'{path}:{key}', value
                yield from nested_archs(value, f'{path}:{key}')

    seen = set()
    for key, value in opt.items():
        if key.startswith('network_'):
            yield 'arch', key, value
            yield from nested_archs(value, key)
            seen.add(key)
    for phase, dataset in opt.get('datasets', {}).items():
        yield 'dataset', f'datasets:{phase}', dataset
        if 'io_backend' in dataset:
            yield 'io_backend', f'datasets:{phase}:io_backend', dataset['io_backend']
    seen.add('datasets')
    for key, value in opt.get('train', {}).items():
        if not isinstance(value, dict) or 'type' not in value:
            continue
        if key.startswith('optim_'):
            yield 'optimizer', f'train:{key}', value
        elif key == 'scheduler':
            yield 'scheduler', f'train:{key}', value
        elif key.endswith('_opt'):
            yield 'loss', f'train:{key}', value
            yield from nested_archs(value, f'train:{key}')  # e.g. AESOPLoss.autoencoder, its decoder
        else:
            raise AssertionError(f'train:{key} has a type but is neither optim_*, scheduler nor *_opt')
    seen.add('train')
    for name, metric in (opt.get('val') or {}).get('metrics', {}).items():
        yield 'metric', f'val:metrics:{name}', metric
    seen.add('val')
    for key, value in opt.items():
        if key not in seen and isinstance(value, dict) and 'type' in value:
            raise AssertionError(f'{key} has a type this test does not check')


REGISTRIES = {'arch': ARCH_REGISTRY, 'dataset': DATASET_REGISTRY, 'loss': LOSS_REGISTRY, 'metric': METRIC_REGISTRY}


def resolve(kind: str, type_name: str) -> Any:
    if kind in REGISTRIES:
        return REGISTRIES[kind].get(type_name)  # BasicSR's lookup, incl. its '_basicsr' suffix fallback
    if kind == 'optimizer':
        assert type_name in OPTIMIZERS, f'BasicSR builds only {OPTIMIZERS}'
    elif kind == 'scheduler':
        assert type_name in SCHEDULERS, f'BasicSR builds only {SCHEDULERS}'
    elif kind == 'io_backend':
        assert type_name in FileClient._backends, f'FileClient knows {sorted(FileClient._backends)}'
    return None


def without_placeholders(block: Any) -> Any:
    """A copy with every ``<REQUIRED ...>`` value replaced by None (nothing to load at full size)."""
    if isinstance(block, dict):
        return {k: without_placeholders(v) for k, v in block.items()}
    if isinstance(block, list):
        return [without_placeholders(v) for v in block]
    if isinstance(block, str) and block.strip().startswith(PLACEHOLDER_PREFIX):
        return None
    return block


def test_option_files_exist():
    names = {rel(f) for f in OPTION_FILES}
    expected = ({f'options/train/{name}' for name in AUTHORS} | {f'options/test/paper/{name}.yml' for name in RELEASED}
                | {'options/test/test_AESOP_RRDB_x4_benchmarks.yml', 'options/test/test_AESOP_SwinIR_x4_benchmarks.yml',
                   'options/test/test_AESOP_RRDB_x4_Set5.yml', 'options/test/test_AESOP_autoencoder_x4_benchmarks.yml'})
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize('path', OPTION_FILES, ids=rel)
def test_types_resolve_in_registries(path):
    """Every model, network, dataset, loss, metric, optimizer, scheduler and io backend exists, and every
    option given to a network, loss or metric is a parameter it accepts (catches misspelt keys)."""
    opt = load(path)
    MODEL_REGISTRY.get(opt['model_type'])
    blocks = list(typed_blocks(opt))
    assert any(kind == 'arch' for kind, _, _ in blocks), 'no network_* block'
    for kind, key, block in blocks:
        try:
            obj = resolve(kind, block['type'])
        except (KeyError, AssertionError) as err:
            raise AssertionError(f'{rel(path)} {key}: type {block["type"]!r} does not resolve ({err})') from err
        if kind in ('arch', 'loss', 'metric'):
            kwargs = {k: v for k, v in block.items() if k != 'type'}
            args = ({'img': None, 'img2': None} if kind == 'metric' else {})
            try:
                inspect.signature(obj).bind(**args, **kwargs)
            except TypeError as err:
                raise AssertionError(f'{rel(path)} {key}: {block["type"]} does not take these options ({err})')


@pytest.mark.parametrize('path', OPTION_FILES, ids=rel)
def test_every_user_path_is_a_placeholder(path):
    """No shipped file points at a path that exists only on its author's machine."""
    opt = load(path)
    placeholders = {key.split(':')[-1] for key, _ in find_placeholders(opt)}
    assert placeholders, 'a shipped option file must leave the user at least one path to set'

    def walk(node, prefix=''):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, f'{prefix}:{k}' if prefix else k)
        else:
            yield prefix, node

    for key, value in walk(opt):
        if key.split(':')[-1].startswith(USER_PATH_PREFIXES) and value is not None:
            assert isinstance(value, str) and value.startswith(PLACEHOLDER_PREFIX), \
                f'{rel(path)} {key}: {value!r} should be a {PLACEHOLDER_PREFIX}: ...> placeholder'


@pytest.mark.parametrize('path', TRAIN_FILES, ids=rel)
def test_training_options_are_consistent(path):
    """What BasicSR would only find out hours into a run (or never): the LDL term without an EMA
    generator, a VGG discriminator that cannot take the patch size, an auto-encoder of another scale."""
    opt = load(path)
    train = opt['train']
    if train.get('ldl_opt'):
        assert train.get('ema_decay', 0) > 0, 'ldl_opt needs the EMA generator (train:ema_decay)'
    gt_size = opt['datasets']['train'].get('gt_size', opt.get('gt_size'))
    net_d = opt.get('network_d')
    if net_d and net_d['type'] == 'VGGStyleDiscriminator':
        assert net_d.get('input_size', 128) == gt_size, 'VGGStyleDiscriminator input_size must equal gt_size'
    assert gt_size % opt['scale'] == 0
    for key, loss in train.items():
        if isinstance(loss, dict) and loss.get('type') == 'AESOPLoss':
            assert loss['autoencoder']['scale'] == opt['scale'], f'train:{key}:autoencoder:scale'
            assert loss.get('param_key_ae') == 'params_ema'  # the released AEs and BasicSR's EMA weights


def test_run_names_are_unique():
    """experiments/<name> and results/<name> are keyed by name: two files must not share one."""
    for files in (TRAIN_FILES, TEST_FILES):
        names = [load(f)['name'] for f in files]
        assert len(names) == len(set(names)), names


@pytest.mark.parametrize('aesop_file, name, keep_ldl', [
    ('train_AESOP_ESRGAN_LDL_RRDB128_x4_DF2K.yml', 'train_LDL_RRDB128_x4_DF2K.yml', True),
    ('train_AESOP_ESRGAN_LDL_RRDB128_x4_DF2K.yml', 'train_ESRGAN_RRDB128_x4_DF2K.yml', False),
    ('train_AESOP_ESRGAN_LDL_DRCT256_x4_DF2K.yml', 'train_LDL_DRCT256_x4_DF2K.yml', True),
])
def test_baselines_differ_from_aesop_only_in_fidelity_terms(aesop_file, name, keep_ldl):
    """The baselines are the AESOP recipe with L1 (and LDL) as the fidelity terms, nothing else changed."""
    aesop = load(osp.join(REPO_ROOT, 'options/train/AESOP', aesop_file))
    base = load(osp.join(REPO_ROOT, 'options/train/Baselines', name))
    assert base['train']['pixel_opt']['type'] == 'L1Loss'
    assert ('ldl_opt' in base['train']) == keep_ldl
    strip = lambda o: {k: v for k, v in o.items() if k not in ('name', 'model_type', 'train')}  # noqa: E731
    assert strip(base) == strip(aesop)
    fidelity = ('pixel_opt', 'ldl_opt')
    assert {k: v for k, v in base['train'].items() if k not in fidelity} == \
        {k: v for k, v in aesop['train'].items() if k not in fidelity}
    if keep_ldl:
        assert base['train']['ldl_opt'] == aesop['train']['ldl_opt']


# ------------------------------------------------------------------ full-size networks

DISCRIMINATOR_OUTPUT = {
    'VGGStyleDiscriminator': lambda size: (1, 1),  # one logit per image
    'UNetDiscriminatorSN': lambda size: (1, 1, size, size),  # one logit per pixel
}


def expected_io(net_opt: dict, file_scale: int) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """(input shape, expected output shape) of a network built from ``net_opt``, on a small input."""
    kind = net_opt['type']
    in_ch = net_opt.get('num_in_ch', net_opt.get('in_chans', 3))
    if kind in DISCRIMINATOR_OUTPUT:
        size = net_opt.get('input_size', 64)
        return (1, in_ch, size, size), DISCRIMINATOR_OUTPUT[kind](size)
    if kind == 'AESOPAutoEncoder':  # psi = D(E(.)): HR in, HR out
        size = 8 * net_opt["scale"]
        return (1, in_ch, size, size), (1, in_ch, size, size)
    # SpandrelNet's scale is the model file's (checked where the file is loaded)
    scale = file_scale if kind == SPANDREL_NET else declared_scale(net_opt)
    assert scale == file_scale, f'{kind} upscales by {scale} but the file has scale: {file_scale}'
    out_ch = net_opt.get('num_out_ch', in_ch)
    return (1, in_ch, 8, 8), (1, out_ch, 8 * scale, 8 * scale)


_BUILT: Dict[str, torch.nn.Module] = {}
SPANDREL_NET = 'SpandrelNet'
LEGACY_ESRGAN_NAMES = (('body.', 'RRDB_trunk.'), ('conv_body.', 'trunk_conv.'), ('conv_up1.', 'upconv1.'),
                       ('conv_up2.', 'upconv2.'), ('conv_hr.', 'HRconv.'))


def to_legacy_esrgan(state: Dict[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """A BasicSR RRDBNet state dict in the old ESRGAN/KAIR key names (RRDB_ESRGAN_x4.pth, BSRGAN.pth)."""
    legacy = OrderedDict()
    for key, value in state.items():
        for new, old in LEGACY_ESRGAN_NAMES:
            if key.startswith(new):
                key = old + key[len(new):]
                break
        legacy[key.replace('.rdb', '.RDB')] = value
    return legacy


@pytest.fixture(scope='module')
def legacy_esrgan_file(tmp_path_factory) -> str:
    """A full-size ESRGAN in the original release's layout (bare, old key names): SpandrelNet files' model_path."""
    torch.manual_seed(0)
    net = build_network(dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32))
    path = str(tmp_path_factory.mktemp('legacy_esrgan') / 'RRDB_ESRGAN_x4.pth')
    torch.save(to_legacy_esrgan(net.state_dict()), path)
    return path


def with_model_file(net_opt: dict, model_file: str) -> dict:
    """A SpandrelNet block reads its model file when it is built: the stand-in's, in place of the placeholder."""
    return dict(net_opt, model_path=model_file) if net_opt['type'] == SPANDREL_NET else net_opt


def built(kind: str, block: dict) -> torch.nn.Module:
    """Build a network or loss once per distinct configuration (several files share the same ones)."""
    key = kind + repr(sorted(block.items(), key=str))
    if key not in _BUILT:
        torch.manual_seed(0)
        build = build_network if kind == 'arch' else build_loss
        _BUILT[key] = build(deepcopy(block)).eval()
    return _BUILT[key]


@pytest.mark.parametrize('path', OPTION_FILES, ids=rel)
def test_networks_build_at_full_size(path, legacy_esrgan_file):
    """Each network_* and each loss (AESOPLoss's auto-encoder included) builds exactly as configured,
    and the networks map a small input to the expected shape. No weights are loaded (SpandrelNet: a stand-in
    model file), nothing trains."""
    opt = load(path)
    for key in [k for k in opt if k.startswith('network_')]:
        net = built('arch', with_model_file(dict(opt[key]), legacy_esrgan_file))
        in_shape, out_shape = expected_io(opt[key], opt['scale'])
        with torch.no_grad():
            out = net(torch.rand(in_shape))
        assert tuple(out.shape) == out_shape, f'{key}: {tuple(out.shape)} != {out_shape}'
        assert torch.isfinite(out).all()
    for key, loss_opt in opt.get('train', {}).items():
        if not (key.endswith('_opt') and isinstance(loss_opt, dict)):
            continue
        if loss_opt['type'] == 'PerceptualLoss':
            # building it only loads VGG19; what the file decides is which layers it reads
            vgg_layers = NAMES[loss_opt.get('vgg_type', 'vgg19')]
            assert set(loss_opt['layer_weights']) <= set(vgg_layers), f'train:{key}:layer_weights'
            continue
        loss = built('loss', without_placeholders(dict(loss_opt)))
        if loss_opt['type'] == 'AESOPLoss':
            assert sum(p.numel() for p in loss.autoencoder.decoder.parameters()) > 16e6, 'not the full RRDBNet'
            in_shape, out_shape = expected_io(loss_opt['autoencoder'], opt['scale'])
            x = torch.rand(in_shape)
            with torch.no_grad():
                assert tuple(loss.autoencoder(x).shape) == out_shape
                assert loss(x, x).item() == 0
                assert loss(x, torch.rand(in_shape)).item() > 0


# ------------------------------------------------------------------ placeholders stop a run early

def test_training_with_placeholders_fails_naming_the_keys(tmp_path):
    """A shipped file as it is: aesop-train stops before building anything and names what to set."""
    path = osp.join(REPO_ROOT, 'options/train/AESOP/train_AESOP_ESRGAN_LDL_RRDB128_x4_DF2K.yml')
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    start = time.time()
    proc = subprocess.run([sys.executable, '-m', 'aesop_basicsr.train', '-opt', path], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    for key in ('datasets:train:dataroot_gt', 'datasets:val:dataroot_lq', 'path:pretrain_network_g',
                'train:pixel_opt:pretrain_network_ae'):
        assert key in proc.stderr, proc.stderr[-3000:]
    assert 'Set these options' in proc.stderr
    assert not (tmp_path / 'experiments').exists(), 'nothing may be created before the check'
    assert time.time() - start < 120


# ------------------------------------------------------------------ reduced copies train end to end

TINY_RRDB = dict(num_feat=8, num_block=1, num_grow_ch=4)
TINY_AE = dict(num_feat=16, num_grow_ch=8, num_block=1)


def reduced(path: str, data: dict, root: str, checkpoints: Dict[str, str], iters: int = 4) -> str:
    """The shipped file with tiny networks, a few iterations, real images and stand-in checkpoints
    in place of its placeholders; written to ``root`` and returned. Losses and their weights are kept."""
    opt = load(path)
    opt['name'] = 'reduced_' + opt['name']
    opt['num_gpu'] = 1 if torch.cuda.is_available() else 0
    train_set, val_set = opt['datasets']['train'], opt['datasets']['val']
    train_set.update(dataroot_gt=data['train']['gt'], dataroot_lq=data['train']['lq'], num_worker_per_gpu=0,
                     batch_size_per_gpu=2, dataset_enlarge_ratio=1)
    val_set.update(dataroot_gt=data['val']['gt'], dataroot_lq=data['val']['lq'])
    opt['train']['scheduler']['milestones'] = [iters // 2]
    opt['val']['val_freq'] = iters
    return shrink_and_write(opt, path, root, checkpoints, iters)


def shrink_and_write(opt: dict, path: str, root: str, checkpoints: Dict[str, str], iters: int) -> str:
    """Tiny generator, discriminator and AE (from ``checkpoints``), ``iters`` iterations; written to ``root``."""
    opt['network_g'].update(TINY_RRDB)
    opt['network_d']['num_feat'] = 8
    opt['path']['pretrain_network_g'] = checkpoints['g']
    train = opt['train']
    train['total_iter'] = iters
    if train['pixel_opt']['type'] == 'AESOPLoss':
        train['pixel_opt']['autoencoder'].update(TINY_AE)
        train['pixel_opt']['autoencoder']['decoder'].update(TINY_RRDB)
        train['pixel_opt']['pretrain_network_ae'] = checkpoints['ae']
    opt['logger'].update(print_freq=1, save_checkpoint_freq=iters, use_tb_logger=False)
    assert not find_placeholders(opt)
    out = osp.join(root, osp.basename(path))
    with open(out, 'w') as f:
        yaml.dump(yaml.safe_load(yaml.dump(opt, Dumper=ordered_yaml()[1])), f)
    return out


@pytest.fixture(scope='module')
def tiny_checkpoints(tmp_path_factory) -> Dict[str, str]:
    """A tiny RRDBNet generator and a tiny AESOP auto-encoder, saved as BasicSR saves them."""
    root = tmp_path_factory.mktemp('tiny_checkpoints')
    torch.manual_seed(0)
    g = build_network(dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, scale=4, **TINY_RRDB))
    ae = build_network(dict(type='AESOPAutoEncoder', scale=4, **TINY_AE,
                            decoder=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, scale=4, **TINY_RRDB)))
    from basicsr.archs.arch_util import default_init_weights
    default_init_weights(ae, 1)  # full scale, so psi depends on its input and AESOP carries signal in these runs
    paths = {'g': str(root / 'tiny_rrdb_g.pth'), 'ae': str(root / 'tiny_ae.pth')}
    torch.save({'params_ema': g.state_dict()}, paths['g'])
    torch.save({'params_ema': ae.state_dict()}, paths['ae'])
    return paths


def train_reduced(path: str, data, tmp_path, checkpoints) -> Tuple[str, str]:
    opt_file = reduced(path, data, str(tmp_path), checkpoints)
    name = load(opt_file)['name']
    run_module('aesop_basicsr.train', '-opt', opt_file, cwd=str(tmp_path))
    exp = tmp_path / 'experiments' / name
    log = ''.join(p.read_text() for p in exp.glob('train_*.log'))
    return str(exp), log


def changed_from(start: str, trained: str) -> bool:
    before = torch.load(start, map_location='cpu')['params_ema']
    after = torch.load(trained, map_location='cpu')['params']
    return any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize('name, pixel_loss, ldl', [
    ('AESOP/train_AESOP_ESRGAN_LDL_RRDB128_x4_DF2K.yml', 'AESOPLoss', True),
    ('Baselines/train_ESRGAN_RRDB128_x4_DF2K.yml', 'L1Loss', False),
])
def test_reduced_copy_trains_end_to_end(name, pixel_loss, ldl, paired_x4, stand_in_vgg19, stand_in_vgg16,
                                        tiny_checkpoints, tmp_path):
    """The shipped recipe, shrunk, through BasicSR's real train_pipeline on real photos: its losses are
    built, the generator starts from the given checkpoint and moves, validation (the authors' PSNR and DISTS,
    plus SSIM) runs, checkpoints are saved."""
    exp, log = train_reduced(osp.join(REPO_ROOT, 'options/train', name), paired_x4, tmp_path, tiny_checkpoints)
    assert f'Loss [{pixel_loss}] is created.' in log
    assert 'Loss [PerceptualLoss] is created.' in log and 'Loss [GANLoss] is created.' in log
    assert tiny_checkpoints['g'] in log  # BasicSR logs the generator checkpoint it loads
    losses = [line for line in log.splitlines() if 'l_g_pix:' in line]
    assert len(losses) == 4, log[-3000:]
    assert ('ldl' in losses[-1]) == ldl, losses[-1]
    assert 'l_g_percep:' in losses[-1] and 'l_g_gan:' in losses[-1] and 'l_d_real:' in losses[-1]
    assert '# psnr:' in log and '# ssim:' in log and '# dists:' in log  # validation on the held-out photos
    assert osp.isfile(osp.join(exp, 'models', 'net_d_4.pth'))
    assert changed_from(tiny_checkpoints['g'], osp.join(exp, 'models', 'net_g_4.pth'))


def reduced_realesrgan(path: str, hr_dir: str, root: str, checkpoints: Dict[str, str], iters: int = 4) -> str:
    """The shipped real-world file with tiny networks, a small degradation queue and real photos as HR."""
    opt = load(path)
    opt['name'] = 'reduced_' + opt['name']
    opt['num_gpu'] = 1
    opt['queue_size'] = 4  # RealESRGANModel needs it divisible by the batch size
    meta_info = osp.join(root, 'meta_info.txt')
    with open(meta_info, 'w') as f:
        f.write(''.join(f'{name}\n' for name in sorted(os.listdir(hr_dir))))
    opt['datasets']['train'].update(dataroot_gt=hr_dir, meta_info=meta_info, num_worker_per_gpu=0,
                                    batch_size_per_gpu=2)
    assert opt['train']['pixel_opt']['type'] == 'AESOPLoss'
    return shrink_and_write(opt, path, root, checkpoints, iters)


@pytest.fixture
def real_world_hr(tmp_path) -> str:
    """Real photos of at least 256 px, as RealESRGANDataset takes its HR images."""
    folder = tmp_path / 'hr'
    folder.mkdir()
    for name in ('astronaut', 'coffee', 'chelsea', 'rocket'):
        cv2.imwrite(str(folder / f'{name}.png'), load_photo(name)[:300, :300])
    return str(folder)


def test_reduced_realesrgan_copy_builds_its_degradation_data(real_world_hr, tiny_checkpoints, tmp_path):
    """On any machine: the real-world file's dataset settings make Real-ESRGAN's GT patches and kernels."""
    from basicsr.data import build_dataset
    opt = load(reduced_realesrgan(osp.join(REPO_ROOT, 'options/train/AESOP/train_AESOP_RealESRGAN_x4plus.yml'),
                                  real_world_hr, str(tmp_path), tiny_checkpoints))
    dataset_opt = dict(opt['datasets']['train'], phase='train', scale=opt['scale'])
    dataset = build_dataset(dataset_opt)
    assert len(dataset) == 4
    item = dataset[0]
    assert tuple(item['gt'].shape) == (3, 400, 400)  # padded/cropped to 400; the model crops gt_size from it
    assert item['kernel1'].shape == item['kernel2'].shape == (21, 21)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="Real-ESRGAN's model calls .cuda(): needs a CUDA GPU")
def test_reduced_realesrgan_copy_trains_on_cuda(real_world_hr, stand_in_vgg19, tiny_checkpoints, tmp_path):
    """The real-world recipe, shrunk, through train_pipeline on a GPU: Real-ESRGAN's on-the-fly degradations,
    AESOP against the plain (not sharpened) GT, the U-Net discriminator; checkpoints saved and the generator moved."""
    opt_file = reduced_realesrgan(osp.join(REPO_ROOT, 'options/train/AESOP/train_AESOP_RealESRGAN_x4plus.yml'),
                                  real_world_hr, str(tmp_path), tiny_checkpoints)
    name = load(opt_file)['name']
    run_module('aesop_basicsr.train', '-opt', opt_file, cwd=str(tmp_path))
    exp = tmp_path / 'experiments' / name
    log = ''.join(p.read_text() for p in exp.glob('train_*.log'))
    assert 'Loss [AESOPLoss] is created.' in log
    losses = [line for line in log.splitlines() if 'l_g_pix:' in line]
    assert len(losses) == 4, log[-3000:]
    assert 'l_g_percep:' in losses[-1] and 'l_g_gan:' in losses[-1]
    assert changed_from(tiny_checkpoints['g'], str(exp / 'models' / 'net_g_4.pth'))


# ------------------------------------------------------------------ the authors' values
# (github.com/2minkyulee/AESOP-SR)
# Copied from the authors' AESOP/options/ files; each recipe is checked against them key by key, so an edit
# that drifts from the paper fails here. 'lr' is the generator's learning rate at iterations of the run, as
# BasicSR's scheduler gives it; 'gpus' is the authors' GPU count (batch_size_per_gpu x gpus = their batch).

_SYNTHETIC = {  # train_Synthetic_AESOP_RRDB.yml / train_Synthetic_AESOP_SwinIR.yml, shared values
    'scale': 4, 'train:total_iter': 300000, 'train:ema_decay': 0.999, 'train:warmup_iter': -1,
    'train:optim_g:lr': 1e-4, 'train:optim_g:betas': [0.9, 0.99], 'train:optim_g:weight_decay': 0,
    'train:optim_d:lr': 1e-4, 'train:optim_d:betas': [0.9, 0.99], 'train:optim_d:weight_decay': 0,
    'train:net_d_iters': 1, 'train:net_d_init_iters': 0,
    'train:perceptual_opt:layer_weights': {'conv1_2': 0.1, 'conv2_2': 0.1, 'conv3_4': 1, 'conv4_4': 1, 'conv5_4': 1},
    'train:perceptual_opt:vgg_type': 'vgg19', 'train:perceptual_opt:use_input_norm': True,
    'train:perceptual_opt:range_norm': False, 'train:perceptual_opt:perceptual_weight': 1.0,
    'train:perceptual_opt:style_weight': 0, 'train:perceptual_opt:criterion': 'l1',
    'train:gan_opt:gan_type': 'vanilla', 'train:gan_opt:loss_weight': 5e-3,
    'train:gan_opt:real_label_val': 1.0, 'train:gan_opt:fake_label_val': 0.0,
    'datasets:train:type': 'PairedImageDataset', 'datasets:train:dataset_enlarge_ratio': 100,
    'datasets:train:use_hflip': True, 'datasets:train:use_rot': True, 'datasets:train:batch_size_per_gpu': 16,
    'datasets:val:name': 'DIV2K100', 'val:val_freq': 5000, 'val:metrics:psnr:crop_border': 4,
    'val:metrics:psnr:test_y_channel': True, 'val:metrics:dists:crop_border': 0, 'logger:save_checkpoint_freq': 5000,
    'path:strict_load_g': True,
    'lr': {1: 1e-4, 150000: 1e-4, 299999: 1e-4, 300000: 1e-4}, 'gpus': 4, 'batch': 64,
}
_AESOP_TERM = {  # aesop_opt: AutoEncoderLoss, l1, weight 1, on the released AE (params_ema); LDL's artifacts_opt 1.0
    'train:pixel_opt:type': 'AESOPLoss', 'train:pixel_opt:loss_weight': 1.0, 'train:pixel_opt:criterion': 'l1',
    'train:pixel_opt:reduction': 'mean', 'train:pixel_opt:param_key_ae': 'params_ema',
    'train:pixel_opt:autoencoder:decoder:num_block': 23, 'train:pixel_opt:autoencoder:decoder:num_feat': 64,
    'train:pixel_opt:autoencoder:decoder:num_grow_ch': 32,
    'train:ldl_opt:type': 'L1Loss', 'train:ldl_opt:loss_weight': 1.0, 'model_type': 'ESRGANLDLModel',
}
_RRDB = {'network_g:type': 'RRDBNet', 'network_g:num_feat': 64, 'network_g:num_block': 23, 'network_g:num_grow_ch': 32,
         'path:param_key_g': 'params_ema', 'manual_seed': 0}
_SWINIR = {'network_g:type': 'SwinIR', 'network_g:embed_dim': 180, 'network_g:depths': [6] * 6,
           'network_g:num_heads': [6] * 6, 'network_g:window_size': 8, 'network_g:img_size': 64,
           'network_g:mlp_ratio': 2, 'network_g:upsampler': 'pixelshuffle', 'network_g:resi_connection': '1conv',
           'path:param_key_g': 'params_ema',
           'manual_seed': 1}
# train_Synthetic_AESOP_DRCT.yml: DRCT_X4's architecture, checkpointing on; its HAT keys kept (DRCT ignores them)
_DRCT = {'network_g:type': 'DRCT', 'network_g:upscale': 4, 'network_g:in_chans': 3, 'network_g:img_size': 64,
         'network_g:window_size': 16, 'network_g:compress_ratio': 3, 'network_g:squeeze_factor': 30,
         'network_g:conv_scale': 0.01, 'network_g:overlap_ratio': 0.5, 'network_g:img_range': 1.0,
         'network_g:depths': [6] * 6, 'network_g:embed_dim': 180, 'network_g:num_heads': [6] * 6,
         'network_g:mlp_ratio': 2, 'network_g:upsampler': 'pixelshuffle', 'network_g:resi_connection': '1conv',
         'network_g:use_checkpoint': True, 'path:param_key_g': 'params_ema', 'path:strict_load_g': True,
         'manual_seed': 1}
_D = lambda size: {'network_d:type': 'VGGStyleDiscriminator', 'network_d:input_size': size,  # noqa: E731
                   'network_d:num_feat': 64, 'datasets:train:gt_size': size}
# retrained baselines: LDL's own train_Synthetic_LDL.yml (L1 1e-2 + artifacts 1.0), the AESOP recipe otherwise
_L1 = {'train:pixel_opt:type': 'L1Loss', 'train:pixel_opt:loss_weight': 1e-2}

_REALWORLD = {  # train_RealWorld_AESOP.yml
    'scale': 4, 'model_type': 'RealESRGANModel', 'manual_seed': 0,
    'l1_gt_usm': False,  # the authors' model feeds AESOP the plain GT (see the recipe), whatever their l1_gt_usm says
    'percep_gt_usm': True, 'gan_gt_usm': False,
    'resize_prob': [0.2, 0.7, 0.1], 'resize_range': [0.2, 1.5], 'gaussian_noise_prob': 0.5, 'noise_range': [1, 30],
    'poisson_scale_range': [0.05, 2], 'gray_noise_prob': 0.4, 'jpeg_range': [50, 95],
    'second_blur_prob': 0.8, 'resize_prob2': [0.3, 0.4, 0.3], 'resize_range2': [0.3, 1.2],
    'gaussian_noise_prob2': 0.5, 'noise_range2': [1, 20], 'poisson_scale_range2': [0.05, 2], 'gray_noise_prob2': 0.4,
    'jpeg_range2': [50, 95], 'gt_size': 256, 'queue_size': 144,
    'datasets:train:type': 'RealESRGANDataset', 'datasets:train:blur_kernel_size': 21,
    'datasets:train:kernel_list': ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso',
                                   'plateau_aniso'],
    'datasets:train:kernel_prob': [0.45, 0.25, 0.12, 0.03, 0.12, 0.03], 'datasets:train:sinc_prob': 0.1,
    'datasets:train:blur_sigma': [0.2, 3], 'datasets:train:betag_range': [0.5, 4], 'datasets:train:betap_range': [1, 2],
    'datasets:train:blur_kernel_size2': 21,
    'datasets:train:kernel_list2': ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso',
                                    'plateau_aniso'],
    'datasets:train:kernel_prob2': [0.45, 0.25, 0.12, 0.03, 0.12, 0.03], 'datasets:train:sinc_prob2': 0.1,
    'datasets:train:blur_sigma2': [0.2, 1.5], 'datasets:train:betag_range2': [0.5, 4],
    'datasets:train:betap_range2': [1, 2], 'datasets:train:final_sinc_prob': 0.8, 'datasets:train:gt_size': 256,
    'datasets:train:use_hflip': True, 'datasets:train:use_rot': False, 'datasets:train:batch_size_per_gpu': 12,
    'datasets:train:dataset_enlarge_ratio': 10,
    'network_g:type': 'RRDBNet', 'network_g:num_block': 23, 'path:param_key_g': 'params_ema',
    'network_d:type': 'UNetDiscriminatorSN', 'network_d:num_feat': 64, 'network_d:skip_connection': True,
    'train:total_iter': 400000, 'train:ema_decay': 0.999, 'train:optim_g:lr': 1e-4, 'train:optim_d:lr': 1e-4,
    'train:optim_g:betas': [0.9, 0.99], 'train:optim_d:betas': [0.9, 0.99],
    'train:pixel_opt:type': 'AESOPLoss', 'train:pixel_opt:loss_weight': 1.0, 'train:pixel_opt:criterion': 'l1',
    'train:pixel_opt:param_key_ae': 'params_ema', 'train:ldl_opt': None,
    'train:perceptual_opt:layer_weights': {'conv2_2': 0.1, 'conv3_4': 1, 'conv4_4': 1, 'conv5_4': 1},
    'train:perceptual_opt:perceptual_weight': 1.0, 'train:perceptual_opt:criterion': 'l1',
    'train:perceptual_opt:range_norm': False, 'train:perceptual_opt:use_input_norm': True,
    'train:gan_opt:gan_type': 'vanilla', 'train:gan_opt:loss_weight': 0.1, 'train:net_d_iters': 1,
    'train:net_d_init_iters': 0,
    # MultiStepLR [400000] gamma 0.5: 1e-4 throughout; BasicSR steps the scheduler before the last iteration's update
    'lr': {1: 1e-4, 200000: 1e-4, 399999: 1e-4, 400000: 5e-5}, 'gpus': 4, 'batch': 48,
}
_AE = {  # train_Synthetic_AE_RRDB_LRrecon1.yml / train_Realworld_AE_RRDB_DecoderFreeze.yml, shared values
    'scale': 4, 'model_type': 'AESOPAEModel', 'manual_seed': 0, 'train:total_iter': 100000, 'train:ema_decay': 0.999,
    'train:optim_g:lr': 1e-4, 'train:optim_g:betas': [0.9, 0.99], 'train:pixel_opt:type': 'L1Loss',
    'train:pixel_opt:loss_weight': 1.0, 'datasets:train:name': 'DF2K', 'datasets:train:type': 'PairedImageDataset',
    'datasets:train:gt_size': 256, 'datasets:train:use_hflip': True, 'datasets:train:use_rot': True,
    'datasets:train:batch_size_per_gpu': 16, 'datasets:train:dataset_enlarge_ratio': 1,
    'datasets:val:name': 'DIV2Kmini', 'val:val_freq': 5000, 'val:metrics:psnr:crop_border': 4,
    'val:metrics:ssim:crop_border': 4, 'network_g:decoder:type': 'RRDBNet', 'network_g:decoder:num_block': 23,
    'lr': {1: 1e-4, 50000: 1e-4, 99999: 1e-4, 100000: 1e-4}, 'gpus': 4, 'batch': 64,
}

AUTHORS = {  # our recipe (under options/train/) -> the authors' values it must keep
    'AESOP/train_AESOP_ESRGAN_LDL_RRDB128_x4_DF2K.yml': {**_SYNTHETIC, **_AESOP_TERM, **_RRDB, **_D(128)},
    'AESOP/train_AESOP_ESRGAN_LDL_RRDB256_x4_DF2K.yml': {**_SYNTHETIC, **_AESOP_TERM, **_RRDB, **_D(256)},
    'AESOP/train_AESOP_ESRGAN_LDL_SwinIR256_x4_DF2K.yml': {**_SYNTHETIC, **_AESOP_TERM, **_SWINIR, **_D(256)},
    'AESOP/train_AESOP_ESRGAN_LDL_DRCT256_x4_DF2K.yml': {**_SYNTHETIC, **_AESOP_TERM, **_DRCT, **_D(256)},
    'Baselines/train_ESRGAN_RRDB128_x4_DF2K.yml': {**_SYNTHETIC, **_RRDB, **_D(128), **_L1, 'train:ldl_opt': None,
                                                   'model_type': 'ESRGANModel'},
    'Baselines/train_LDL_RRDB128_x4_DF2K.yml': {**_SYNTHETIC, **_RRDB, **_D(128), **_L1,
                                                'train:ldl_opt:loss_weight': 1.0, 'model_type': 'ESRGANLDLModel'},
    'Baselines/train_LDL_SwinIR256_x4_DF2K.yml': {**_SYNTHETIC, **_SWINIR, **_D(256), **_L1,
                                                  'train:ldl_opt:loss_weight': 1.0, 'model_type': 'ESRGANLDLModel'},
    'Baselines/train_LDL_DRCT256_x4_DF2K.yml': {**_SYNTHETIC, **_DRCT, **_D(256), **_L1,
                                                'train:ldl_opt:loss_weight': 1.0, 'model_type': 'ESRGANLDLModel'},
    'AESOP/train_AESOP_RealESRGAN_x4plus.yml': _REALWORLD,
    'AESOP/train_AE_RRDBdecoder_x4_DF2K.yml': {
        **_AE, 'train:lr_opt:type': 'L1Loss', 'train:lr_opt:loss_weight': 1.0, 'train:freeze_decoder_iters': 0},
    'AESOP/train_AE_RRDBdecoder_x4_RealESRNet.yml': {
        **_AE, 'train:lr_opt': None, 'train:freeze_decoder_iters': -1, 'find_unused_parameters': True,
        'path:param_key_decoder': 'params_ema'},
}
MISSING = object()


def lookup(opt: dict, key: str) -> Any:
    node = opt
    for part in key.split(':'):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def learning_rate_at(opt: dict, iteration: int) -> float:
    """The generator's learning rate in ``iteration`` (1-based), from BasicSR's own MultiStepRestartLR.

    BasicSR's train loop steps the scheduler once before each iteration's update; the rate only changes at
    milestones, so stepping at each milestone up to ``iteration`` gives the same rate as stepping every time.
    """
    from basicsr.models.lr_scheduler import MultiStepRestartLR
    sched_opt = dict(opt['train']['scheduler'])
    assert sched_opt.pop('type') == 'MultiStepLR'  # BasicSR builds MultiStepRestartLR for it
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=opt['train']['optim_g']['lr'])
    scheduler = MultiStepRestartLR(optimizer, **sched_opt)
    for milestone in sorted(set(sched_opt['milestones'])):
        if milestone <= iteration:
            scheduler.last_epoch = milestone - 1
            with warnings.catch_warnings():  # no optimizer.step() here: only the rate is read
                warnings.simplefilter('ignore', UserWarning)
                scheduler.step()
    return optimizer.param_groups[0]['lr']


@pytest.mark.parametrize('name', sorted(AUTHORS))
def test_recipe_keeps_the_authors_values(name):
    """Every value in the authors' table above, the learning rate over the run and the effective batch."""
    path = osp.join(REPO_ROOT, 'options/train', name)
    opt, text = load(path), open(path).read()
    wrong = []
    for key, expected in AUTHORS[name].items():
        if key in ('lr', 'gpus', 'batch'):
            continue
        value = lookup(opt, key)
        if expected is None:  # the authors have no such term
            ok = value in (MISSING, None)
        elif isinstance(expected, float):
            ok = value is not MISSING and not isinstance(value, bool) and float(value) == pytest.approx(expected)
        else:
            ok = value == expected
        if not ok:
            wrong.append(f'{key}: {value if value is not MISSING else "(missing)"} != authors\' {expected}')
    for iteration, rate in AUTHORS[name]['lr'].items():
        if learning_rate_at(opt, iteration) != pytest.approx(rate):
            wrong.append(f'learning rate at iteration {iteration}: {learning_rate_at(opt, iteration)} != {rate}')
    authors = AUTHORS[name]
    batch = opt['datasets']['train']['batch_size_per_gpu']
    if batch * authors['gpus'] != authors['batch']:
        wrong.append(f'batch_size_per_gpu {batch} x the authors\' {authors["gpus"]} GPUs != {authors["batch"]}')
    if f'effective batch of {authors["batch"]}' not in text:  # every recipe says what the paper's batch is
        wrong.append(f'the header does not state the effective batch of {authors["batch"]}')
    assert not wrong, f'{name}:\n  ' + '\n  '.join(wrong)


def test_realworld_aesop_term_sees_the_plain_gt():
    """Real-ESRGAN's model (the installed realesrgan package, else BasicSR's) picks the GT of each term from
    these flags: with l1_gt_usm false its pixel term (AESOP here) gets the plain GT, as in the authors' model."""
    try:
        from realesrgan.models.realesrgan_model import RealESRGANModel
    except ImportError:
        from basicsr.models.realesrgan_model import RealESRGANModel
    source = inspect.getsource(RealESRGANModel.optimize_parameters)
    assert "if self.opt['l1_gt_usm'] is False:\n            l1_gt = self.gt" in source
    assert 'self.cri_pix(self.output, l1_gt)' in source
    opt = load(osp.join(REPO_ROOT, 'options/train/AESOP/train_AESOP_RealESRGAN_x4plus.yml'))
    assert opt['l1_gt_usm'] is False and opt['percep_gt_usm'] is True and opt['gan_gt_usm'] is False
    assert opt['queue_size'] % opt['datasets']['train']['batch_size_per_gpu'] == 0


# ------------------------------------------------------------------ test files: the authors' protocol

PAPER_BENCHMARKS = ['Set14', 'Manga109', 'General100', 'Urban100', 'DIV2K100', 'BSD100mod12', 'LSDIR250mod12']
PROTOCOL_METRICS = {'psnr': ('calculate_psnr', 4, True), 'ssim': ('calculate_ssim', 4, True),
                    'lpips': ('calculate_lpips', 0, None), 'dists': ('calculate_dists', 0, None)}
# released file -> the key layout it is published in (test stem under options/test/paper/)
RELEASED = {
    'test_AESOP_RRDB128_290K': 'params_ema', 'test_AESOP_RRDB256_300K': 'params_ema',
    'test_AESOP_SwinIR256_190K': 'params_ema', 'test_RealAESOP_RRDB_400K': 'params_ema',
    'test_official_ESRGAN': 'params', 'test_official_RRDB_PSNR': 'params', 'test_official_SwinIR_PSNR': 'params',
    'test_official_LDL_DF2K_RRDB': 'params', 'test_official_LDL_DF2K_SwinIR': 'params',
    'test_official_RealESRGAN_x4plus': 'params_ema', 'test_official_RealLDL': 'params_ema',
    'test_official_BSRGAN': 'legacy',  # KAIR's bare state dict in the old ESRGAN layout
    'test_AESOP_DRCT256_300K': 'drct_authors', 'test_reproduced_DRCT_LDL_300K': 'drct_authors',  # Linear 'adjust'
    'test_official_SPSR': 'bare',  # SPSR's spsr.pth: a bare state dict
    'test_official_NonRealESRGAN': 'model_path',  # RRDB_ESRGAN_x4.pth, read by SpandrelNet as it is
}
REAL_WORLD_TESTS = {'test_RealAESOP_RRDB_400K', 'test_official_RealESRGAN_x4plus', 'test_official_RealLDL',
                    'test_official_BSRGAN', 'test_official_NonRealESRGAN'}


@pytest.mark.parametrize('path', TEST_FILES, ids=rel)
def test_test_files_follow_the_authors_protocol(path):
    """The authors' benchmark list in their order (Set5 only in its own extra file; the real-world files their
    one real-world set), each HR mod-cropped as they did, and the paper's four metrics with their borders."""
    opt = load(path)
    stem = osp.splitext(osp.basename(path))[0]
    names = [d['name'] for d in opt['datasets'].values()]
    if stem == 'test_AESOP_RRDB_x4_Set5':
        assert names == ['Set5']
    elif stem in REAL_WORLD_TESTS:
        assert names == ['RealWorld38+DIV2Kmini'] and set(opt['val']['metrics']) == {'psnr'}
        return
    else:
        assert names == PAPER_BENCHMARKS
    for dataset in opt['datasets'].values():
        mod = 12 if dataset['name'].endswith('mod12') else 4
        assert f'HR_mod{mod}' in dataset['dataroot_gt'], dataset['dataroot_gt']
    assert set(opt['val']['metrics']) == set(PROTOCOL_METRICS)
    for metric, (kind, border, y_channel) in PROTOCOL_METRICS.items():
        block = opt['val']['metrics'][metric]
        assert (block['type'], block['crop_border'], block.get('test_y_channel')) == (kind, border, y_channel)
    assert opt['val']['save_img'] is True  # aesop-eval --protocol paper reads the saved images
    if opt['network_g']['type'] == 'SwinIR':
        assert opt['model_type'] == 'SwinIRModel'  # pads to window_size, as the authors' SwinIR does inside


def test_every_released_checkpoint_and_baseline_has_a_test_file():
    assert sorted(RELEASED) == sorted(osp.splitext(osp.basename(f))[0]
                                      for f in glob.glob(osp.join(REPO_ROOT, 'options/test/paper/*.yml')))


@pytest.fixture(scope='module')
def full_size_test_models(legacy_esrgan_file):
    """One BasicSR test model per (model_type, network_g) of the released-weights files, built as aesop-test
    builds it (no checkpoint yet); the files then load their stand-in checkpoints into these."""
    from basicsr.models import build_model
    models = {}
    for stem in RELEASED:
        opt = load(osp.join(REPO_ROOT, 'options/test/paper', stem + '.yml'))
        key = (opt['model_type'], repr(opt['network_g']))
        if key not in models:
            torch.manual_seed(0)
            opt['network_g'] = with_model_file(opt['network_g'], legacy_esrgan_file)
            opt.update(num_gpu=0, is_train=False, dist=False, rank=0, world_size=1)
            opt['path'] = {'pretrain_network_g': None}
            models[key] = build_model(opt)
    return models


def _stand_in(net: torch.nn.Module, layout: str, folder: str, stem: str) -> Tuple[str, Dict[str, torch.Tensor]]:
    """A checkpoint with ``net``'s keys and shapes (other values) in a release's layout, and the tensors it holds.
    A tensor the network holds under two names (SPSR's HR_conv0_new) gets one value, as in the released file."""
    values: Dict[int, torch.Tensor] = {}
    state = OrderedDict()
    for key, value in net.state_dict().items():
        if value.data_ptr() not in values:
            values[value.data_ptr()] = (value + 0.01 * torch.randn_like(value) if value.is_floating_point()
                                        else value.clone())
        state[key] = values[value.data_ptr()]
    path = osp.join(folder, f'{stem}.pth')
    if layout == 'legacy':  # the old ESRGAN/KAIR key names, a bare state dict
        torch.save(to_legacy_esrgan(state), path)
    elif layout == 'bare':
        torch.save(state, path)
    elif layout == 'drct_authors':  # the AESOP authors' DRCT: the 1x1 'adjust' convolutions as Linear weights
        torch.save({'params_ema': OrderedDict((k, v.flatten(1) if '.adjust' in k and k.endswith('.weight') else v)
                                              for k, v in state.items())}, path)
    else:
        torch.save({layout: state}, path)
    return path, state


@pytest.mark.parametrize('stem', sorted(RELEASED))
def test_released_weights_files_load_their_checkpoint(stem, full_size_test_models, tmp_path):
    """Each released-weights test file builds its full-size network and, through BasicSR's load_network with
    the file's param_key_g (and strict_load_g), loads a stand-in in the released key layout: every tensor
    arrives. The BSRGAN file loads KAIR's layout after scripts/convert_legacy_rrdb.py, run as a process."""
    opt = load(osp.join(REPO_ROOT, 'options/test/paper', stem + '.yml'))
    model = full_size_test_models[(opt['model_type'], repr(opt['network_g']))]
    net = model.net_g
    assert sum(p.numel() for p in net.parameters()) > 11e6, 'not the full-size network'
    if RELEASED[stem] == 'model_path':  # SpandrelNet: the weights came with the network from its model file
        assert opt['path']['pretrain_network_g'] is None
        assert (net.architecture, net.scale) == ('ESRGAN', 4)
        return
    path, state = _stand_in(net, RELEASED[stem], str(tmp_path), stem)
    if RELEASED[stem] == 'legacy':
        converted = str(tmp_path / 'converted.pth')
        subprocess.run([sys.executable, osp.join(REPO_ROOT, 'scripts', 'convert_legacy_rrdb.py'), path, converted],
                       check=True, capture_output=True, timeout=300)
        path = converted
    param_key = opt['path']['param_key_g']
    model.load_network(net, path, opt['path']['strict_load_g'], param_key)
    loaded = net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    if stem in (sorted(k for k in RELEASED if 'SwinIR' in k)[0], 'test_AESOP_RRDB128_290K', 'test_AESOP_DRCT256_300K'):
        # the model's own test(): an LR whose sides are not multiples of SwinIR's (DRCT's) window comes back 4x larger
        model.lq = torch.rand(1, 3, 9, 11)
        model.test()
        assert tuple(model.output.shape) == (1, 3, 36, 44) and torch.isfinite(model.output).all()


def test_test_with_placeholders_fails_naming_the_keys(tmp_path):
    """A shipped test file as it is: aesop-test stops before building anything and names what to set."""
    path = osp.join(REPO_ROOT, 'options/test/paper/test_AESOP_SwinIR256_190K.yml')
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, '-m', 'aesop_basicsr.test', '-opt', path], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    for key in ('datasets:test_1:dataroot_gt', 'datasets:test_7:dataroot_lq', 'path:pretrain_network_g'):
        assert key in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / 'results').exists(), 'nothing may be created before the check'
