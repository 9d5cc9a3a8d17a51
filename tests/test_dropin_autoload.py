"""Installing aesop-basicsr is all it takes: unmodified BasicSR, Real-ESRGAN and project train.py files use AESOPLoss.

Every run here is a real, fresh process of this environment (or of a throw-away one holding the
built wheel). Nothing of ours is on its command line or PYTHONPATH: only the installed
``aesop_basicsr_autoload.pth`` hooks AESOP in. The processes run two at a time, once per module;
each test checks one promise on their results.

BasicSR's and Real-ESRGAN's train.py put ``experiments/`` under the folder *above* the
``basicsr`` / ``realesrgan`` package, which for ``python -m basicsr.train`` is site-packages.
The runs emulate the clones these projects are normally trained from instead, so nothing is
written into the environment: a folder holding a ``basicsr`` link to the installed package
(``python -m basicsr.train`` then finds BasicSR there, and roots ``experiments/`` at that folder),
and a folder holding a copy of the installed ``realesrgan/train.py``.
"""
import glob
import json
import math
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from os import path as osp

import pytest
import torch
import yaml
from basicsr.archs.arch_util import default_init_weights
from basicsr.archs.discriminator_arch import UNetDiscriminatorSN, VGGStyleDiscriminator
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

import aesop_basicsr
from aesop_basicsr.archs.aesop_autoencoder_arch import AESOPAutoEncoder
from layered_venv import layered_venv, pip
from test_dropin_models import REAL_KERNELS  # Real-ESRGAN's own kernel settings

ITERS = 2
ENV_VAR = 'AESOP_BASICSR_AUTOLOAD'
REGISTRY_ERROR = "No object named 'AESOPLoss' found in 'loss' registry!"  # BasicSR's own message
TINY_AE = dict(type='AESOPAutoEncoder', scale=4, num_in_ch=3, num_feat=48, num_grow_ch=4, num_block=1,
               decoder=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4,
                            scale=4))
NET_G = dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4, scale=4)
VGG_D = dict(type='VGGStyleDiscriminator', num_in_ch=3, num_feat=4, input_size=128)
UNET_D = dict(type='UNetDiscriminatorSN', num_in_ch=3, num_feat=4, skip_connection=True)
# Real-ESRGAN's own settings (options/train_realesrnet_x4plus.yml), batch and queue of one image
REAL_DEGRADATION = dict(
    resize_prob=[0.2, 0.7, 0.1], resize_range=[0.15, 1.5], gaussian_noise_prob=0.5, noise_range=[1, 30],
    poisson_scale_range=[0.05, 3], gray_noise_prob=0.4, jpeg_range=[30, 95], second_blur_prob=0.8,
    resize_prob2=[0.3, 0.4, 0.3], resize_range2=[0.3, 1.2], gaussian_noise_prob2=0.5, noise_range2=[1, 25],
    poisson_scale_range2=[0.05, 2.5], gray_noise_prob2=0.4, jpeg_range2=[30, 95], gt_size=64, queue_size=1)

# Test-only: Real-ESRGAN's models call .cuda(); on a CPU-only host make that a no-op, and give
# DiffJPEG's output the contiguous layout it has on CUDA (see cuda_is_cpu in test_dropin_models.py).
# It imports torch only; basicsr is first imported by Real-ESRGAN's train.py, as for a user.
CPU_STAND_IN = '''
import torch

if not torch.cuda.is_available():
    def _cuda_is_cpu(self, *args, **kwargs):
        from basicsr.utils import DiffJPEG
        if not getattr(DiffJPEG, '_contiguous_on_cpu', False):
            forward = DiffJPEG.forward
            DiffJPEG.forward = lambda self, x, quality: forward(self, x, quality).contiguous()
            DiffJPEG._contiguous_on_cpu = True
        return self

    torch.Tensor.cuda = _cuda_is_cpu
'''

# What a process has registered: per registry, each name whose object comes from aesop_basicsr,
# and whether it is the very object its (once-imported) module defines.
PROBE = '''
import json, sys

def probe(step):
    from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
    ours = {}
    for registry in (ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY):
        for name, obj in registry:
            module = getattr(obj, '__module__', '') or ''
            if module.split('.')[0] == 'aesop_basicsr':
                ours.setdefault(registry._name, []).append([name, getattr(sys.modules[module], name) is obj])
    ours = {key: sorted(entries) for key, entries in ours.items()}
    files = [getattr(m, '__file__', None) for n, m in list(sys.modules.items()) if n.split('.')[0] == 'aesop_basicsr']
    package = sys.modules.get('aesop_basicsr')
    print('PROBE ' + json.dumps({
        'step': step, 'registered': ours, 'modules_imported_once': len(files) == len(set(files)),
        'package_file': getattr(package, '__file__', None), 'realesrgan_models': 'RealESRGANModel' in MODEL_REGISTRY,
    }), flush=True)
'''

# A Dataset for a DataLoader worker started with 'spawn' (a fresh interpreter, as torchrun ranks are)
SPAWN_DATASET = '''
import torch.utils.data


class RegisteredInWorker(torch.utils.data.Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, index):
        import sys
        from basicsr.utils.registry import LOSS_REGISTRY  # the worker imports basicsr itself
        return {'AESOPLoss': 'AESOPLoss' in LOSS_REGISTRY,
                'aesop_basicsr_imported_by': 'hook' if 'aesop_basicsr' in sys.modules else 'nobody'}
'''

FRESH = '''
import json, sys
print(json.dumps({
    'modules': {name: name in sys.modules for name in ('torch', 'basicsr', 'aesop_basicsr', 'aesop_basicsr_autoload')},
    'hook_file': getattr(sys.modules.get('aesop_basicsr_autoload'), '__file__', None),
    'meta_path': [getattr(f, '__name__', type(f).__name__) for f in sys.meta_path],
}))
'''


def kwargs_of(opt: dict) -> dict:
    return {k: v for k, v in opt.items() if k != 'type'}


def plain_env(**extra: str) -> dict:
    """This environment without PYTHONPATH (and without our switch), one thread per process."""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', ENV_VAR)}
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', **extra)
    return env


def run(args: list, cwd: str, env: dict, python: str = sys.executable) -> subprocess.CompletedProcess:
    return subprocess.run([python, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def explain(proc: subprocess.CompletedProcess) -> str:
    return f'exit {proc.returncode}: {proc.args}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'


def esrgan_options(name: str, paired_x4: dict, ae_file: str) -> dict:
    """An ESRGAN option file (BasicSR's model, tiny networks) whose only AESOP part is pixel_opt."""
    return {
        'name': name, 'model_type': 'ESRGANModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'train': {
            'name': 'photos', 'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'},
            'dataroot_gt': paired_x4['train']['gt'], 'dataroot_lq': paired_x4['train']['lq'], 'filename_tmpl': '{}',
            'gt_size': 128, 'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
            'dataset_enlarge_ratio': 1, 'prefetch_mode': None}},
        'network_g': NET_G, 'network_d': VGG_D,
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0.999, 'optim_g': {'type': 'Adam', 'lr': 1e-4}, 'optim_d': {'type': 'Adam', 'lr': 1e-4},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
            'total_iter': ITERS, 'warmup_iter': -1,
            'pixel_opt': {'type': 'AESOPLoss', 'loss_weight': 1.0, 'criterion': 'l1', 'autoencoder': TINY_AE,
                          'pretrain_network_ae': ae_file, 'param_key_ae': 'params_ema'},
            'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'real_label_val': 1.0, 'fake_label_val': 0.0,
                        'loss_weight': 5e-3},
            'net_d_iters': 1, 'net_d_init_iters': 0},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': ITERS, 'use_tb_logger': False, 'wandb': None},
        'dist_params': {'backend': 'nccl', 'port': 29500},
    }


def real_esrgan_options(model_type: str, paired_x4: dict, meta_info: str, ae_file: str) -> dict:
    """Real-ESRGAN's RealESRNetModel / RealESRGANModel on its own dataset, pixel_opt swapped for AESOPLoss."""
    opt = {
        'name': model_type, 'model_type': model_type, 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        **REAL_DEGRADATION,
        'datasets': {'train': {
            'name': 'photos', 'type': 'RealESRGANDataset', 'io_backend': {'type': 'disk'},
            'dataroot_gt': paired_x4['train']['gt'], 'meta_info': meta_info, 'use_hflip': True, 'use_rot': False,
            **REAL_KERNELS, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 1, 'dataset_enlarge_ratio': 1,
            'prefetch_mode': None}},
        'network_g': NET_G,
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0.999, 'optim_g': {'type': 'Adam', 'lr': 1e-4},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
            'total_iter': ITERS, 'warmup_iter': -1,
            'pixel_opt': {'type': 'AESOPLoss', 'loss_weight': 1.0, 'criterion': 'l1', 'autoencoder': TINY_AE,
                          'pretrain_network_ae': ae_file, 'param_key_ae': 'params_ema'}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': ITERS, 'use_tb_logger': False, 'wandb': None},
        'dist_params': {'backend': 'nccl', 'port': 29500},
    }
    if model_type == 'RealESRNetModel':
        opt['gt_usm'] = True
    else:
        opt.update(l1_gt_usm=True, percep_gt_usm=True, gan_gt_usm=False, network_d=UNET_D)
        opt['train'].update(optim_d={'type': 'Adam', 'lr': 1e-4}, net_d_iters=1, net_d_init_iters=0,
                            gan_opt={'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 0.1})
    return opt


def write_yaml(path: str, opt: dict) -> str:
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def write(path: str, text: str) -> str:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)
    return path


def package_dir(name: str) -> str:
    """Where an installed package lives, without importing it."""
    return find_spec(name).submodule_search_locations[0]


def scenario(*steps: str) -> str:
    """A ``python -c`` program: each step is a statement, followed by probe(step)."""
    return PROBE + ''.join(f'{step}\nprobe({step!r})\n' for step in steps)


def probes(proc: subprocess.CompletedProcess) -> list:
    return [json.loads(line[len('PROBE '):]) for line in proc.stdout.splitlines() if line.startswith('PROBE ')]


def wheel_install(work: str, wheel: str) -> dict:
    """Install the plugin's wheel into a throw-away venv layered on this environment, run fresh interpreters there."""
    python, site = layered_venv(osp.join(work, 'venv'))
    installed = pip(python, 'install', '-q', '--no-deps', wheel, cwd=work)
    if installed.returncode:
        return {'error': explain(installed)}
    env = plain_env()
    result = {
        'wheel_files': zipfile.ZipFile(wheel).namelist(), 'site': site,
        'fresh': run(['-c', FRESH], cwd=work, env=env, python=python),
        # aesop_basicsr imported by user code before (and without) basicsr, then basicsr and realesrgan
        'registry': run(['-c', scenario('import aesop_basicsr', 'import basicsr; import realesrgan')], cwd=work,
                        env=env, python=python),
    }
    # a broken hook module must not make the .pth line print at every interpreter start
    write(osp.join(site, 'aesop_basicsr_autoload.py'), 'raise RuntimeError("broken on purpose")\n')
    result['broken'] = run(['-c', 'print("started")'], cwd=work, env=env, python=python)
    return result


@pytest.fixture(scope='module')
def ae_file(tmp_path_factory) -> str:
    torch.manual_seed(0)
    ae = AESOPAutoEncoder(**kwargs_of(TINY_AE))
    default_init_weights(ae, 1)  # at full scale psi responds to its input, as a trained AE does
    path = str(tmp_path_factory.mktemp('ae') / 'tiny_ae.pth')
    torch.save({'params_ema': ae.state_dict()}, path)
    return path


@pytest.fixture(scope='module')
def runs(tmp_path_factory, paired_x4, ae_file, plugin_wheel) -> dict:
    """Start every process once (two at a time) and collect what they left."""
    work = str(tmp_path_factory.mktemp('dropin'))
    esrgan_yml = write_yaml(osp.join(work, 'esrgan.yml'), esrgan_options('esrgan_aesop', paired_x4, ae_file))
    meta_info = write(osp.join(work, 'meta_info.txt'),
                      ''.join(f'{n}\n' for n in sorted(os.listdir(paired_x4['train']['gt']))))
    real_yml = {m: write_yaml(osp.join(work, f'{m}.yml'), real_esrgan_options(m, paired_x4, meta_info, ae_file))
                for m in ('RealESRNetModel', 'RealESRGANModel')}

    # a BasicSR clone: `python -m basicsr.train` from its root (BasicSR here is the installed one)
    basicsr_clone, switched_off = osp.join(work, 'basicsr_clone'), osp.join(work, 'basicsr_clone_off')
    for folder in (basicsr_clone, switched_off):
        os.makedirs(folder)
        os.symlink(package_dir('basicsr'), osp.join(folder, 'basicsr'))
    # a project of one's own: a few lines that call BasicSR's train_pipeline
    project = osp.join(work, 'project')
    write(osp.join(project, 'train.py'), 'import os.path as osp\n\nfrom basicsr.train import train_pipeline\n\n'
          "if __name__ == '__main__':\n    train_pipeline(osp.dirname(osp.abspath(__file__)))\n")
    # a Real-ESRGAN clone: the installed realesrgan/train.py, byte for byte
    realesrgan_clone = osp.join(work, 'realesrgan_clone')
    os.makedirs(osp.join(realesrgan_clone, 'realesrgan'))
    shutil.copy(osp.join(package_dir('realesrgan'), 'train.py'), osp.join(realesrgan_clone, 'realesrgan'))
    cpu_stand_in = osp.dirname(write(osp.join(work, 'cpu_stand_in', 'sitecustomize.py'), CPU_STAND_IN))
    probe_dir = osp.dirname(write(osp.join(work, 'probe', 'registered_in_worker.py'), SPAWN_DATASET))
    spawn_worker = ('from torch.utils.data import DataLoader; from registered_in_worker import RegisteredInWorker; '
                    "worker = next(iter(DataLoader(RegisteredInWorker(), batch_size=None, num_workers=1, "
                    "multiprocessing_context='spawn'))); print('WORKER ' + json.dumps(worker))")

    jobs = {
        'basicsr_module': lambda: run(['-m', 'basicsr.train', '-opt', esrgan_yml], basicsr_clone, plain_env()),
        'project_train_py': lambda: run(['train.py', '-opt', esrgan_yml], project, plain_env()),
        'RealESRNetModel': lambda: run(['realesrgan/train.py', '-opt', real_yml['RealESRNetModel']],
                                       realesrgan_clone, plain_env(PYTHONPATH=cpu_stand_in)),
        'RealESRGANModel': lambda: run(['realesrgan/train.py', '-opt', real_yml['RealESRGANModel']],
                                       realesrgan_clone, plain_env(PYTHONPATH=cpu_stand_in)),
        'switched_off': lambda: run(['-m', 'basicsr.train', '-opt', esrgan_yml], switched_off,
                                    plain_env(**{ENV_VAR: '0'})),
        'after_basicsr': lambda: run(['-c', scenario('import basicsr', 'import aesop_basicsr; import aesop_basicsr',
                                                     'import realesrgan', spawn_worker)], probe_dir, plain_env()),
        'wheel': lambda: wheel_install(osp.join(work, 'wheel'), plugin_wheel),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        results = {name: future.result() for name, future in futures.items()}
    results['roots'] = {'basicsr_module': basicsr_clone, 'project_train_py': project,
                        'RealESRNetModel': realesrgan_clone, 'RealESRGANModel': realesrgan_clone}
    results['names'] = {'basicsr_module': 'esrgan_aesop', 'project_train_py': 'esrgan_aesop',
                        'RealESRNetModel': 'RealESRNetModel', 'RealESRGANModel': 'RealESRGANModel'}
    results['switched_off_root'] = switched_off
    return results


def expected_registrations() -> dict:
    """What ``import aesop_basicsr`` registered in this (pytest) process, in PROBE's form."""
    ours = {}
    for registry in (ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY):
        for name, obj in registry:
            if (getattr(obj, '__module__', '') or '').split('.')[0] == 'aesop_basicsr':
                ours.setdefault(registry._name, []).append([name, True])
    ours = {key: sorted(entries) for key, entries in ours.items()}
    assert ['AESOPLoss', True] in ours['loss'] and ['AESOPAutoEncoder', True] in ours['arch']
    return ours


@pytest.mark.parametrize('entry', ['basicsr_module', 'project_train_py', 'RealESRNetModel', 'RealESRGANModel'])
def test_unmodified_train_py_trains_with_aesop_loss_and_saves(runs, entry):
    proc = runs[entry]
    assert proc.returncode == 0, explain(proc)
    assert 'could not register AESOP' not in proc.stderr
    name = runs['names'][entry]
    exp = osp.join(runs['roots'][entry], 'experiments', name)
    (log_file, ) = glob.glob(osp.join(exp, f'train_{name}_*.log'))
    with open(log_file) as f:
        log = f.read()
    assert 'Loss [AESOPLoss] is created.' in log
    gan = entry != 'RealESRNetModel'
    pixel = [float(v) for v in re.findall(r'l_g_pix: (\S+)' if gan else r'l_pix: (\S+)', log)]
    assert len(pixel) == ITERS and all(math.isfinite(v) and v > 0 for v in pixel), pixel

    models = osp.join(exp, 'models')
    expected = {f'net_g_{ITERS}.pth', 'net_g_latest.pth'} | ({f'net_d_{ITERS}.pth', 'net_d_latest.pth'} if gan else set())
    assert set(os.listdir(models)) == expected
    # the saved generator is exactly net_g (RRDBNet), nothing of the loss's auto-encoder
    g_keys = set(RRDBNet(**kwargs_of(NET_G)).state_dict())
    saved = torch.load(osp.join(models, 'net_g_latest.pth'), map_location='cpu', weights_only=True)
    assert set(saved) == {'params', 'params_ema'} and all(set(p) == g_keys for p in saved.values())
    if gan:
        d_class = UNetDiscriminatorSN if entry == 'RealESRGANModel' else VGGStyleDiscriminator
        d_opt = UNET_D if entry == 'RealESRGANModel' else VGG_D
        net_d = torch.load(osp.join(models, 'net_d_latest.pth'), map_location='cpu', weights_only=True)['params']
        assert set(net_d) == set(d_class(**kwargs_of(d_opt)).state_dict())


def test_basicsr_module_run_wrote_nothing_into_site_packages(runs):
    # the link made the clone folder BasicSR's root; the installed package's parent stayed clean
    assert osp.isdir(osp.join(runs['roots']['basicsr_module'], 'experiments', 'esrgan_aesop'))
    assert not osp.exists(osp.join(osp.dirname(package_dir('basicsr')), 'experiments', 'esrgan_aesop'))


def test_switching_autoload_off_gives_basicsrs_registry_error(runs):
    proc = runs['switched_off']
    assert proc.returncode != 0
    assert REGISTRY_ERROR in proc.stderr, explain(proc)
    assert 'functional_tensor' not in proc.stderr  # BasicSR itself imported: the torchvision alias stays


def test_fresh_interpreter_imports_neither_torch_nor_our_package(tmp_path):
    proc = run(['-c', FRESH], str(tmp_path), plain_env())
    assert proc.returncode == 0 and proc.stderr == '', explain(proc)
    fresh = json.loads(proc.stdout)
    assert fresh['modules'] == {'torch': False, 'basicsr': False, 'aesop_basicsr': False,
                                'aesop_basicsr_autoload': True}
    # the BasicSR hook goes first, the torchvision alias last (only when nothing else finds the old name)
    assert fresh['meta_path'].index('RegisterAfterBasicSR') < fresh['meta_path'].index('PathFinder')
    assert fresh['meta_path'][-1] == 'TorchvisionAlias'
    switched_off = json.loads(run(['-c', FRESH], str(tmp_path), plain_env(**{ENV_VAR: '0'})).stdout)
    assert 'RegisterAfterBasicSR' not in switched_off['meta_path'] and 'TorchvisionAlias' in switched_off['meta_path']


def test_hook_then_explicit_imports_and_realesrgan_register_each_name_once(runs):
    # the aesop-first order runs in the wheel's environment (test_wheel_installs_the_hook_...)
    proc = runs['after_basicsr']
    assert proc.returncode == 0, explain(proc)
    assert 'could not register AESOP' not in proc.stderr
    found = probes(proc)
    steps = ['import basicsr', 'import aesop_basicsr; import aesop_basicsr', 'import realesrgan']
    assert [p['step'] for p in found][:len(steps)] == steps
    for p in found:
        assert p['registered'] == expected_registrations(), p
        assert p['modules_imported_once'], p
        assert osp.realpath(p['package_file']) == osp.realpath(aesop_basicsr.__file__)
    assert found[-1]['realesrgan_models']


def test_spawned_dataloader_worker_has_aesop_registered(runs):
    (line, ) = [line for line in runs['after_basicsr'].stdout.splitlines() if line.startswith('WORKER ')]
    worker = json.loads(line[len('WORKER '):])
    assert worker['AESOPLoss'] and worker['aesop_basicsr_imported_by'] == 'hook'


def test_editable_install_put_the_pth_file_into_site_packages():
    site = sysconfig.get_paths()['purelib']
    with open(osp.join(site, 'aesop_basicsr_autoload.pth')) as f:
        lines = f.read().splitlines()
    assert len(lines) == 1 and lines[0].startswith('import ') and 'aesop_basicsr_autoload.install()' in lines[0]
    # listed in the installation's RECORD, so that pip uninstall removes it
    (record, ) = glob.glob(osp.join(site, 'aesop_basicsr-*.dist-info', 'RECORD'))
    with open(record) as f:
        assert any(line.startswith('aesop_basicsr_autoload.pth,') for line in f)


def test_wheel_installs_the_hook_and_registers_from_the_wheel(runs):
    wheel = runs['wheel']
    assert 'error' not in wheel, wheel.get('error')
    assert {'aesop_basicsr_autoload.pth', 'aesop_basicsr_autoload.py'} <= set(wheel['wheel_files'])
    fresh = json.loads(wheel['fresh'].stdout)
    assert fresh['modules'] == {'torch': False, 'basicsr': False, 'aesop_basicsr': False,
                                'aesop_basicsr_autoload': True}
    assert osp.dirname(fresh['hook_file']) == wheel['site']

    proc = wheel['registry']
    assert proc.returncode == 0, explain(proc)
    assert 'could not register AESOP' not in proc.stderr
    aesop_first, then_basicsr = probes(proc)
    for p in (aesop_first, then_basicsr):
        assert p['registered'] == expected_registrations() and p['modules_imported_once'], p
        assert osp.dirname(osp.dirname(p['package_file'])) == wheel['site']  # the wheel's package, not the checkout
    assert then_basicsr['realesrgan_models']


def test_broken_hook_module_never_breaks_interpreter_start(runs):
    broken = runs['wheel']['broken']
    assert broken.returncode == 0 and broken.stdout == 'started\n' and broken.stderr == '', explain(broken)


def test_hooks_leave_the_modules_as_a_plain_import_would():
    import basicsr
    import torchvision.transforms
    import torchvision.transforms._functional_tensor as renamed
    import torchvision.transforms.functional_tensor as legacy
    if osp.isfile(osp.join(osp.dirname(torchvision.transforms.__file__), 'functional_tensor.py')):
        # torchvision < 0.17 still ships the legacy module: it imports as it is, the alias stays out of the way
        assert legacy is not renamed and legacy.__spec__.name == 'torchvision.transforms.functional_tensor'
    else:
        assert legacy is renamed
    assert renamed.__spec__.name == 'torchvision.transforms._functional_tensor'
    # BasicSR's module and spec name its own loader: the hook's wrapper is gone
    assert basicsr.__loader__ is basicsr.__spec__.loader and type(basicsr.__loader__).__name__ == 'SourceFileLoader'
