"""What this machine computes natively: the CPU's name and kernel levels, and whether bf16 is native.

AESOPLoss's ``precision: bf16`` (the difference path) only pays where the device multiplies bf16 in
hardware. Elsewhere bf16 is emulated and slower than fp32: measured here, the paper's auto-encoder in
bf16 took 10x fp32's time with oneDNN limited to AVX2, and 2.2x with oneDNN limited to AVX-512 without
its BF16 extension (the issue's AVX2-only Zen 3 host: 17.5x the authors' fp32). So bf16 is native:

- on a CPU with AVX512-BF16 or AMX-BF16 instructions, unless oneDNN (PyTorch's convolution library)
  is kept below them by ``ONEDNN_MAX_CPU_ISA`` (or its old name ``DNNL_MAX_CPU_ISA``);
- on an NVIDIA GPU of compute capability 8.0 (Ampere) or later.

``ATEN_CPU_CAPABILITY`` (PyTorch's own vectorised kernels) does not decide it: the convolutions run
in oneDNN, and with ATen kernels at AVX2 the bf16 path stayed 1.6x faster than fp32 here.
"""
import os
import platform
from functools import lru_cache
from typing import FrozenSet, NamedTuple, Optional

import torch

# oneDNN's ONEDNN_MAX_CPU_ISA values (oneDNN docs, "CPU Dispatcher Control") whose instruction sets
# include bf16 dot products; anything lower (SSE41 .. AVX512_CORE_VNNI, AVX2_VNNI_2) emulates bf16.
ONEDNN_BF16_ISAS = frozenset({
    'AVX512_CORE_BF16', 'AVX512_CORE_FP16', 'AVX10_1_512', 'AVX512_CORE_AMX', 'AVX10_1_512_AMX',
    'AVX512_CORE_AMX_FP16', 'AVX10_1_512_AMX_FP16', 'AVX10_2_512', 'AVX10_2_512_AMX_2', 'ALL'})
ONEDNN_ISA_VARIABLES = ('ONEDNN_MAX_CPU_ISA', 'DNNL_MAX_CPU_ISA')
CPU_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')  # /proc/cpuinfo names
MIN_CUDA_BF16_CAPABILITY = (8, 0)


class NativeBF16(NamedTuple):
    """Whether a device multiplies bf16 in hardware, and why (one sentence, for the log)."""
    native: bool
    reason: str


@lru_cache(maxsize=1)
def cpu_flags() -> FrozenSet[str]:
    """The CPU's feature flags as Linux reports them (empty where /proc/cpuinfo is unavailable)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return frozenset(line.split(':', 1)[1].split())
    except OSError:
        pass
    return frozenset()


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name with its family and model numbers, e.g. ``AMD EPYC (family 25, model 17)``.

    The numbers tell generations apart where a virtual machine reports a generic name (AMD family 25:
    model 1 is Zen 3 "Milan", model 17 Zen 4 "Genoa").
    """
    fields = {}
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                key = key.strip()
                if key in ('model name', 'cpu family', 'model') and key not in fields:
                    fields[key] = value.strip()
                if not line.strip():  # the first processor is enough
                    break
    except OSError:
        pass
    name = fields.get('model name') or platform.processor() or platform.machine() or 'unknown CPU'
    if 'cpu family' in fields and 'model' in fields:
        name += f' (family {fields["cpu family"]}, model {fields["model"]})'
    return name


def aten_cpu_capability() -> str:
    """The vector level of PyTorch's own CPU kernels (``DEFAULT``, ``AVX2``, ``AVX512``, ...), after
    ``ATEN_CPU_CAPABILITY``."""
    get = getattr(getattr(torch.backends, 'cpu', None), 'get_cpu_capability', None)
    return get() if get is not None else 'unknown'


def onednn_isa_limit() -> Optional[str]:
    """The instruction-set limit given to oneDNN through the environment, upper case, or None."""
    for name in ONEDNN_ISA_VARIABLES:
        value = os.environ.get(name, '').strip()
        if value:
            return value.upper()
    return None


def cpu_has_bf16_instructions() -> bool:
    """AVX512-BF16 or AMX-BF16 in hardware (PyTorch's cpuinfo query where it has one, else /proc/cpuinfo)."""
    queries = [getattr(torch.cpu, name, None) for name in ('_is_avx512_bf16_supported', '_is_amx_tile_supported')]
    if all(query is not None for query in queries):
        return any(query() for query in queries)
    return any(flag in cpu_flags() for flag in CPU_BF16_FLAGS)


def native_bf16(device: torch.device) -> NativeBF16:
    """Whether ``device`` computes bf16 natively (see the module docstring for the rule)."""
    if device.type == 'cuda':
        capability = torch.cuda.get_device_capability(device)
        name = torch.cuda.get_device_name(device)
        if tuple(capability) >= MIN_CUDA_BF16_CAPABILITY:
            return NativeBF16(True, f'{name} (compute capability {capability[0]}.{capability[1]}) has bf16 tensor '
                                    'cores')
        return NativeBF16(False, f'{name} has compute capability {capability[0]}.{capability[1]}, below the 8.0 '
                                 'that native bf16 needs')
    if device.type != 'cpu':
        return NativeBF16(False, f'native bf16 is not known for {device.type} devices')
    if not cpu_has_bf16_instructions():
        return NativeBF16(False, f'this CPU ({cpu_model()}) has no AVX512-BF16 or AMX-BF16 instructions, so bf16 '
                                 'would be emulated (measured: 2-10x slower than fp32)')
    limit = onednn_isa_limit()
    if limit is not None and limit not in ONEDNN_BF16_ISAS:
        return NativeBF16(False, f'oneDNN is limited to {limit} (ONEDNN_MAX_CPU_ISA), below AVX512_CORE_BF16, so '
                                 'bf16 would be emulated (measured: 2-10x slower than fp32)')
    return NativeBF16(True, f'this CPU ({cpu_model()}) has bf16 instructions')


def describe_cpu() -> str:
    """One line for benchmark headers: model, PyTorch's kernel level, oneDNN limit, native bf16, threads."""
    limit = onednn_isa_limit()
    bf16 = native_bf16(torch.device('cpu'))
    return (f'CPU: {cpu_model()}; PyTorch CPU capability {aten_cpu_capability()}'
            f'{f"; oneDNN limited to {limit}" if limit else ""}; native bf16: {"yes" if bf16.native else "no"}; '
            f'{torch.get_num_threads()} thread(s); torch {torch.__version__}')
