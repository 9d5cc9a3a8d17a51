"""The one checkpoint reader and writer: crash-safe writes, the training-state allowlist, safetensors everywhere."""
import collections
import datetime
import glob
import pickle
import pickletools
import re
import zipfile
from os import path as osp

import pytest
import torch
from basicsr.models import build_model
from basicsr.models.base_model import BaseModel
from basicsr.models.lr_scheduler import CosineAnnealingRestartLR, MultiStepRestartLR
from basicsr.archs.rrdbnet_arch import RRDBNet

from aesop_basicsr import train as aesop_train
from aesop_basicsr.convert import convert
from aesop_basicsr.losses.aesop_loss import AESOPLoss
from aesop_basicsr.utils.checkpoint import (TRAINING_STATE_TYPES, atomic_write, read_checkpoint, read_training_state,
                                            save_checkpoint)
from aesop_basicsr.utils.restricted_pickle import restricted_pickle_module
from conftest import REPO_ROOT
from test_crash_resume import CreatesMarker, assert_bit_identical, payload_state
from tiny_training import NET_G, TINY_AE, kwargs_of, write_autoencoder

# globals torch.save writes for tensors and their storages
TORCH_REBUILD = re.compile(r'^torch(\._utils)? (_rebuild_\w+|\w+Storage)$')


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path):
    target = tmp_path / 'net_g_10.pth'
    save_checkpoint({'params': {'w': torch.ones(3)}}, str(target))
    before = target.read_bytes()

    def write_half_then_fail(f):
        f.write(b'PK\x03\x04 half a zip')
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        atomic_write(str(target), write_half_then_fail)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['net_g_10.pth']  # no temporary file left behind
    assert torch.equal(read_checkpoint(str(target), 'x')['params']['w'], torch.ones(3))


def real_training_state() -> dict:
    """What BasicSR's save_training_state writes for ESRGAN: two Adams and their schedulers, after a step."""
    net_g, net_d = torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4, 1)
    optimizers = [torch.optim.Adam(net_g.parameters(), 1e-4, betas=(0.9, 0.99)),
                  torch.optim.Adam(net_d.parameters(), 1e-4, betas=(0.9, 0.99))]
    schedulers = [MultiStepRestartLR(optimizers[0], milestones=[2, 4], gamma=0.5),
                  CosineAnnealingRestartLR(optimizers[1], periods=[5, 5], restart_weights=[1, 0.5], eta_min=1e-7)]
    (net_g(torch.rand(1, 3, 8, 8)).mean() + net_d(torch.rand(2, 4)).mean()).backward()
    for optimizer, scheduler in zip(optimizers, schedulers):
        optimizer.step()
        scheduler.step()
    return {'epoch': 1, 'iter': 7, 'optimizers': [o.state_dict() for o in optimizers],
            'schedulers': [s.state_dict() for s in schedulers]}


def pickled_globals(path: str) -> set:
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith('data.pkl')))
    return {arg for op, arg, _ in pickletools.genops(data) if op.name == 'GLOBAL'}


def test_the_allowlist_covers_what_a_real_training_state_holds(tmp_path):
    path = str(tmp_path / '7.state')
    state = real_training_state()
    save_checkpoint(state, path)
    names = pickled_globals(path)
    outside = {n for n in names if not TORCH_REBUILD.match(n)}
    allowed = {f'{t.__module__} {t.__name__}' for t in TRAINING_STATE_TYPES}
    assert 'collections Counter' in outside  # MultiStepRestartLR's milestones: the reason for the allowlist
    assert outside <= allowed, outside - allowed
    loaded = read_training_state(path)
    assert loaded['iter'] == 7 and loaded['schedulers'][0]['milestones'] == collections.Counter([2, 4])
    assert torch.equal(loaded['optimizers'][0]['state'][0]['exp_avg'], state['optimizers'][0]['state'][0]['exp_avg'])


def test_a_training_state_needing_another_type_is_refused_naming_it(tmp_path):
    path = str(tmp_path / '8.state')
    torch.save(dict(real_training_state(), saved_at=datetime.datetime(2025, 1, 1)), path)
    with pytest.raises(ValueError, match=rf"path:resume_state: '{re.escape(path)}' .* needs "
                                         r'datetime.datetime, which is not an allowed type') as err:
        read_training_state(path)
    assert type(err.value).__name__ == 'UnsafeCheckpointError'  # by name: test_registration reloads modules


def test_a_file_that_is_not_a_training_state(tmp_path):
    path = str(tmp_path / '9.state')
    torch.save({'params': {'w': torch.ones(1)}}, path)
    with pytest.raises(ValueError, match=r"is not a BasicSR training state \(it needs the keys \['epoch', "
                                              r"'iter', 'optimizers', 'schedulers'\]; found \['params'\]\)"):
        read_training_state(path)


@pytest.fixture(scope='module')
def ae_pth(tmp_path_factory) -> str:
    """An AESOPAEModel-style file whose params and params_ema differ."""
    path = write_autoencoder(str(tmp_path_factory.mktemp('convert') / 'net_g_100.pth'))
    checkpoint = torch.load(path, weights_only=True)
    checkpoint['params_ema'] = {k: v * 0.5 if v.is_floating_point() else v for k, v in checkpoint['params'].items()}
    torch.save(checkpoint, path)
    return path


def test_convert_keeps_params_and_params_ema_bit_identical(ae_pth):
    target, keys = convert(ae_pth)
    assert target == ae_pth[:-4] + '.safetensors' and keys == ['params', 'params_ema']
    original = torch.load(ae_pth, weights_only=True)
    converted = read_checkpoint(target, 'x')
    assert len(converted) == len(original['params']) + len(original['params_ema'])
    for key in ('params', 'params_ema'):
        for name, value in original[key].items():
            assert torch.equal(converted[f'{key}.{name}'], value) and converted[f'{key}.{name}'].dtype == value.dtype


@pytest.mark.parametrize('param_key', ['params', 'params_ema'])
def test_aesop_loss_reads_the_converted_file_as_the_pth(ae_pth, param_key):
    target, _ = convert(ae_pth, ae_pth[:-4] + f'_{param_key}.safetensors')
    from_pth = AESOPLoss(TINY_AE, pretrain_network_ae=ae_pth, param_key_ae=param_key).autoencoder.state_dict()
    from_st = AESOPLoss(TINY_AE, pretrain_network_ae=target, param_key_ae=param_key).autoencoder.state_dict()
    assert from_pth.keys() == from_st.keys() and all(torch.equal(from_pth[k], from_st[k]) for k in from_pth)


def test_pretrain_network_g_reads_safetensors_through_the_entry_point_hook(tmp_path, monkeypatch):
    torch.manual_seed(3)
    net = RRDBNet(**kwargs_of(NET_G))
    pth = str(tmp_path / 'g.pth')
    torch.save({'params': net.state_dict(), 'params_ema': {k: v + 1 for k, v in net.state_dict().items()}}, pth)
    target, _ = convert(pth)
    monkeypatch.setattr(BaseModel, 'load_network', aesop_train.load_network)
    opt = {'model_type': 'SRModel', 'num_gpu': 0, 'is_train': False, 'dist': False, 'scale': 4,
           'network_g': dict(NET_G), 'path': {'pretrain_network_g': target, 'param_key_g': 'params_ema',
                                              'strict_load_g': True}}
    model = build_model(opt)
    for key, value in net.state_dict().items():
        assert torch.equal(model.net_g.state_dict()[key], value + 1), key
    opt['network_g'] = dict(NET_G, num_feat=16)
    with pytest.raises(ValueError, match=r"path:pretrain_network_g: '.*g.safetensors' does not fit the "
                                              r'configured network: \S+ has shape \(\d+, 8, 3, 3\) in the file'):
        build_model(opt)


def test_every_checkpoint_read_in_the_package_goes_through_the_one_reader():
    readers = [osp.join(REPO_ROOT, 'aesop_basicsr', 'utils', name) for name in ('checkpoint.py', 'restricted_pickle.py')]
    for path in glob.glob(osp.join(REPO_ROOT, 'aesop_basicsr', '**', '*.py'), recursive=True):
        if path in readers:
            continue
        with open(path) as f:
            source = f.read()
        for call in ('torch.load(', 'load_file(', 'safe_open(', 'pickle.load'):
            assert call not in source, f'{osp.relpath(path, REPO_ROOT)} calls {call} itself'


# ---- torch < 2.4: the restricted unpickler ------------------------------------------------------------------
OPEN = re.escape(f'{open.__module__}.{open.__qualname__}')  # as pickle names the payload's global (io, _io ...)


def state_with_every_tensor_kind() -> dict:
    """A real training state plus what else plain tensors carry: a Parameter, several dtypes, a Size."""
    state = real_training_state()
    state['extra'] = {'param': torch.nn.Parameter(torch.arange(4.)), 'size': torch.Size([2, 3]),
                      'dtype': torch.bfloat16,
                      **{str(dtype): torch.arange(6).to(dtype).reshape(2, 3)[:, 1:]  # a strided view
                         for dtype in (torch.float64, torch.bfloat16, torch.float16, torch.int64, torch.uint8,
                                       torch.bool)}}
    return state


def load_restricted(path: str, types=TRAINING_STATE_TYPES):
    return torch.load(path, map_location='cpu', weights_only=False, pickle_module=restricted_pickle_module(types))


@pytest.mark.parametrize('zip_format', [True, False], ids=['zip', 'legacy'])
def test_restricted_unpickler_loads_a_training_state_as_it_was_saved(tmp_path, zip_format):
    path = str(tmp_path / '7.state')
    state = state_with_every_tensor_kind()
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    loaded = load_restricted(path)
    assert_bit_identical(loaded, state, 'state')
    milestones = loaded['schedulers'][0]['milestones']
    assert type(milestones) is collections.Counter and milestones == collections.Counter([2, 4])
    param = loaded['extra']['param']
    assert type(param) is torch.nn.Parameter and param.requires_grad
    assert loaded['extra']['size'] == (2, 3) and type(loaded['extra']['size']) is torch.Size
    assert loaded['extra']['dtype'] is torch.bfloat16


@pytest.mark.parametrize('zip_format', [True, False], ids=['zip', 'legacy'])
def test_restricted_unpickler_refuses_other_globals_without_running_them(tmp_path, zip_format):
    marker = str(tmp_path / 'payload_ran')
    path = str(tmp_path / '8.state')
    torch.save({'epoch': 0, 'iter': 8, 'optimizers': [CreatesMarker(marker)], 'schedulers': []}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(pickle.UnpicklingError, match=rf'^Unsupported global: GLOBAL {OPEN}$'):
        load_restricted(path)
    assert not osp.exists(marker)
    # the allowlist is what lets a Counter through: without it, the scheduler state is refused by name
    counter_path = str(tmp_path / '9.state')
    torch.save(real_training_state(), counter_path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(pickle.UnpicklingError, match=r'GLOBAL collections\.Counter$'):
        load_restricted(counter_path, types=[])


def test_restricted_unpickler_reads_a_legacy_header_restricted_too(tmp_path):
    """A legacy (non-zip) file starts with pickles torch reads through the module's load(): a payload there too."""
    marker, path = str(tmp_path / 'payload_ran'), str(tmp_path / 'header.state')
    with open(path, 'wb') as f:
        pickle.dump(CreatesMarker(marker), f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=rf'GLOBAL {OPEN}$'):
        load_restricted(path)
    assert not osp.exists(marker)


def test_read_training_state_where_torch_has_no_safe_globals(tmp_path, monkeypatch):
    """torch < 2.4 (no safe_globals / add_safe_globals): the same state loads, the same payload is refused."""
    for name in ('safe_globals', 'add_safe_globals'):
        monkeypatch.delattr(torch.serialization, name, raising=False)
    path = str(tmp_path / '7.state')
    state = real_training_state()
    save_checkpoint(state, path)
    assert_bit_identical(read_training_state(path), state, 'state')
    marker = str(tmp_path / 'payload_ran')
    payload = payload_state(str(tmp_path / '8.state'), marker, 8)
    with pytest.raises(ValueError, match=rf"path:resume_state: '{re.escape(payload)}' is not a PyTorch checkpoint "
                                         rf'that loads with weights_only=True: it needs {OPEN}, which is not '
                                         r'an allowed type') as err:
        read_training_state(payload)
    assert type(err.value).__name__ == 'UnsafeCheckpointError' and not osp.exists(marker)
