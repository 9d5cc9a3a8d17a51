"""AESOPLoss's speed/memory options, validated when the loss is built.

=================  =========================================================================
``precision``      ``fp32`` (default): two auto-encoder passes, subtracted, in true fp32
                   (TF32 kept out on CUDA). ``bf16``: the difference path in bfloat16
                   (:mod:`aesop_basicsr.losses.difference_path`); other decoders fall back to fp32,
                   and so does every device without native bf16 (decided at its first call).
``channels_last``  ``true`` (default): the auto-encoder runs on NHWC tensors; same values, faster.
``winograd``       ``auto`` (default) | ``true`` | ``false``: on CPU, the RRDB blocks' convolutions by
                   Winograd F(4x4, 3x3) (:mod:`aesop_basicsr.losses.winograd_rrdb`): fp32, 4x fewer
                   multiplications, values within ~1e-5 of direct convolution. ``auto``: where
                   PyTorch runs one intra-op thread (where it is faster: its small operations do
                   not scale with threads as oneDNN's convolutions do). No effect on CUDA.
``compile``        ``false`` (default) | ``true``: ``torch.compile`` the auto-encoder's blocks
                   (fp32; one graph serves all RRDBs).
``checkpoint``     ``false`` (default) | ``true``: recompute the pred pass block by block in
                   backward instead of keeping its activations.
=================  =========================================================================
"""
from dataclasses import dataclass
from typing import Union

PRECISIONS = ('fp32', 'bf16')


@dataclass(frozen=True)
class LossModes:
    precision: str = 'fp32'
    channels_last: bool = True
    compile: bool = False
    checkpoint: bool = False
    winograd: Union[bool, str] = 'auto'

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            hint = (' Plain fp16/bf16 autocast is inaccurate for AESOP (a difference of two nearly equal outputs); '
                    'bf16 runs the difference path instead.') if self.precision in ('fp16', 'amp') else ''
            raise ValueError(f'AESOPLoss: precision={self.precision!r} is unknown; choose one of '
                             f'{", ".join(PRECISIONS)}.{hint}')
        for key in ('channels_last', 'compile', 'checkpoint'):
            value = getattr(self, key)
            if not isinstance(value, bool):
                raise ValueError(f'AESOPLoss: {key}={value!r} must be true or false.')
        if not (isinstance(self.winograd, bool) or self.winograd == 'auto'):
            raise ValueError(f'AESOPLoss: winograd={self.winograd!r} must be auto, true or false.')
        if self.compile and self.precision != 'fp32':
            raise ValueError(f'AESOPLoss: compile=true applies to precision=fp32, not precision={self.precision!r} '
                             '(the difference path runs eagerly); drop one of them.')
        if self.compile and self.checkpoint:
            raise ValueError('AESOPLoss: compile=true and checkpoint=true cannot be combined (torch.compile '
                             'would trace through the recomputation); choose one: compile for speed, '
                             'checkpoint for memory.')
