"""`import aesop_basicsr` registers every component into BasicSR's registries, safely and repeatably."""
import subprocess
import sys

import pytest
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY, Registry

import aesop_basicsr
from aesop_basicsr.utils.registry import register

REGISTERED = [(ARCH_REGISTRY, 'AESOPAutoEncoder'), (LOSS_REGISTRY, 'AESOPLoss'), (MODEL_REGISTRY, 'AESOPAEModel'),
              (MODEL_REGISTRY, 'ESRGANLDLModel'), (METRIC_REGISTRY, 'calculate_lpips'),
              (METRIC_REGISTRY, 'calculate_dists')]


@pytest.mark.parametrize('registry, name', REGISTERED)
def test_components_resolve_through_basicsr_registries(registry, name):
    obj = registry.get(name)
    assert obj.__module__.startswith('aesop_basicsr.')


RELOAD_EVERYTHING = """
import importlib, sys
import aesop_basicsr
import realesrgan  # registers Real-ESRGAN's models beside basicsr's *_basicsr ones
from basicsr.utils.registry import LOSS_REGISTRY
for module in [m for name, m in list(sys.modules.items()) if name.startswith('aesop_basicsr.')]:
    if hasattr(module, '__file__') and module.__name__ not in ('aesop_basicsr.train', 'aesop_basicsr.test'):
        importlib.reload(module)
importlib.reload(aesop_basicsr)
assert LOSS_REGISTRY.get('AESOPLoss') is sys.modules['aesop_basicsr.losses.aesop_loss'].AESOPLoss
print('ok')
"""


def test_reimporting_and_importing_realesrgan_never_trips_the_duplicate_assertion():
    # in a process of its own: reloading every module replaces the classes that other test modules hold
    out = subprocess.run([sys.executable, '-c', RELOAD_EVERYTHING], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == 'ok', out.stderr[-3000:]


def test_a_different_object_under_a_taken_name_is_still_refused():
    registry = Registry('scratch')

    @register(registry)
    class Thing:
        pass

    with pytest.raises(KeyError, match="'Thing' is already registered"):
        register(registry)(type('Thing', (), {}))


def test_fresh_interpreter_imports_basicsr_through_the_plugin():
    code = ('import sys, aesop_basicsr, basicsr.data.degradations; '
            'assert "torchvision.transforms.functional_tensor" in sys.modules; print("ok")')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'ok'
