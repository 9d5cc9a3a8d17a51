"""Shared fixtures: stand-in pretrained weights in a private TORCH_HOME, and small real-image datasets."""
import logging
import os
import subprocess
import sys
from os import path as osp

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# One intra-op thread in this process and in every process a test starts, unless the caller chose a number:
# the tests' networks are tiny (or full-size on tiny inputs), where one thread is as fast, and processes that a
# test runs side by side on a 2-core machine would otherwise spin against each other in OpenMP's barriers
# (measured: the float64 mode tests took 90 s with two threads on a busy machine, 1 s with one). Set before
# torch is first imported (below, through aesop_basicsr).
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')


def pytest_configure(config):
    # Every test (and every subprocess it starts) sees a private torch hub cache, so that
    # nothing is downloaded and a user's real cache is never touched.
    if 'AESOP_TEST_TORCH_HOME' not in os.environ:
        import tempfile
        os.environ['AESOP_TEST_TORCH_HOME'] = tempfile.mkdtemp(prefix='aesop-torch-home-')
        config.aesop_owned_torch_home = os.environ['AESOP_TEST_TORCH_HOME']
    os.environ['TORCH_HOME'] = os.environ['AESOP_TEST_TORCH_HOME']


def pytest_unconfigure(config):
    # The stand-in weights are up to 650 MB per run: remove the folder this run made (not one it was given).
    owned = getattr(config, 'aesop_owned_torch_home', None)
    if owned:
        import shutil
        shutil.rmtree(owned, ignore_errors=True)
        os.environ.pop('AESOP_TEST_TORCH_HOME', None)


import aesop_basicsr  # noqa: E402,F401  (after TORCH_HOME is known; registers everything)


def _stand_in_torchvision_weights(build, filename: str) -> str:
    """A randomly initialised torchvision classifier stored where torch.hub looks for the real one.

    torch.hub loads a file already in ``$TORCH_HOME/hub/checkpoints`` without a hash check,
    so networks built on torchvision's ImageNet weights build offline. Saved in fp16 to halve its size.
    """
    import torch
    path = osp.join(os.environ['TORCH_HOME'], 'hub', 'checkpoints', filename)
    if not osp.isfile(path):
        os.makedirs(osp.dirname(path), exist_ok=True)
        torch.manual_seed(0)
        state = {k: v.half() for k, v in build().state_dict().items()}
        temp = f'{path}.{os.getpid()}.tmp'  # test processes running side by side never read a partial file
        torch.save(state, temp)
        os.replace(temp, path)
    return path


@pytest.fixture(scope='session')
def stand_in_vgg19() -> str:
    """Stand-in VGG19 weights, so BasicSR's PerceptualLoss builds offline."""
    from torchvision.models import vgg19
    return _stand_in_torchvision_weights(vgg19, 'vgg19-dcbb9e9d.pth')


@pytest.fixture(scope='session')
def stand_in_alexnet() -> str:
    """Stand-in AlexNet weights: the trunk of LPIPS (calculate_lpips)."""
    from torchvision.models import alexnet
    return _stand_in_torchvision_weights(alexnet, 'alexnet-owt-7be5be79.pth')


@pytest.fixture(scope='session')
def stand_in_vgg16() -> str:
    """Stand-in VGG16 weights: the trunk of DISTS (calculate_dists)."""
    from torchvision.models import vgg16
    return _stand_in_torchvision_weights(vgg16, 'vgg16-397923af.pth')


@pytest.fixture(scope='session')
def paired_x4(tmp_path_factory) -> dict:
    """Real photos (skimage) as 128x128 HR / 32x32 MATLAB-bicubic LR PNG pairs: 4 train, 2 val."""
    from aesop_basicsr.utils.sample_data import PHOTO_NAMES, write_paired_dataset
    root = tmp_path_factory.mktemp('paired_x4')
    train = write_paired_dataset(str(root / 'train'), scale=4, hr_size=128, names=PHOTO_NAMES[:4])
    val = write_paired_dataset(str(root / 'val'), scale=4, hr_size=128, names=PHOTO_NAMES[4:6])
    return {'train': train, 'val': val}


class LogRecords(logging.Handler):
    """Keeps the messages of the records it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def log_lines():
    """The messages BasicSR's root logger (``get_root_logger()``, where the package logs) gets during the test."""
    from basicsr.utils import get_root_logger
    handler = LogRecords()
    logger = get_root_logger()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def run_module(module: str, *args: str, cwd: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` in ``cwd`` with this checkout first on the path; fail with its output."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, '-m', module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f'python -m {module} {" ".join(args)} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}')
    return proc


@pytest.fixture(scope='session')
def plugin_wheel(tmp_path_factory) -> str:
    """The plugin's wheel, built once per session from a copy of this checkout (offline)."""
    from layered_venv import build_plugin_wheel
    return build_plugin_wheel(str(tmp_path_factory.mktemp('plugin_wheel')))
