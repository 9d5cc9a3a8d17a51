"""Import every module of a sub-package whose file name ends with a suffix (Real-ESRGAN's idiom)."""
import importlib
from os import path as osp
from typing import List

from basicsr.utils import scandir


def import_modules_with_suffix(package_file: str, package_name: str, suffix: str) -> List[object]:
    folder = osp.dirname(osp.abspath(package_file))
    names = sorted(osp.splitext(osp.basename(p))[0] for p in scandir(folder) if p.endswith(suffix))
    return [importlib.import_module(f'{package_name}.{name}') for name in names]
