"""Every checkpoint the package reads or writes goes through here.

Reading never runs code from a file: ``.pth`` files load with ``weights_only=True`` (training
states with an explicit allowlist of the few types BasicSR's optimizer and scheduler states hold;
on torch < 2.4, which cannot extend that allowlist, through the equally restricted unpickler of
:mod:`aesop_basicsr.utils.restricted_pickle`), and ``.safetensors`` files hold tensors only. Errors name the option key and the file at fault.
Writing is crash-safe: a file is written under a temporary name in its folder and renamed into
place, so a killed run never leaves a half-written file under the final name.
"""
import collections
import contextlib
import os
import pickle
import re
import uuid
from collections import OrderedDict
from types import ModuleType
from typing import IO, Any, Callable, Dict, Iterator, List, Mapping, Optional

import torch
from torch import Tensor, nn

from aesop_basicsr.utils.cli import CheckpointError, MissingFileError, OptionKeyError, UnsafeCheckpointError
from aesop_basicsr.utils.restricted_pickle import restricted_pickle_module

# Types (besides tensors and plain containers) that BasicSR 1.4.2's training states hold:
# MultiStepRestartLR keeps its milestones in a collections.Counter; optimizer and network
# state dicts may be OrderedDicts. A training state that needs anything else is refused.
TRAINING_STATE_TYPES: List[type] = [collections.Counter, collections.OrderedDict]
TRAINING_STATE_KEYS = ('epoch', 'iter', 'optimizers', 'schedulers')
SAFETENSORS_SUFFIX = '.safetensors'
TEMP_SUFFIX = '.tmp'
_UNSUPPORTED_GLOBAL = re.compile(r'Unsupported global: GLOBAL ([\w.]+)')


# ---- reading ---------------------------------------------------------------------------
def _first_line(err: BaseException) -> str:
    """The first sentence of an error message (torch's run on with advice)."""
    line = next(iter(str(err).strip().splitlines()), '')
    return line.split('. ')[0].rstrip('.')


def check_is_file(path: str, option_key: str, what: str = 'checkpoint file') -> None:
    """A missing path, a folder or an empty file each fail with their own message."""
    if os.path.isdir(path):
        raise CheckpointError(f'{option_key}: {path!r} is a folder, not a {what}.')
    if not os.path.isfile(path):
        raise MissingFileError(f'{option_key}: {what} {path!r} does not exist.')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'{option_key}: {path!r} is empty (0 bytes); it was probably cut off while being '
                              'written or copied.')


def _disallowed_globals(path: str, err: BaseException, ask_torch: bool = True) -> List[str]:
    """The pickled types in ``path`` outside the allowlist (call inside the safe_globals context).

    ``ask_torch``: list them all with torch's ``get_unsafe_globals_in_checkpoint`` (the allowlist of its
    ``weights_only`` loader); otherwise, and where that fails, the one named in ``err``.
    """
    names = []
    if ask_torch:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # an older torch, or a file that is not a zip checkpoint
            names = []
    return names or _UNSUPPORTED_GLOBAL.findall(str(err))


@contextlib.contextmanager
def _allowing(types: List[type]) -> Iterator[Optional[ModuleType]]:
    """Inside: ``types`` are allowed besides tensors and plain containers; yields the ``pickle_module`` to load with.

    None means torch's own ``weights_only=True`` loader: torch >= 2.5 allows ``types`` through the
    ``safe_globals`` context, torch 2.4 through the process-wide ``add_safe_globals``. Older torch cannot
    extend that loader's allowlist: it gets the equally restricted unpickler of
    :mod:`aesop_basicsr.utils.restricted_pickle` (to load with ``weights_only=False``).
    """
    if not types:
        yield None
    elif hasattr(torch.serialization, 'safe_globals'):
        with torch.serialization.safe_globals(types):
            yield None
    elif hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(types)
        yield None
    else:
        yield restricted_pickle_module(types)


def _load_weights_only(path: str, option_key: str, map_location: Any = 'cpu',
                       allowed_types: Optional[List[type]] = None) -> Any:
    """``torch.load(weights_only=True)``; a file that needs any other type is refused, naming the type."""
    with _allowing(allowed_types or []) as pickle_module:
        try:
            if pickle_module is None:
                return torch.load(path, map_location=map_location, weights_only=True)
            return torch.load(path, map_location=map_location, weights_only=False, pickle_module=pickle_module)
        except pickle.UnpicklingError as err:
            names = _disallowed_globals(path, err, ask_torch=pickle_module is None)
            if names:
                raise UnsafeCheckpointError(
                    f'{option_key}: {path!r} is not a PyTorch checkpoint that loads with weights_only=True: it '
                    f'needs {", ".join(names)}, which is not an allowed type (loading it could run code). '
                    'Refused.') from None
            raise CheckpointError(f'{option_key}: {path!r} is not a PyTorch checkpoint that loads with '
                                  f'weights_only=True ({_first_line(err)}).') from err
        except Exception as err:  # the unpickler fails on foreign or cut-off bytes with many error types
            raise CheckpointError(f'{option_key}: {path!r} is not a PyTorch checkpoint that loads with '
                                  f'weights_only=True ({type(err).__name__}: {_first_line(err)}).') from err


def read_checkpoint(path: str, option_key: str) -> Dict[str, Any]:
    """Read network weights, a ``.pth`` (with ``weights_only=True``) or ``.safetensors`` file, onto the CPU."""
    check_is_file(path, option_key)
    if path.endswith(SAFETENSORS_SUFFIX):
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise ImportError(f'{option_key}: reading {path!r} needs the safetensors package '
                              '(pip install safetensors).') from err
        try:
            return load_file(path, device='cpu')
        except Exception as err:  # safetensors raises its own error types
            raise CheckpointError(f'{option_key}: {path!r} is not a readable safetensors file '
                                  f'({_first_line(err)}).') from err
    checkpoint = _load_weights_only(path, option_key)
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'{option_key}: {path!r} holds a {type(checkpoint).__name__}, not a dict of weights.')
    return dict(checkpoint)


def read_training_state(path: str, option_key: str = 'path:resume_state', map_location: Any = 'cpu') -> dict:
    """Read a BasicSR training state (``<iter>.state``) without running code from it.

    Only tensors, plain containers and :data:`TRAINING_STATE_TYPES` may be in it.
    """
    check_is_file(path, option_key, 'training state')
    state = _load_weights_only(path, option_key, map_location, TRAINING_STATE_TYPES)
    if not isinstance(state, Mapping) or any(key not in state for key in TRAINING_STATE_KEYS):
        found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
        raise CheckpointError(f'{option_key}: {path!r} is not a BasicSR training state (it needs the keys '
                              f'{list(TRAINING_STATE_KEYS)}; found {found}).')
    if isinstance(state['iter'], bool) or not isinstance(state['iter'], int):
        raise CheckpointError(f'{option_key}: {path!r} has iter={state["iter"]!r}, not an iteration number.')
    return dict(state)


def select_params(checkpoint: Mapping[str, Any], param_key: Optional[str], path: str,
                  param_key_option: str) -> 'OrderedDict[str, Tensor]':
    """Pick ``checkpoint[param_key]`` (BasicSR's ``params``/``params_ema`` layout) and strip ``module.``.

    ``param_key`` None means the file is a bare state dict. A safetensors file stores nested
    dicts flattened, so ``params_ema.x`` counts as ``x`` under ``params_ema``.
    """
    if param_key:
        if param_key in checkpoint and isinstance(checkpoint[param_key], Mapping):
            state = checkpoint[param_key]
        elif any(k.startswith(param_key + '.') for k in checkpoint):
            state = {k[len(param_key) + 1:]: v for k, v in checkpoint.items() if k.startswith(param_key + '.')}
        else:
            nested = param_keys_in(checkpoint)
            if nested:
                raise OptionKeyError(f'{param_key_option}: {param_key!r} is not in {path!r}; '
                                     f'the file has the keys {nested}.')
            raise OptionKeyError(f'{param_key_option}: {param_key!r} is not in {path!r}, which holds a bare state '
                                 f'dict ({len(checkpoint)} tensors); set {param_key_option}: ~')
    else:
        state = checkpoint
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f'{param_key_option}: {path!r} under {param_key!r} is not a state dict '
                              f'(entry {bad[0]!r} is a {type(state[bad[0]]).__name__}).')
    return OrderedDict((k[7:] if k.startswith('module.') else k, v) for k, v in state.items())


def basicsr_param_key(checkpoint: Mapping[str, Any], param_key: Optional[str]) -> Optional[str]:
    """BasicSR's ``load_network`` rule: a ``param_key`` the checkpoint lacks falls back to ``params`` where it has
    that (e.g. ``params_ema`` of a file saved without EMA). Keys count nested (``.pth``) or flattened (``.safetensors``)."""

    def has(key: str) -> bool:
        return key in checkpoint or any(k.startswith(key + '.') for k in checkpoint)

    if param_key is not None and not has(param_key) and has('params'):
        return 'params'
    return param_key


def param_keys_in(checkpoint: Mapping[str, Any]) -> List[str]:
    """The state-dict keys of a checkpoint: nested dicts (``.pth``) or flattened prefixes (``.safetensors``)."""
    keys = [k for k, v in checkpoint.items() if isinstance(v, Mapping)]
    if not keys:
        for k, v in checkpoint.items():
            prefix = k.split('.', 1)[0]
            if isinstance(v, Tensor) and '.' in k and prefix in ('params', 'params_ema') and prefix not in keys:
                keys.append(prefix)
    return keys


def check_fits(net: nn.Module, state: Mapping[str, Tensor], path: str, option_key: str, strict: bool,
               hint: str = '') -> None:
    """Raise if ``state`` does not fit ``net``: another scale, the first tensor of another shape, or
    (strict) missing/extra keys."""
    scale_of = getattr(net, 'scale_of_state_dict', None)
    file_scale = scale_of(state) if scale_of is not None else None
    if file_scale is not None and file_scale != getattr(net, 'scale', file_scale):
        raise CheckpointError(f'{option_key}: {path!r} does not fit the configured auto-encoder: it holds one for '
                              f'scale {file_scale}, but the configured one has scale {net.scale}; use an '
                              f'x{net.scale} auto-encoder or set its scale to {file_scale}.')
    expected = net.state_dict()
    for key, value in state.items():
        if key in expected and expected[key].shape != value.shape:
            raise CheckpointError(f'{option_key}: {path!r} does not fit the configured network: {key} has shape '
                                  f'{tuple(value.shape)} in the file but {tuple(expected[key].shape)} in the '
                                  f'network. {hint}'.rstrip())
    if strict:
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        if missing or unexpected:
            raise CheckpointError(f'{option_key}: {path!r} does not fit the configured network: '
                                  f'{len(missing)} missing tensors (first: {missing[:3]}), '
                                  f'{len(unexpected)} unexpected (first: {unexpected[:3]}). {hint}'.rstrip())


def load_pretrained(net: nn.Module, path: str, param_key: Optional[str], strict: bool, option_key: str,
                    param_key_option: str, hint: str = '') -> None:
    """Load weights into ``net`` after checking every tensor's name and shape."""
    state = select_params(read_checkpoint(path, option_key), param_key, path, param_key_option)
    fold = getattr(net, 'fold_released_keys', None)
    if fold is not None:
        state = fold(state)
    check_fits(net, state, path, option_key, strict, hint)
    net.load_state_dict(state, strict=strict)


# ---- writing ---------------------------------------------------------------------------
def atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(file)`` under a temporary name in its folder, then rename it into place.

    The rename is atomic: ``path`` is either the old file or the complete new one, never a part.
    The temporary name starts with a dot and ends with ``.tmp``; it is removed if writing fails.
    """
    folder, name = os.path.split(os.path.abspath(path))
    temp = os.path.join(folder, f'.{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}')
    try:
        with open(temp, 'xb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_checkpoint(obj: Any, path: str) -> None:
    """``torch.save(obj, path)``, crash-safe (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def is_temp_file(name: str) -> bool:
    """Whether ``name`` is a temporary file :func:`atomic_write` leaves behind when a run is killed."""
    return name.startswith('.') and name.endswith(TEMP_SUFFIX)


def flatten_for_safetensors(checkpoint: Mapping[str, Any], path: str) -> 'OrderedDict[str, Tensor]':
    """A ``.pth`` checkpoint as safetensors' flat ``name -> tensor`` dict.

    BasicSR's ``{'params': {...}, 'params_ema': {...}}`` becomes ``params.x`` / ``params_ema.x`` (which
    :func:`select_params` reads back); a bare state dict stays as it is. Tensors are copied, so that
    ``params`` and ``params_ema`` never share memory (safetensors refuses that).
    """
    flat: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key, value in checkpoint.items():
        if isinstance(value, Tensor):
            flat[key] = value
        elif isinstance(value, Mapping) and all(isinstance(v, Tensor) for v in value.values()):
            flat.update((f'{key}.{k[7:] if k.startswith("module.") else k}', v) for k, v in value.items())
        else:
            raise CheckpointError(f'{path!r}: entry {key!r} is a {type(value).__name__}, neither a tensor nor a '
                                  'state dict; only network weights convert to safetensors.')
    if not flat:
        raise CheckpointError(f'{path!r} holds no tensors.')
    return OrderedDict((k, v.detach().to('cpu').contiguous().clone()) for k, v in flat.items())


def save_safetensors(tensors: Mapping[str, Tensor], path: str, metadata: Optional[Dict[str, str]] = None) -> None:
    """Write ``tensors`` as a ``.safetensors`` file, crash-safe (see :func:`atomic_write`)."""
    from safetensors.torch import save
    data = save(dict(tensors), metadata=metadata)
    atomic_write(path, lambda f: f.write(data))
