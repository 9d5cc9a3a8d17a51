"""Shared fixtures: stand-in pretrained weights in a private TORCH_HOME, and small real-image datasets."""
import os
import subprocess
import sys
from os import path as osp

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def pytest_configure(config):
    # Every test (and every subprocess it starts) sees a private torch hub cache, so that
    # nothing is downloaded and a user's real cache is never touched.
    if 'AESOP_TEST_TORCH_HOME' not in os.environ:
        import tempfile
        os.environ['AESOP_TEST_TORCH_HOME'] = tempfile.mkdtemp(prefix='aesop-torch-home-')
    os.environ['TORCH_HOME'] = os.environ['AESOP_TEST_TORCH_HOME']


import aesop_basicsr  # noqa: E402,F401  (after TORCH_HOME is known; registers everything)


@pytest.fixture(scope='session')
def stand_in_vgg19() -> str:
    """A randomly initialised VGG19 stored where torch.hub looks for the real one.

    torch.hub loads a file already in ``$TORCH_HOME/hub/checkpoints`` without a hash check,
    so BasicSR's PerceptualLoss builds offline. Saved in fp16 to halve its size.
    """
    import torch
    from torchvision.models import vgg19
    path = osp.join(os.environ['TORCH_HOME'], 'hub', 'checkpoints', 'vgg19-dcbb9e9d.pth')
    if not osp.isfile(path):
        os.makedirs(osp.dirname(path), exist_ok=True)
        torch.manual_seed(0)
        state = {k: v.half() for k, v in vgg19().state_dict().items()}
        torch.save(state, path)
    return path


@pytest.fixture(scope='session')
def paired_x4(tmp_path_factory) -> dict:
    """Real photos (skimage) as 128x128 HR / 32x32 MATLAB-bicubic LR PNG pairs: 4 train, 2 val."""
    from aesop_basicsr.utils.sample_data import PHOTO_NAMES, write_paired_dataset
    root = tmp_path_factory.mktemp('paired_x4')
    train = write_paired_dataset(str(root / 'train'), scale=4, hr_size=128, names=PHOTO_NAMES[:4])
    val = write_paired_dataset(str(root / 'val'), scale=4, hr_size=128, names=PHOTO_NAMES[4:6])
    return {'train': train, 'val': val}


def run_module(module: str, *args: str, cwd: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` in ``cwd`` with this checkout first on the path; fail with its output."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, '-m', module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f'python -m {module} {" ".join(args)} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}')
    return proc
