"""Loading pretrained weights with errors that name the option key and the file at fault."""
import os
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional

import torch
from torch import Tensor, nn


def read_checkpoint(path: str, option_key: str) -> Dict[str, Any]:
    """Read a ``.pth`` (with ``weights_only=True``) or ``.safetensors`` file onto the CPU."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{option_key}: checkpoint file {path!r} does not exist.')
    if path.endswith('.safetensors'):
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise ImportError(f'{option_key}: reading {path!r} needs the safetensors package '
                              '(pip install safetensors).') from err
        try:
            return load_file(path, device='cpu')
        except Exception as err:  # safetensors raises its own error types
            raise ValueError(f'{option_key}: {path!r} is not a readable safetensors file ({err}).') from err
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # the unpickler fails on foreign bytes with many error types
        reason = next(iter(str(err).strip().splitlines()), '')
        raise ValueError(f'{option_key}: {path!r} is not a PyTorch checkpoint that loads with weights_only=True '
                         f'({type(err).__name__}: {reason}).') from err
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'{option_key}: {path!r} holds a {type(checkpoint).__name__}, not a dict of weights.')
    return dict(checkpoint)


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
            nested = [k for k, v in checkpoint.items() if isinstance(v, Mapping)]
            if nested:
                raise KeyError(f'{param_key_option}: {param_key!r} is not in {path!r}; '
                               f'the file has the keys {nested}.')
            raise KeyError(f'{param_key_option}: {param_key!r} is not in {path!r}, which holds a bare state dict '
                           f'({len(checkpoint)} tensors); set {param_key_option}: ~')
    else:
        state = checkpoint
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f'{param_key_option}: {path!r} under {param_key!r} is not a state dict '
                         f'(entry {bad[0]!r} is a {type(state[bad[0]]).__name__}).')
    return OrderedDict((k[7:] if k.startswith('module.') else k, v) for k, v in state.items())


def check_fits(net: nn.Module, state: Mapping[str, Tensor], path: str, option_key: str, strict: bool,
               hint: str = '') -> None:
    """Raise if ``state`` does not fit ``net``: the first tensor of another shape, or (strict) missing/extra keys."""
    expected = net.state_dict()
    for key, value in state.items():
        if key in expected and expected[key].shape != value.shape:
            raise ValueError(f'{option_key}: {path!r} does not fit the configured network: {key} has shape '
                             f'{tuple(value.shape)} in the file but {tuple(expected[key].shape)} in the network. '
                             f'{hint}'.rstrip())
    if strict:
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        if missing or unexpected:
            raise ValueError(f'{option_key}: {path!r} does not fit the configured network: '
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
