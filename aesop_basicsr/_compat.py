"""Make BasicSR 1.4.2 importable beside current torchvision; say how to install BasicSR where none is.

BasicSR 1.4.2 imports ``torchvision.transforms.functional_tensor``, a module that
torchvision renamed to ``_functional_tensor`` and later removed under the old name.
The installed ``aesop_basicsr_autoload.pth`` adds an import hook that answers the old name with
the renamed module in every process; ``import aesop_basicsr`` adds the same hook where the
``.pth`` file did not run (``python -S``, a checkout on ``PYTHONPATH``). Nothing else in torch or
torchvision is touched.
"""
from importlib.util import find_spec

from aesop_basicsr_autoload import install_torchvision_alias

BASICSR_MISSING = (
    "aesop-basicsr needs BasicSR, and no 'basicsr' package is importable here. Install one: "
    "pip install --no-build-isolation 'aesop-basicsr[basicsr]' (BasicSR 1.4.2 from PyPI), or "
    'pip install basicsr-fixed (its GitHub master), or pip install -e /path/to/your/BasicSR-clone, or put '
    "your project's own copy of BasicSR on PYTHONPATH.")


def alias_torchvision_functional_tensor() -> None:
    """Expose ``torchvision.transforms._functional_tensor`` under its legacy name (idempotent)."""
    install_torchvision_alias()


def require_basicsr() -> None:
    """Raise ``ModuleNotFoundError`` naming the ways to install BasicSR when no ``basicsr`` package is importable.

    setup.py does not require BasicSR by distribution name (a fork, a clone or a copy on ``PYTHONPATH`` would
    not satisfy it, and pip would install PyPI's ``basicsr`` over it), so this is where its absence is told.
    """
    if find_spec('basicsr') is None:
        raise ModuleNotFoundError(BASICSR_MISSING, name='basicsr')
