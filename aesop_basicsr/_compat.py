"""Make BasicSR 1.4.2 importable beside current torchvision.

BasicSR 1.4.2 imports ``torchvision.transforms.functional_tensor``, a module that
torchvision renamed to ``_functional_tensor`` and later removed under the old name.
Registering the new module under the old name in ``sys.modules`` before BasicSR is
first imported is enough; nothing else in torch or torchvision is touched.
"""
import importlib
import sys

_LEGACY_NAME = 'torchvision.transforms.functional_tensor'


def alias_torchvision_functional_tensor() -> None:
    """Expose ``torchvision.transforms._functional_tensor`` under its legacy name."""
    if _LEGACY_NAME in sys.modules:
        return
    try:
        importlib.import_module(_LEGACY_NAME)
        return
    except ImportError:
        pass
    sys.modules[_LEGACY_NAME] = importlib.import_module('torchvision.transforms._functional_tensor')
