"""``psi(pred) - psi(target)`` (Eq. 8's inner difference) in the mode :class:`LossModes` asks for.

Holds no parameters of its own: the auto-encoder stays the loss's only network, so nothing here
reaches a state dict or a training checkpoint.
"""
import logging
import shutil
from typing import Callable, Dict, Optional

import torch
from torch import Tensor, nn

from aesop_basicsr.losses.blockwise_forward import blockwise_decoder, blockwise_forward, recompute_block
from aesop_basicsr.losses.difference_path import DifferencePath, supports_difference_path
from aesop_basicsr.losses.exact_fp32 import run_exact_fp32
from aesop_basicsr.losses.loss_modes import LossModes
from aesop_basicsr.losses.winograd_rrdb import WinogradRRDB
from aesop_basicsr.utils.device_support import native_bf16


class AutoEncoderPasses:
    """The auto-encoder passes of AESOPLoss.

    Args:
        net: The frozen auto-encoder psi (channels-last conversion is done here if asked).
        modes: Validated options.
        logger: Where the fallbacks are reported (one line each).
    """

    def __init__(self, net: nn.Module, modes: LossModes, logger: logging.Logger) -> None:
        self.net = net
        self.modes = modes
        self.logger = logger
        self.memory_format = torch.channels_last if modes.channels_last else torch.contiguous_format
        if modes.channels_last:
            net.to(memory_format=torch.channels_last)
        name = type(getattr(net, 'decoder', net)).__name__
        self.precision = modes.precision
        if modes.precision == 'bf16' and not supports_difference_path(net):
            logger.warning(f'AESOPLoss: precision=bf16 needs the difference path, which covers AESOPAutoEncoder '
                           f'with an RRDBNet decoder, not {name}; running in fp32.')
            self.precision = 'fp32'
        if modes.checkpoint and not blockwise_decoder(net):
            logger.warning(f'AESOPLoss: checkpoint=true recomputes the {name} decoder as one segment (blocks are '
                           'known for RRDBNet only), so it saves less memory.')
        self.difference_path: Optional[DifferencePath] = None
        self._bf16_native: Dict[str, bool] = {}  # per device, decided at its first call
        if self.precision == 'bf16':
            self.difference_path = DifferencePath(net, torch.bfloat16, modes.channels_last, modes.checkpoint,
                                                  target_dtype=torch.bfloat16)
        # checkpoint=true trades speed for memory: the transformed kernels are recomputed there, not kept
        self.winograd = WinogradRRDB(cache_kernels=not modes.checkpoint) if modes.winograd else None
        self._compiled: Optional[Callable[..., Tensor]] = None
        self._compile_failed = False
        if modes.compile and not compile_available():
            logger.warning('AESOPLoss: compile=true, but torch.compile is unavailable here (no C++ compiler or '
                           'unsupported platform); running without compilation.')
            self._compile_failed = True

    def __call__(self, target: Tensor, pred: Tensor) -> Tensor:
        """``psi(pred) - psi(target)`` in ``target``'s dtype; the gradient reaches ``pred`` only."""
        return run_exact_fp32(lambda p: self._difference(target, p), pred)

    def _difference(self, target: Tensor, pred: Tensor) -> Tensor:
        if self.difference_path is not None and self.bf16_native_on(target.device):
            return self.difference_path(target, pred)
        target = target.contiguous(memory_format=self.memory_format)
        pred = pred.contiguous(memory_format=self.memory_format)
        if self.modes.compile and not self._compile_failed:
            try:
                with torch.no_grad():
                    target_ae = blockwise_forward(self.net, target, self._compiled_run)
                return blockwise_forward(self.net, pred, self._compiled_run) - target_ae
            except Exception as error:  # noqa: BLE001  (a compiler failure must not end training)
                self.logger.warning(f'AESOPLoss: torch.compile failed ({type(error).__name__}: {str(error)[:200]}); '
                                    'running without compilation.')
                self._compile_failed = True
        with torch.no_grad():
            target_ae = self._forward(target)
        return self._forward(pred) - target_ae

    def bf16_native_on(self, device: torch.device) -> bool:
        """Whether ``precision: bf16`` runs the difference path on ``device``: only where bf16 is native
        (emulated bf16 is slower than fp32); otherwise fp32, said once per device in the log."""
        key = str(device)
        if key not in self._bf16_native:
            native, reason = native_bf16(device)
            self._bf16_native[key] = native
            if not native:
                self.logger.warning(f'AESOPLoss: precision=bf16 runs in fp32 on {key}: {reason}.')
        return self._bf16_native[key]

    def _forward(self, x: Tensor) -> Tensor:
        """psi(x), block by block where Winograd or checkpointing needs the blocks."""
        run = self._winograd_block if self._winograd_now() else call_segment
        if self.modes.checkpoint and torch.is_grad_enabled() and x.requires_grad:
            return blockwise_forward(self.net, x, lambda segment, *inputs: recompute_block(
                lambda *args: run(segment, *args), *inputs))
        return self.net(x) if run is call_segment else blockwise_forward(self.net, x, run)

    def _winograd_now(self) -> bool:
        """``winograd: true``, or ``auto`` with one intra-op thread (where it is the faster)."""
        return self.winograd is not None and (self.modes.winograd is True or torch.get_num_threads() == 1)

    def _winograd_block(self, segment: Callable[..., Tensor], *inputs: Tensor) -> Tensor:
        if WinogradRRDB.applies(segment, inputs[0]):
            return self.winograd(segment, inputs[0])
        return segment(*inputs)

    def _compiled_run(self, segment: Callable[..., Tensor], *inputs: Tensor) -> Tensor:
        """Modules (the RRDB blocks above all) through one compiled function; glue code eagerly."""
        if not isinstance(segment, nn.Module):
            return segment(*inputs)
        if self._compiled is None:
            self._compiled = torch.compile(call_module)
        return self._compiled(segment, *inputs)


def call_module(module: nn.Module, *inputs: Tensor) -> Tensor:
    return module(*inputs)


def call_segment(segment: Callable[..., Tensor], *inputs: Tensor) -> Tensor:
    return segment(*inputs)


def compile_available() -> bool:
    """torch.compile can run here: dynamo supports the platform and a C++ compiler exists (CPU inductor)."""
    try:
        import torch._dynamo
        if not torch._dynamo.is_dynamo_supported():
            return False
    except Exception:  # noqa: BLE001
        return False
    return shutil.which('c++') is not None or shutil.which('g++') is not None or shutil.which('gcc') is not None

