"""Make BasicSR 1.4.2 importable beside current torchvision.

BasicSR 1.4.2 imports ``torchvision.transforms.functional_tensor``, a module that
torchvision renamed to ``_functional_tensor`` and later removed under the old name.
The installed ``aesop_basicsr_autoload.pth`` adds an import hook that answers the old name with
the renamed module in every process; ``import aesop_basicsr`` adds the same hook where the
``.pth`` file did not run (``python -S``, a checkout on ``PYTHONPATH``). Nothing else in torch or
torchvision is touched.
"""
from aesop_basicsr_autoload import install_torchvision_alias


def alias_torchvision_functional_tensor() -> None:
    """Expose ``torchvision.transforms._functional_tensor`` under its legacy name (idempotent)."""
    install_torchvision_alias()
