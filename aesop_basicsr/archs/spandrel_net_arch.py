"""``SpandrelNet``: any released SR model file, its architecture found by spandrel's auto-detection.

spandrel's ``ModelLoader`` recognises about 40 architectures from a state dict's keys and shapes
(ESRGAN in the old and new key layouts, Real-ESRGAN, SwinIR, HAT, DAT, DRCT, SPAN, ...), builds the
network with the detected hyperparameters and loads the weights. ``network_g: {type: SpandrelNet,
model_path: FILE}`` makes that network a BasicSR one, e.g. to test the original ESRGAN release
``RRDB_ESRGAN_x4.pth`` as it is (no key conversion). The weights come from ``model_path``: leave
``path: pretrain_network_g`` empty. Its state dict is ``model.`` + the detected network's (spandrel's
layout for that architecture), so BasicSR's own checkpoints of a SpandrelNet resume and load as usual.
"""
from typing import Any, Optional

from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from aesop_basicsr.archs.spandrel_arch import log_unused_options, pad_to_multiple
from aesop_basicsr.utils.checkpoint import read_checkpoint, select_params
from aesop_basicsr.utils.cli import CheckpointError
from aesop_basicsr.utils.registry import register

MODEL_PATH_KEY = 'model_path'


@register(ARCH_REGISTRY)
class SpandrelNet(nn.Module):
    """A network built and loaded by spandrel from a model file.

    Args:
        model_path: ``.pth``/``.ckpt`` (read with ``weights_only=True``) or ``.safetensors`` model file.
        param_key: Key of the state dict in the file (``params``, ``params_ema``, ...); default ``~``: the
            file's own nesting as spandrel reads it (``params_ema`` before ``params``, or a bare state dict).
        **unused_options: accepted and named once in the log (the file decides the architecture).

    Attributes:
        architecture: spandrel's id of the detected architecture (e.g. ``ESRGAN``).
        scale: Its upscaling factor.

    Shapes: (B, C_in, H, W) -> (B, C_out, scale·H, scale·W); the input is padded to the architecture's
    size requirements (reflect, then replicate) and the output cropped.

    Raises:
        MissingFileError, CheckpointError: the file is missing, unreadable, or holds no architecture
            spandrel recognises (or not an image-to-image one).
        OptionKeyError: ``param_key`` is not in the file.
    """

    def __init__(self, model_path: str, param_key: Optional[str] = None, **unused_options: Any):
        super().__init__()
        import spandrel
        log_unused_options('SpandrelNet', tuple(sorted(unused_options)), 'the model file decides the architecture')
        checkpoint = read_checkpoint(model_path, MODEL_PATH_KEY)
        state = select_params(checkpoint, param_key, model_path, 'param_key') if param_key else checkpoint
        try:
            descriptor = spandrel.ModelLoader().load_from_state_dict(state)
        except spandrel.UnsupportedModelError:
            raise CheckpointError(f'{MODEL_PATH_KEY}: {model_path!r} holds no architecture that spandrel '
                                  f'{spandrel.__version__} recognises.') from None
        except Exception as err:  # a known architecture whose tensors do not fit it
            reason = ' '.join(str(err).split()[:40])
            raise CheckpointError(f'{MODEL_PATH_KEY}: spandrel {spandrel.__version__} could not build the network '
                                  f'of {model_path!r} ({type(err).__name__}: {reason}).') from err
        if not isinstance(descriptor, spandrel.ImageModelDescriptor):
            raise CheckpointError(f'{MODEL_PATH_KEY}: {model_path!r} is a {descriptor.architecture.name} model, '
                                  'not an image-to-image (SR/restoration) one.')
        self.model = descriptor.model
        self.architecture: str = descriptor.architecture.id
        self.scale: int = descriptor.scale
        self.size_multiple: int = descriptor.size_requirements.multiple_of
        self.size_minimum: int = descriptor.size_requirements.minimum
        get_root_logger().info(
            f'SpandrelNet: {model_path} is {descriptor.architecture.name} x{self.scale} '
            f'({", ".join(descriptor.tags) or "no tags"}; {sum(p.numel() for p in self.parameters())} parameters), '
            f'detected by spandrel {spandrel.__version__}.')

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        out = self.model(pad_to_multiple(x, self.size_multiple, self.size_minimum))
        return out[..., :height * self.scale, :width * self.scale]
