"""spandrel architectures as AESOP generators, end to end, in real processes.

A tiny DRCT and a tiny HAT (gradient checkpointing on, with the authors' DRCT/HAT option keys) each
train 2 iterations as ESRGANLDLModel generators with AESOPLoss through BasicSR's own
``python -m basicsr.train``, resume for a third with ``aesop-train --auto_resume`` (BasicSR 1.4.2's
resume asks CUDA for a device), and run a test file through ``python -m basicsr.test`` with SRModel
on LR images whose sides are not multiples of the window. A stand-in project registers its own
``DRCT`` after ``import basicsr`` (the installed hook has run), as DRCT's and HAT's train.py do, and
trains the tiny HAT.
As in test_dropin_autoload.py, BasicSR's scripts run from a folder holding a ``basicsr`` link to the
installed package (a clone), so ``experiments/`` and ``results/`` go there; only the installed
``aesop_basicsr_autoload.pth`` hooks our package in (no PYTHONPATH).
"""
import glob
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from copy import deepcopy
from importlib.util import find_spec
from os import path as osp

import cv2
import pytest
from basicsr.archs import build_network

from aesop_basicsr.utils.sample_data import PHOTO_NAMES, write_paired_dataset
from tiny_training import esrgan_aesop_options, read_logs, write_autoencoder, write_yaml

TINY_GENERATORS = {
    # the keys of the AESOP authors' DRCT file (compress_ratio ... are DRCT's unused ones), tiny sizes
    'DRCT': dict(type='DRCT', upscale=4, in_chans=3, img_size=32, window_size=8, compress_ratio=3, squeeze_factor=30,
                 conv_scale=0.01, overlap_ratio=0.5, img_range=1., depths=[1], embed_dim=12, num_heads=[2],
                 mlp_ratio=1, upsampler='pixelshuffle', resi_connection='1conv', use_checkpoint=True, gc=4),
    # HAT's own option keys (HAT_SRx4.yml), tiny sizes
    'HAT': dict(type='HAT', upscale=4, in_chans=3, img_size=32, window_size=8, compress_ratio=3, squeeze_factor=4,
                conv_scale=0.01, overlap_ratio=0.5, img_range=1., depths=[1], embed_dim=12, num_heads=[2],
                mlp_ratio=1, upsampler='pixelshuffle', resi_connection='1conv', use_checkpoint=True, num_feat=8),
}
UNUSED_LINE = {'DRCT': 'DRCT: option(s) compress_ratio, conv_scale, overlap_ratio, squeeze_factor not used'}
TEST_HR = 116  # LR 29 x 29: not a multiple of the window (8)

# A project's train.py, as DRCT's and HAT's repositories have it: importing its archs registers its own DRCT
# (after `import basicsr`, so after the installed hook), then BasicSR's train_pipeline runs. It trains HAT (ours).
STAND_IN_PROJECT = '''
import json
import os.path as osp

from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY  # the installed hook has run
from torch import nn

before = {name: ARCH_REGISTRY.get(name).__module__ for name in ('DRCT', 'HAT')}


@ARCH_REGISTRY.register()
class DRCT(nn.Module):  # the project's own
    def __init__(self, upscale=4, **kwargs):
        super().__init__()
        self.upscale = upscale


import aesop_basicsr  # noqa: E402  (importing it again changes nothing)
from basicsr.archs import build_network  # noqa: E402
from basicsr.train import train_pipeline  # noqa: E402

if __name__ == '__main__':
    train_pipeline(osp.dirname(osp.abspath(__file__)))
    net = build_network({'type': 'DRCT', 'upscale': 2, 'window_size': 16})  # after: it logs (BasicSR's logger)
    print('PROJECT ' + json.dumps({'before': before, 'DRCT': type(net).__module__, 'upscale': net.upscale,
                                   'HAT': ARCH_REGISTRY.get('HAT').__module__,
                                   'hook_ran': 'AESOPLoss' in LOSS_REGISTRY}))
'''


def plain_env() -> dict:
    """This environment without PYTHONPATH: our package comes in through the installed hook only."""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'AESOP_BASICSR_AUTOLOAD')}
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    return env


def run(args: list, cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=plain_env(), capture_output=True, text=True,
                          timeout=900)


def must(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f'exit {proc.returncode}: {proc.args}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'
    return proc


def train_options(arch: str, paired: dict, ae_path: str) -> dict:
    """The AESOP recipe's model (ESRGAN + LDL + AESOPLoss), tiny networks, 2 iterations, states saved at 2."""
    opt = esrgan_aesop_options(f'aesop_{arch}', paired, ae_path, total_iter=2, save_every=2)
    opt['model_type'] = 'ESRGANLDLModel'
    opt['network_g'] = deepcopy(TINY_GENERATORS[arch])
    opt['train']['ema_decay'] = 0.999
    opt['train']['ldl_opt'] = {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}
    del opt['datasets']['val'], opt['val']
    return opt


def sr_test_options(arch: str, test_pairs: dict, weights: str) -> dict:
    return {
        'name': f'test_{arch}', 'model_type': 'SRModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'test_1': {'name': 'odd_size', 'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'},
                                'dataroot_gt': test_pairs['gt'], 'dataroot_lq': test_pairs['lq']}},
        'network_g': deepcopy(TINY_GENERATORS[arch]),
        'path': {'pretrain_network_g': weights, 'param_key_g': 'params_ema', 'strict_load_g': True},
        'val': {'save_img': True, 'suffix': None,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}}},
    }


def chain(arch: str, root: str, train_script: list, clone: str, paired: dict, test_pairs: dict, ae_path: str) -> dict:
    """train (a BasicSR train script in ``root``) -> resume (aesop-train in ``root``) -> test (BasicSR's script)."""
    train_yml = write_yaml(osp.join(root, f'train_{arch}.yml'), train_options(arch, paired, ae_path))
    result = {'train': run([*train_script, '-opt', train_yml], root)}
    if result['train'].returncode:
        return result
    result['resume'] = run(['-m', 'aesop_basicsr.train', '-opt', train_yml, '--auto_resume',
                            '--force_yml', 'train:total_iter=3'], root)
    # written at the end of the resumed run
    weights = osp.join(root, 'experiments', f'aesop_{arch}', 'models', 'net_g_latest.pth')
    test_yml = write_yaml(osp.join(clone, f'test_{arch}.yml'), sr_test_options(arch, test_pairs, weights))
    result['test'] = run(['-m', 'basicsr.test', '-opt', test_yml], clone)
    return result


@pytest.fixture(scope='module')
def runs(tmp_path_factory, paired_x4) -> dict:
    work = str(tmp_path_factory.mktemp('spandrel_e2e'))
    clone = osp.join(work, 'basicsr_clone')
    os.makedirs(clone)
    os.symlink(find_spec('basicsr').submodule_search_locations[0], osp.join(clone, 'basicsr'))
    ae_path = write_autoencoder(osp.join(work, 'tiny_ae.pth'))
    test_pairs = write_paired_dataset(osp.join(work, 'odd'), hr_size=TEST_HR, names=PHOTO_NAMES[4:6])
    project = osp.join(work, 'project')
    os.makedirs(project)
    with open(osp.join(project, 'train.py'), 'w') as f:
        f.write(STAND_IN_PROJECT)
    roots = {'DRCT': clone, 'HAT': project}
    scripts = {'DRCT': ['-m', 'basicsr.train'], 'HAT': ['train.py']}
    jobs = {arch: (lambda arch=arch: chain(arch, roots[arch], scripts[arch], clone, paired_x4, test_pairs, ae_path))
            for arch in TINY_GENERATORS}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        results = {name: future.result() for name, future in futures.items()}
    return {'results': results, 'clone': clone, 'roots': roots, 'test_pairs': test_pairs}


def experiment(runs: dict, arch: str) -> str:
    return osp.join(runs['roots'][arch], 'experiments', f'aesop_{arch}')


@pytest.mark.parametrize('arch', sorted(TINY_GENERATORS))
def test_trains_with_aesop_and_ldl_through_basicsr_train(runs, arch):
    """Both iterations ran the AESOP pixel term, LDL and the GAN term with gradient checkpointing; the checkpoint
    and training state of iteration 2 were written; DRCT named the keys it ignores once."""
    must(runs['results'][arch]['train'])
    folder = experiment(runs, arch)
    log = read_logs(folder).split('Resuming from training state')[0]  # the first run's log only
    for term in ('l_g_pix', 'l_g_ldl', 'l_g_gan', 'l_d_real'):
        assert term in log, term
    assert 'iter:       2,' in log
    assert osp.isfile(osp.join(folder, 'models', 'net_g_2.pth'))
    assert osp.isfile(osp.join(folder, 'training_states', '2.state'))
    if arch in UNUSED_LINE:
        assert log.count(UNUSED_LINE[arch]) == 1, log[-3000:]


@pytest.mark.parametrize('arch', sorted(TINY_GENERATORS))
def test_resumes_and_its_checkpoint_is_in_the_official_layout(runs, arch):
    """aesop-train --auto_resume continues from iteration 2 to 3; the saved generator is the official layout of its
    architecture (spandrel's auto-detection, through SpandrelNet, recognises it)."""
    must(runs['results'][arch]['resume'])
    folder = experiment(runs, arch)
    log = read_logs(folder)
    assert 'Resuming training from epoch: 0, iter: 2.' in log
    assert 'iter:       3,' in log
    weights = osp.join(folder, 'models', 'net_g_latest.pth')  # written at the end of the resumed run
    net = build_network({'type': 'SpandrelNet', 'model_path': weights, 'param_key': 'params_ema'})
    assert net.architecture == arch and net.scale == 4


@pytest.mark.parametrize('arch', sorted(TINY_GENERATORS))
def test_basicsr_test_runs_srmodel_on_sizes_off_the_window(runs, arch):
    """python -m basicsr.test with SRModel: 29 x 29 LR images (window 8) come back as 116 x 116 SR images, and
    PSNR is reported."""
    must(runs['results'][arch]['test'])
    outputs = sorted(glob.glob(osp.join(runs['clone'], 'results', f'test_{arch}', 'visualization', 'odd_size',
                                        '*.png')))
    assert len(outputs) == len(os.listdir(runs['test_pairs']['lq'])) == 2
    for path in outputs:
        assert cv2.imread(path).shape == (TEST_HR, TEST_HR, 3)
    log = ''.join(open(p).read() for p in glob.glob(osp.join(runs['clone'], 'results', f'test_{arch}', '*.log')))
    assert '# psnr:' in log


def test_a_project_registering_drct_after_the_hook_keeps_its_own(runs):
    """The installed hook ran on `import basicsr` (AESOP and the DRCT/HAT fallbacks are there); the project's
    `@ARCH_REGISTRY.register() class DRCT` then succeeds, and its DRCT is what option files build; HAT, which it
    does not register, is still ours (and trained in that process)."""
    proc = must(runs['results']['HAT']['train'])
    line = next(line for line in proc.stdout.splitlines() if line.startswith('PROJECT '))
    seen = json.loads(line[len('PROJECT '):])
    assert seen['hook_ran']
    assert seen['before'] == {'DRCT': 'aesop_basicsr.archs.spandrel_arch', 'HAT': 'aesop_basicsr.archs.spandrel_arch'}
    assert seen['DRCT'] == '__main__' and seen['upscale'] == 2
    assert seen['HAT'] == 'aesop_basicsr.archs.spandrel_arch'
