"""AESOP (CVPR 2025) as a plugin for the unmodified BasicSR.

``import aesop_basicsr`` registers AESOPLoss, AESOPAutoEncoder, the AE pretraining model,
the LDL+ESRGAN model, the LPIPS/DISTS/AE-PSNR/LR-PSNR metrics, and the names of the authors' BasicSR
fork as fallbacks (:mod:`aesop_basicsr.compat`) into BasicSR's registries, and makes BasicSR read
option files with a YAML loader that builds no Python objects (``aesop_basicsr.utils.safe_yaml``). Once
the package is installed, every process that imports ``basicsr`` does this on its own right after BasicSR has
loaded (``aesop_basicsr_autoload``; ``AESOP_BASICSR_AUTOLOAD=0`` turns that off). Importing it
again, before or after BasicSR, changes nothing.
"""
from aesop_basicsr._compat import alias_torchvision_functional_tensor, require_basicsr

alias_torchvision_functional_tensor()  # where the .pth did not run: before BasicSR is first imported
require_basicsr()

from aesop_basicsr import archs, losses, metrics, models  # noqa: E402,F401  (registration)
from aesop_basicsr import compat  # noqa: E402,F401  (the authors' fork's names, after ours)
from aesop_basicsr.archs.aesop_autoencoder_arch import AESOPAutoEncoder  # noqa: E402
from aesop_basicsr.losses.aesop_loss import AESOPLoss  # noqa: E402
from aesop_basicsr.metrics.dists_metric import calculate_dists  # noqa: E402
from aesop_basicsr.metrics.lpips_metric import calculate_lpips  # noqa: E402
from aesop_basicsr.models.aesop_ae_model import AESOPAEModel  # noqa: E402
from aesop_basicsr.models.esrgan_ldl_model import ESRGANLDLModel  # noqa: E402
from aesop_basicsr.utils.safe_yaml import harden_basicsr_option_loading  # noqa: E402
from aesop_basicsr.version import __version__  # noqa: E402

harden_basicsr_option_loading()

__all__ = ['AESOPAutoEncoder', 'AESOPLoss', 'AESOPAEModel', 'ESRGANLDLModel', 'calculate_lpips', 'calculate_dists',
           '__version__']
