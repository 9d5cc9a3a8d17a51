"""AESOP (CVPR 2025) as a plugin for the unmodified BasicSR.

``import aesop_basicsr`` registers AESOPLoss, AESOPAutoEncoder, the AE pretraining model,
the LDL+ESRGAN model and the LPIPS/DISTS metrics into BasicSR's registries.
"""
from aesop_basicsr._compat import alias_torchvision_functional_tensor

alias_torchvision_functional_tensor()  # must run before BasicSR is first imported

from aesop_basicsr import archs, losses, metrics, models  # noqa: E402,F401  (registration)
from aesop_basicsr.version import __version__  # noqa: E402,F401
