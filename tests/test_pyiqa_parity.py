"""Our LPIPS and DISTS (the reference ``lpips`` and ``DISTS_pytorch`` packages) against pyiqa's, which the
authors used: the same weights and images give the same values to 1e-4.

pyiqa is not a dependency, nor installed for the tests (it requires transformers >= 5, accelerate,
bitsandbytes, timm, CLIP ..., and its package ``__init__`` imports all of them): the README's setup command
downloads its wheel into ``.venv/test-wheels/`` (``pip download --no-deps -d .venv/test-wheels pyiqa==0.1.16``),
outside site-packages, and this test reads pyiqa's files from that wheel; it is skipped where the wheel is not
there. Only pyiqa's own LPIPS/DISTS network code and its weight loading run: its package ``__init__`` files are
bypassed and ``huggingface_hub.hf_hub_url`` (only used to spell the download URL) is replaced. Stand-in weights are written where each library looks:
torchvision's ImageNet trunks in ``$TORCH_HOME/hub/checkpoints`` (conftest), pyiqa's calibrated files in
``$TORCH_HOME/hub/pyiqa``, ``lpips``' linear layers and ``DISTS_pytorch``' alpha/beta inside their packages.
"""
import glob
import importlib.util
import os
import sys
import types
import zipfile
from os import path as osp

import numpy as np
import pytest
import torch

from aesop_basicsr.metrics.dists_metric import calculate_dists, dists_network
from aesop_basicsr.metrics.lpips_metric import calculate_lpips, lpips_network
from aesop_basicsr.metrics.perceptual_util import clear_network_cache, image_to_tensor
from aesop_basicsr.utils.sample_data import load_photo

PYIQA_VERSION = '0.1.16'
TEST_WHEELS = osp.join(sys.prefix, 'test-wheels')  # .venv/test-wheels for the README's venv
PYIQA_WHEELS = glob.glob(osp.join(TEST_WHEELS, f'pyiqa-{PYIQA_VERSION}-*.whl'))
pytestmark = pytest.mark.skipif(
    not PYIQA_WHEELS, reason=f"pyiqa's wheel is not in {TEST_WHEELS} (the README's setup command puts it there: "
                             f'pip download --no-deps -d {TEST_WHEELS} pyiqa=={PYIQA_VERSION})')


def _load_file(name: str, path: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def pyiqa_archs(tmp_path_factory):
    """pyiqa's lpips_arch and dists_arch modules, loaded from its wheel's files without its package __init__."""
    unpacked = tmp_path_factory.mktemp('pyiqa_wheel')
    with zipfile.ZipFile(PYIQA_WHEELS[0]) as wheel:
        wheel.extractall(unpacked, [name for name in wheel.namelist() if name.startswith('pyiqa/')])
    root = str(unpacked / 'pyiqa')
    saved = {k: v for k, v in sys.modules.items() if k == 'pyiqa' or k.startswith('pyiqa.') or k == 'huggingface_hub'}
    for name, folder in (('pyiqa', root), ('pyiqa.utils', osp.join(root, 'utils')),
                         ('pyiqa.archs', osp.join(root, 'archs'))):
        package = types.ModuleType(name)
        package.__path__ = [folder]
        sys.modules[name] = package
    if importlib.util.find_spec('huggingface_hub') is None:
        hub = types.ModuleType('huggingface_hub')
        hub.hf_hub_url = lambda repo_id, filename, **kwargs: f'https://huggingface.co/{repo_id}/resolve/main/{filename}'
        sys.modules['huggingface_hub'] = hub
    try:
        for name in ('registry', 'dist_util', 'misc', 'download_util'):
            _load_file(f'pyiqa.utils.{name}', osp.join(root, 'utils', f'{name}.py'))
        sys.modules['pyiqa.utils'].get_root_logger = lambda *a, **k: None
        for name in ('constants', 'arch_util', 'lpips_arch', 'dists_arch'):
            _load_file(f'pyiqa.archs.{name}', osp.join(root, 'archs', f'{name}.py'))
        yield sys.modules['pyiqa.archs.lpips_arch'], sys.modules['pyiqa.archs.dists_arch']
    finally:
        for name in [k for k in sys.modules if k == 'pyiqa' or k.startswith('pyiqa.') or k == 'huggingface_hub']:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.fixture(scope='module')
def photo_pairs():
    """Real photos and degraded versions of them (blur + noise), uint8 BGR as BasicSR passes them."""
    import cv2
    rng = np.random.default_rng(0)
    pairs = []
    for name in ('astronaut', 'coffee', 'chelsea'):
        hr = load_photo(name)[:96, :128]
        sr = np.clip(cv2.GaussianBlur(hr, (9, 9), 2.5) + rng.normal(0, 20, hr.shape), 0, 255).astype(np.uint8)
        pairs.append((sr, hr))
    return pairs


def _pyiqa_cache(filename: str) -> str:
    folder = osp.join(torch.hub.get_dir(), 'pyiqa')
    os.makedirs(folder, exist_ok=True)
    return osp.join(folder, filename)


def assert_metric_equals_pyiqa(metric, theirs, photo_pairs) -> None:
    """Our metric on each (SR, HR) BGR uint8 pair equals pyiqa's module fed RGB in [0, 1], as the authors called it."""
    for sr, hr in photo_pairs:
        value = metric(sr, hr, crop_border=0, device='cpu')
        x, y = image_to_tensor(sr, 0, 'HWC', torch.device('cpu')), image_to_tensor(hr, 0, 'HWC', torch.device('cpu'))
        with torch.no_grad():
            reference = theirs(x, y).item()
        assert value == pytest.approx(reference, abs=1e-4) and value > 1e-2


def test_lpips_equals_pyiqa(pyiqa_archs, photo_pairs, stand_in_alexnet):
    lpips_arch, _ = pyiqa_archs
    clear_network_cache()
    ours = lpips_network('cpu')
    # pyiqa's calibrated LPIPS file holds the whole network; ours (AlexNet stand-in + lpips' v0.1 lin layers)
    torch.save(ours.state_dict(), _pyiqa_cache('LPIPS_v0.1_alex-df73285e.pth'))
    theirs = lpips_arch.LPIPS(net='alex', version='0.1').eval()
    assert torch.equal(theirs.lin0.model[1].weight, ours.lin0.model[1].weight)
    assert_metric_equals_pyiqa(calculate_lpips, theirs, photo_pairs)


def test_dists_equals_pyiqa(pyiqa_archs, photo_pairs, stand_in_vgg16):
    _, dists_arch = pyiqa_archs
    clear_network_cache()
    ours = dists_network('cpu')
    torch.save({'alpha': ours.alpha.detach().clone(), 'beta': ours.beta.detach().clone()},
               _pyiqa_cache('DISTS_weights-f5e65c96.pth'))
    theirs = dists_arch.DISTS().eval()
    assert torch.equal(theirs.alpha, ours.alpha)
    assert_metric_equals_pyiqa(calculate_dists, theirs, photo_pairs)
