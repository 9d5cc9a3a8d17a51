"""Checks on BasicSR option files and parsed option dicts that must fail before anything heavy starts.

Each error names the option key and the file or value at fault (``aesop_basicsr.utils.cli``).
"""
import os
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple

import yaml

from aesop_basicsr.utils.cli import MissingFileError, OptionError
from aesop_basicsr.utils.safe_yaml import CodeTagError, load_options

# Option files shipped in options/ mark every value a user must supply with this prefix,
# e.g. ``dataroot_gt: <REQUIRED: folder of DF2K HR sub-images>``.
PLACEHOLDER_PREFIX = '<REQUIRED'


def _walk(node: Any, prefix: str = '') -> Iterator[Tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f'{prefix}:{key}' if prefix else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, f'{prefix}[{i}]')
    else:
        yield prefix, node


def find_placeholders(opt: dict) -> List[Tuple[str, str]]:
    """(key path, placeholder text) for every value still left as a ``<REQUIRED ...>`` placeholder."""
    return [(key, value) for key, value in _walk(opt)
            if isinstance(value, str) and value.strip().startswith(PLACEHOLDER_PREFIX)]


def check_no_placeholders(opt: dict, opt_file: str = '') -> None:
    """Raise with every key a user still has to set (keys written as in ``--force_yml``)."""
    found = find_placeholders(opt)
    if found:
        where = f' in {opt_file}' if opt_file else ''
        lines = '\n'.join(f'  {key}: {value}' for key, value in found)
        raise OptionError(f'Set these options{where} before running (or pass --force_yml KEY=VALUE):\n{lines}')


# keys BasicSR's parse_options indexes without a default
REQUIRED_KEYS = ('name', 'num_gpu', 'datasets', 'path')
AESOP_LOSS_TYPE = 'AESOPLoss'


def read_option_file(opt_file: str, required: Sequence[str] = REQUIRED_KEYS) -> dict:
    """The option file as a dict, or an error naming the file: missing, not YAML, not a mapping, keys missing."""
    if not os.path.isfile(opt_file):
        raise MissingFileError(f'-opt: option file {opt_file!r} does not exist.')
    try:
        with open(opt_file) as f:
            opt = load_options(f)
    except CodeTagError as err:
        mark = err.problem_mark
        raise OptionError(f'-opt: {opt_file!r} line {mark.line + 1}, column {mark.column + 1}: the tag {err.tag} would '
                          'build a Python object (it could run code); refused: option files may hold plain YAML '
                          'only.') from None
    except yaml.YAMLError as err:
        where = getattr(err, 'problem_mark', None)
        line = f' (line {where.line + 1}, column {where.column + 1})' if where is not None else ''
        problem = getattr(err, 'problem', None) or str(err).splitlines()[0]
        raise OptionError(f'-opt: {opt_file!r} is not a valid YAML option file{line}: {problem}.') from None
    except UnicodeDecodeError:
        raise OptionError(f'-opt: {opt_file!r} is not a text (YAML) option file.') from None
    if not isinstance(opt, dict):
        raise OptionError(f'-opt: {opt_file!r} is not a YAML option file: it holds a {type(opt).__name__}, '
                          'not a mapping of option keys.')
    missing = [key for key in required if key not in opt]
    if missing:
        raise OptionError(f'-opt: {opt_file!r} has no {", ".join(missing)} key{"s" if len(missing) > 1 else ""}; '
                          'a BasicSR option file needs ' + ', '.join(required) + '.')
    return opt


def check_force_yml(opt: Mapping[str, Any], entries: Optional[Sequence[str]]) -> None:
    """Each ``--force_yml KEY=VALUE`` must name an existing option (BasicSR creates only the last key)."""
    for entry in entries or ():
        if entry.count('=') != 1:
            raise OptionError(f'--force_yml: {entry!r} is not KEY=VALUE (e.g. train:total_iter=1000).')
        keys = entry.split('=')[0].strip().split(':')
        node: Any = opt
        for depth, key in enumerate(keys[:-1]):
            if not isinstance(node, Mapping) or key not in node:
                raise OptionError(f'--force_yml: {entry!r}: the option file has no {":".join(keys[:depth + 1])}.')
            node = node[key]
        if not isinstance(node, Mapping):
            raise OptionError(f'--force_yml: {entry!r}: {":".join(keys[:-1])} is not a mapping of options.')


def check_device(opt: Mapping[str, Any], opt_file: str, cuda_available: bool) -> None:
    """``num_gpu`` > 0 needs CUDA: fail here rather than deep inside the first ``.cuda()``."""
    num_gpu = opt.get('num_gpu')
    if num_gpu and not cuda_available:
        raise OptionError(f'num_gpu: {num_gpu} in {opt_file} asks for CUDA, but this host has no CUDA device; '
                          'set num_gpu: 0 (CPU) or num_gpu: auto.')


# models that put tensors on CUDA whatever num_gpu says (BasicSR's copies carry the suffix _basicsr)
CUDA_ONLY_MODELS = {
    'RealESRGANModel': "Real-ESRGAN's degradation pipeline (DiffJPEG, USMSharp, the training pair queue)",
    'RealESRNetModel': "Real-ESRGAN's degradation pipeline (DiffJPEG, USMSharp, the training pair queue)",
}
BASICSR_COPY_SUFFIX = '_basicsr'


def model_class_names(model_type: str) -> List[str]:
    """``model_type`` (without BasicSR's ``_basicsr`` suffix) and, where it resolves, the names of its classes."""
    from basicsr.utils.registry import MODEL_REGISTRY

    from aesop_basicsr.utils.fallback_registry import is_registered
    names = [model_type[:-len(BASICSR_COPY_SUFFIX)] if model_type.endswith(BASICSR_COPY_SUFFIX) else model_type]
    if is_registered(MODEL_REGISTRY, model_type):
        names += [cls.__name__ for cls in MODEL_REGISTRY.get(model_type).__mro__]
    return names


def check_cuda_only_model(opt: Mapping[str, Any], opt_file: str, cuda_available: bool) -> None:
    """A model that calls ``.cuda()`` itself fails after everything is built on a host without CUDA: fail first.

    Also a model built on one of them (e.g. the authors' ``AesopRealESRGANArtifactsDisModel``).
    """
    model_type = str(opt.get('model_type'))
    base = next((name for name in model_class_names(model_type) if name in CUDA_ONLY_MODELS), None)
    if base is not None and not cuda_available:
        raise OptionError(f'model_type: {model_type} in {opt_file} needs CUDA ({CUDA_ONLY_MODELS[base]} is put on '
                          'the GPU with .cuda()), and this host has none; run it on a CUDA host, or train on CPU from '
                          'prepared LR/HR pairs (aesop-prepare, PairedImageDataset) with model_type: ESRGANModel '
                          '(SRModel for the PSNR stage).')


def aesop_loss_options(opt: Mapping[str, Any]) -> List[Tuple[str, Mapping[str, Any]]]:
    """(key path, options) of every AESOPLoss in ``train`` (``pixel_opt`` and any other ``*_opt``)."""
    train = opt.get('train') or {}
    return [(f'train:{key}', value) for key, value in train.items()
            if isinstance(value, Mapping) and value.get('type') == AESOP_LOSS_TYPE]


AESOP_AE_TYPE = 'AESOPAutoEncoder'
AESOP_AE_MODEL = 'AESOPAEModel'
AESOP_AE_DEFAULT_SCALE = 4  # AESOPAutoEncoder's default


def autoencoder_scale(ae: Any) -> Optional[int]:
    """The SR scale of an auto-encoder option dict (``scale``, or AESOPAutoEncoder's default), or None."""
    if not isinstance(ae, Mapping):
        return None
    scale = ae.get('scale', AESOP_AE_DEFAULT_SCALE if ae.get('type') == AESOP_AE_TYPE else None)
    return scale if isinstance(scale, int) and not isinstance(scale, bool) else None


def check_autoencoder_scales(opt: Mapping[str, Any], opt_file: str = '') -> None:
    """Every AESOPLoss auto-encoder (and an AESOPAEModel's network_g) has the run's ``scale``.

    AESOP compares SR and HR through the auto-encoder's bottleneck, which must be the LR size
    (Lee et al., CVPR 2025, Sec. 3): an x4 auto-encoder in an x2 run still trains, on a wrong loss.
    """
    scale = opt.get('scale')
    if not isinstance(scale, int) or isinstance(scale, bool):
        return
    where = f' in {opt_file}' if opt_file else ''
    found = [(f'{key}:autoencoder', loss_opt.get('autoencoder')) for key, loss_opt in aesop_loss_options(opt)]
    if opt.get('model_type') == AESOP_AE_MODEL:
        found.append(('network_g', opt.get('network_g')))
    for key, ae in found:
        ae_scale = autoencoder_scale(ae)
        if ae_scale is not None and ae_scale != scale:
            raise OptionError(f'{key}:scale is {ae_scale} but scale is {scale}{where}: the auto-encoder\'s bottleneck '
                              f'must be the LR size; use an x{scale} auto-encoder (and its weights), or scale: '
                              f'{ae_scale} with x{ae_scale} data and generator.')


def check_aesop_losses(opt: Mapping[str, Any], opt_file: str) -> None:
    """Each AESOPLoss names a registered auto-encoder type, of the run's scale (which divides the patches)."""
    from basicsr.utils.registry import ARCH_REGISTRY

    from aesop_basicsr.utils.fallback_registry import is_registered
    for key, loss_opt in aesop_loss_options(opt):
        ae = loss_opt.get('autoencoder')
        if not isinstance(ae, Mapping) or 'type' not in ae:
            raise OptionError(f'{key}:autoencoder in {opt_file} must be an option dict with a type, '
                              'e.g. {type: AESOPAutoEncoder, scale: 4}.')
        if not is_registered(ARCH_REGISTRY, ae['type']):
            raise OptionError(f'{key}:autoencoder:type is {ae["type"]!r} in {opt_file}, which is not a registered '
                              'architecture; AESOPLoss needs an auto-encoder, e.g. AESOPAutoEncoder.')
    check_autoencoder_scales(opt, opt_file)


def check_patch_sizes(opt: Mapping[str, Any], opt_file: str) -> None:
    """Training GT patches must be a multiple of ``scale`` (BasicSR crops the LR patch as gt_size // scale)."""
    scale = opt.get('scale')
    for name, dataset in (opt.get('datasets') or {}).items():
        gt_size = dataset.get('gt_size') if isinstance(dataset, Mapping) else None
        if isinstance(scale, int) and scale > 0 and isinstance(gt_size, int) and gt_size % scale:
            raise OptionError(f'datasets:{name}:gt_size is {gt_size} in {opt_file}, not divisible by '
                              f'scale: {scale}; use a multiple of {scale}, e.g. {gt_size - gt_size % scale}.')


def check_dataset_paths(opt: Mapping[str, Any], opt_file: str) -> None:
    """Every ``dataroot_*`` folder and ``meta_info_file`` of a disk or lmdb dataset exists."""
    for name, dataset in (opt.get('datasets') or {}).items():
        if not isinstance(dataset, Mapping):
            continue
        backend = (dataset.get('io_backend') or {}).get('type', 'disk')
        if backend not in ('disk', 'lmdb'):
            continue
        for key, value in dataset.items():
            if not isinstance(value, str):
                continue
            if key.startswith('dataroot') and not os.path.exists(os.path.expanduser(value)):
                raise MissingFileError(f'datasets:{name}:{key}: {value!r} (in {opt_file}) does not exist.')
            if key == 'meta_info_file' and not os.path.isfile(os.path.expanduser(value)):
                raise MissingFileError(f'datasets:{name}:{key}: {value!r} (in {opt_file}) is not a file.')


UNREADABLE_IMAGE_KEY = 'on_unreadable_image'  # aesop_basicsr.data.unreadable_images
UNREADABLE_IMAGE_ACTIONS = ('stop', 'skip')


def check_unreadable_image_actions(opt: Mapping[str, Any], opt_file: str) -> None:
    """Each dataset's ``on_unreadable_image`` is ``stop`` or ``skip``."""
    for name, dataset in (opt.get('datasets') or {}).items():
        action = dataset.get(UNREADABLE_IMAGE_KEY, 'stop') if isinstance(dataset, Mapping) else 'stop'
        if action not in UNREADABLE_IMAGE_ACTIONS:
            raise OptionError(f'datasets:{name}:{UNREADABLE_IMAGE_KEY} is {action!r} in {opt_file}; choose '
                              f'{" or ".join(UNREADABLE_IMAGE_ACTIONS)}.')


def check_before_run(opt: Mapping[str, Any], opt_file: str, cuda_available: bool) -> None:
    """All checks on a parsed option dict that do not need a network built."""
    check_no_placeholders(dict(opt), opt_file)
    check_device(opt, opt_file, cuda_available)
    check_cuda_only_model(opt, opt_file, cuda_available)
    check_patch_sizes(opt, opt_file)
    check_aesop_losses(opt, opt_file)
    check_dataset_paths(opt, opt_file)
    check_unreadable_image_actions(opt, opt_file)
