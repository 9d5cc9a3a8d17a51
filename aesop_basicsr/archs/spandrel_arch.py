"""spandrel's SR architectures as BasicSR networks, under the names their own repositories register.

spandrel (chaiNNer's architecture library, https://github.com/chaiNNer-org/spandrel) keeps the
official module layout of each architecture, so the authors' released checkpoints load strictly.
Here each of them becomes an ``ARCH_REGISTRY`` type (``network_g: {type: DRCT, ...}``, or an
AESOP decoder) that

- takes the option keys of its own repository's option files; keys this architecture does not
  use (e.g. DRCT's ``compress_ratio``, ``squeeze_factor``, ``conv_scale``, ``overlap_ratio``,
  which the DRCT code accepts and ignores) are accepted and named once in the log;
- trains: ``use_checkpoint: true`` recomputes each residual group in the backward pass
  (``torch.utils.checkpoint``, non-reentrant) instead of keeping its activations;
- pads the LR input to the multiple the architecture needs where its forward does not
  (DRCT: the window size, reflect padding, as the authors' ``DRCT.forward``; SAFMN: 8) and crops
  the output, so BasicSR's ``SRModel`` tests on any image size;
- loads the official key layout (the class *is* spandrel's, with its module names).

The names are fallbacks (:mod:`aesop_basicsr.utils.fallback_registry`): nothing is put into the
registry, so a project that registers its own ``DRCT``/``HAT`` later (their ``train.py`` does)
still works, and its class wins. spandrel is imported only when one of these names is looked up.
``from aesop_basicsr.archs.spandrel_arch import DRCT`` works too.
"""
import functools
import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple, Union

import torch
import torch.nn.functional as F
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from aesop_basicsr.utils.fallback_registry import add_fallback


@dataclass(frozen=True)
class SpandrelArchitecture:
    """How one spandrel class becomes a BasicSR architecture.

    Attributes:
        name: The ``type`` in option files (the original repository's registry name).
        module: The module under ``spandrel.architectures`` that holds the class.
        class_name: The class in that module.
        scale_keys: The option(s) that set the upscaling factor.
        pad_to: Pad the LR input to a multiple of this (an int, or the name of the built network's
            attribute that holds it) where the class's own forward does not pad; None where it does
            or needs nothing.
        checkpoint_units: Attributes of the network recomputed in backward under ``use_checkpoint``:
            a ModuleList/Sequential (each child is one unit) or single modules.
        fixed_scale: The upscaling factor of a class built for one factor (Real-CUGAN).
        fold: Maps another released key layout of the same architecture onto spandrel's.
    """
    name: str
    module: str
    class_name: str
    scale_keys: Tuple[str, ...]
    checkpoint_units: Tuple[str, ...]
    pad_to: Union[int, str, None] = None
    fixed_scale: Optional[int] = None
    fold: Optional[Callable[[Mapping[str, Tensor]], Dict[str, Tensor]]] = None


def drct_linear_adjust_to_conv(state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """The AESOP authors' DRCT (``AESOP/basicsr/archs/drct_arch.py``, "RDGv2") keeps each dense block's
    ``adjust`` 1x1 convolutions as ``nn.Linear``: their checkpoints (``AESOP_DRCT256_300K.pth``,
    ``baseline_reproduced_DRCT+LDL_300K.pth``) store those weights as (out, in) instead of the official
    (out, in, 1, 1). Same numbers; reshaped here."""
    return {k: (v[:, :, None, None] if '.adjust' in k and k.endswith('.weight') and v.dim() == 2 else v)
            for k, v in state.items()}


ARCHITECTURES: Tuple[SpandrelArchitecture, ...] = (
    # window-attention transformers: checkpoint each residual group
    SpandrelArchitecture('DRCT', 'DRCT', 'DRCT', ('upscale',), ('layers',), pad_to='window_size',
                         fold=drct_linear_adjust_to_conv),
    SpandrelArchitecture('HAT', 'HAT', 'HAT', ('upscale',), ('layers',)),
    SpandrelArchitecture('DAT', 'DAT', 'DAT', ('upscale',), ('layers',)),
    SpandrelArchitecture('ATD', 'ATD', 'ATD', ('upscale',), ('layers',)),
    SpandrelArchitecture('RGT', 'RGT', 'RGT', ('upscale',), ('layers',)),
    SpandrelArchitecture('Swin2SR', 'Swin2SR', 'Swin2SR', ('upscale',), ('layers',)),
    SpandrelArchitecture('CRAFT', 'CRAFT', 'CRAFT', ('upscale',), ('layers',)),
    SpandrelArchitecture('OmniSR', 'OmniSR', 'OmniSR', ('up_scale',), ('residual_layer',)),
    SpandrelArchitecture('DITN', 'DITN', 'DITN', ('upscale',), ('UFONE',)),
    SpandrelArchitecture('SeemoRe', 'SeemoRe', 'SeemoRe', ('scale',), ('body',)),
    SpandrelArchitecture('FDAT', 'FDAT', 'FDAT', ('scale',), ('groups',)),
    # efficient convolutional / attention networks
    SpandrelArchitecture('SPAN', 'SPAN', 'SPAN', ('upscale',),
                         ('block_1', 'block_2', 'block_3', 'block_4', 'block_5', 'block_6')),
    SpandrelArchitecture('PLKSR', 'PLKSR', 'PLKSR', ('upscaling_factor',), ('feats',)),
    SpandrelArchitecture('RealPLKSR', 'PLKSR', 'RealPLKSR', ('upscaling_factor',), ('feats',)),
    SpandrelArchitecture('SAFMN', 'SAFMN', 'SAFMN', ('upscaling_factor',), ('feats',), pad_to=8),
    SpandrelArchitecture('DCTLSA', 'DCTLSA', 'DCTLSA', ('upscale',), ('B1', 'B2', 'B3', 'B4', 'B5', 'B6')),
    SpandrelArchitecture('MoSR', 'MoSR', 'MoSR', ('upscale',), ('gblocks',)),
    SpandrelArchitecture('MoESR', 'MoESR', 'MoESR', ('scale',), ('blocks',)),
    SpandrelArchitecture('SwiftSRGAN', 'SwiftSRGAN', 'SwiftSRGAN', ('upscale_factor',), ('residual',)),
    # Real-CUGAN: one class per factor
    SpandrelArchitecture('UpCunet2x', 'RealCUGAN', 'UpCunet2x', (), ('unet1', 'unet2'), fixed_scale=2),
    SpandrelArchitecture('UpCunet3x', 'RealCUGAN', 'UpCunet3x', (), ('unet1', 'unet2'), fixed_scale=3),
    SpandrelArchitecture('UpCunet4x', 'RealCUGAN', 'UpCunet4x', (), ('unet1', 'unet2'), fixed_scale=4),
    SpandrelArchitecture('UpCunet2x_fast', 'RealCUGAN', 'UpCunet2x_fast', (), ('unet1', 'unet2'), fixed_scale=2),
)
BY_NAME: Dict[str, SpandrelArchitecture] = {spec.name: spec for spec in ARCHITECTURES}
USE_CHECKPOINT = 'use_checkpoint'
_logged_unused: Set[Tuple[str, Tuple[str, ...]]] = set()


def pad_to_multiple(x: Tensor, multiple: int, minimum: int = 0) -> Tensor:
    """Pad (B, C, H, W) on the bottom and right to multiples of ``multiple`` (and at least ``minimum``).

    Reflect padding, as the authors' DRCT ``check_image_size``; where an image is smaller than its
    padding (which reflection cannot give), the rest is replicated, as spandrel pads.
    """
    height, width = x.shape[-2:]
    pad_h = max(-height % multiple, minimum - height)
    pad_w = max(-width % multiple, minimum - width)
    if pad_h <= 0 and pad_w <= 0:
        return x
    pad_h, pad_w = max(pad_h, 0), max(pad_w, 0)
    reflect_h, reflect_w = min(pad_h, height - 1), min(pad_w, width - 1)
    x = F.pad(x, (0, reflect_w, 0, reflect_h), 'reflect')
    if reflect_h < pad_h or reflect_w < pad_w:
        x = F.pad(x, (0, pad_w - reflect_w, 0, pad_h - reflect_h), 'replicate')
    return x


def log_unused_options(name: str, unused: Tuple[str, ...], reason: str) -> None:
    """Name the option keys an architecture ignores, once per process (BasicSR builds net_g and its EMA copy)."""
    if unused and (name, unused) not in _logged_unused:
        _logged_unused.add((name, unused))
        get_root_logger().info(f'{name}: option(s) {", ".join(unused)} not used ({reason}); accepted and ignored.')


def _run_checkpointed(forward: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if torch.is_grad_enabled():
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return forward(*args, **kwargs)


def checkpoint_units(net: nn.Module, names: Tuple[str, ...]) -> List[nn.Module]:
    """The modules named by ``names``: the children of a ModuleList/Sequential, or the module itself."""
    units: List[nn.Module] = []
    for name in names:
        module = getattr(net, name)
        units.extend(module.children() if isinstance(module, (nn.ModuleList, nn.Sequential)) else [module])
    return units


def enable_gradient_checkpointing(net: nn.Module, names: Tuple[str, ...]) -> None:
    """Recompute each unit's forward in the backward pass instead of keeping its activations.

    Each unit's ``forward`` becomes ``torch.utils.checkpoint.checkpoint`` of its own forward (a
    ``functools.partial`` of the bound method, which ``copy.deepcopy`` rebinds to the copy); module
    names and the state dict do not change. Without autograd (``torch.no_grad``) units run plainly.
    """
    for unit in checkpoint_units(net, names):
        unit.forward = functools.partial(_run_checkpointed, type(unit).forward.__get__(unit))


class SpandrelSRNet(nn.Module):
    """Mixin placed before a spandrel class (see :func:`spandrel_class`); ``spec`` and ``accepted`` are set there."""
    spec: SpandrelArchitecture
    accepted: Tuple[str, ...] = ()

    def __init__(self, **options: Any):
        use_checkpoint = bool(options.pop(USE_CHECKPOINT, False))
        log_unused_options(self.spec.name, tuple(sorted(k for k in options if k not in self.accepted)),
                           f'spandrel {_spandrel_version()} {self.spec.module}.{self.spec.class_name} has no such '
                           'parameter')
        super().__init__(**{k: v for k, v in options.items() if k in self.accepted})
        self.use_checkpoint = use_checkpoint
        if use_checkpoint:
            enable_gradient_checkpointing(self, self.spec.checkpoint_units)

    @property
    def pad_multiple(self) -> int:
        pad_to = self.spec.pad_to
        return int(getattr(self, pad_to)) if isinstance(pad_to, str) else int(pad_to or 1)

    @property
    def upscale_factor(self) -> int:
        if self.spec.fixed_scale:
            return self.spec.fixed_scale
        return int(self.hyperparameters[self.spec.scale_keys[0]])

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """(B, C, H, W) LR in the network's range (BasicSR: [0, 1]) -> (B, C, sH, sW) SR; any H, W (see
        pad_multiple). The output is contiguous NCHW (transformers' un-embedding would leave it channels-last,
        which BasicSR's VGGStyleDiscriminator cannot flatten)."""
        multiple = self.pad_multiple
        if multiple == 1 or (x.shape[-2] % multiple == 0 and x.shape[-1] % multiple == 0):
            return super().forward(x, *args, **kwargs).contiguous()
        height, width = x.shape[-2:]
        out = super().forward(pad_to_multiple(x, multiple), *args, **kwargs)
        scale = self.upscale_factor
        return out[..., :height * scale, :width * scale].contiguous()

    def fold_released_keys(self, state: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
        """Another released key layout of this architecture, mapped onto the official one (identity if none)."""
        return self.spec.fold(state) if self.spec.fold else state

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict`` after :meth:`fold_released_keys` (BasicSR's own loader calls this)."""
        return super().load_state_dict(self.fold_released_keys(state_dict), strict=strict, assign=assign)


def _spandrel_version() -> str:
    import spandrel
    return spandrel.__version__


@functools.lru_cache(maxsize=None)
def spandrel_class(name: str) -> type:
    """The BasicSR architecture class ``name`` (imports spandrel): spandrel's class with :class:`SpandrelSRNet`."""
    spec = BY_NAME[name]
    base = getattr(importlib.import_module(f'spandrel.architectures.{spec.module}'), spec.class_name)
    own = inspect.signature(base.__init__).parameters
    accepted = tuple(n for n, p in own.items() if n != 'self' and p.kind is inspect.Parameter.KEYWORD_ONLY)
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for n, p in own.items() if n in accepted]
    if USE_CHECKPOINT not in accepted:
        params.append(inspect.Parameter(USE_CHECKPOINT, inspect.Parameter.KEYWORD_ONLY, default=False))
    params.append(inspect.Parameter('unused_options', inspect.Parameter.VAR_KEYWORD))
    doc = (f'{name}: spandrel {_spandrel_version()}\'s ``{spec.module}.{spec.class_name}`` as a BasicSR '
           'architecture (official key layout); see aesop_basicsr.archs.spandrel_arch.')
    cls = type(name, (SpandrelSRNet, base), {
        'spec': spec, 'accepted': accepted, '__module__': __name__, '__qualname__': name, '__doc__': doc,
        '__signature__': inspect.Signature(params), 'scale_option_keys': spec.scale_keys,
        'fixed_scale': spec.fixed_scale})
    return cls


def __getattr__(name: str) -> type:  # PEP 562: ``from aesop_basicsr.archs.spandrel_arch import DRCT``
    if name in BY_NAME:
        return spandrel_class(name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


for _spec in ARCHITECTURES:
    add_fallback(ARCH_REGISTRY, _spec.name, functools.partial(spandrel_class, _spec.name))
