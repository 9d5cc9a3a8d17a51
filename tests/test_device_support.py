"""Reduced precision only where the hardware has it: the native-bf16 rule and AESOPLoss's use of it."""
from collections import Counter

import pytest
import torch
from basicsr.archs.arch_util import default_init_weights
from basicsr.losses import build_loss

from aesop_basicsr.losses import autoencoder_passes
from aesop_basicsr.losses.difference_path import DifferencePath
from aesop_basicsr.utils import device_support
from aesop_basicsr.utils.device_support import NativeBF16, native_bf16

CPU = torch.device('cpu')
TINY_AE = dict(type='AESOPAutoEncoder', scale=4, num_feat=16, num_grow_ch=4, num_block=1,
               decoder=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4,
                            scale=4))


@pytest.fixture
def no_onednn_limit(monkeypatch):
    for name in device_support.ONEDNN_ISA_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize('instructions, limit, native', [
    (True, None, True),
    (True, 'ALL', True),
    (True, 'avx512_core_bf16', True),   # oneDNN reads the value case-insensitively
    (True, 'AVX512_CORE_AMX', True),
    (True, 'AVX2', False),              # the AVX2 settings on an AVX512-BF16 machine
    (True, 'AVX512_CORE', False),       # AVX-512 without its BF16 extension: emulated (2.2x fp32's time here)
    (True, 'AVX512_CORE_VNNI', False),
    (False, None, False),               # AVX2-only Zen 3, AVX-512 Skylake/Ice Lake
    (False, 'ALL', False),
])
def test_cpu_bf16_is_native_only_with_bf16_instructions_that_onednn_may_use(monkeypatch, no_onednn_limit,
                                                                            instructions, limit, native):
    monkeypatch.setattr(device_support, 'cpu_has_bf16_instructions', lambda: instructions)
    if limit is not None:
        monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', limit)
    decision = native_bf16(CPU)
    assert decision.native is native
    if not native:
        assert ('oneDNN is limited to ' + limit.upper() if instructions else 'no AVX512-BF16 or AMX-BF16') \
            in decision.reason


def test_the_old_name_of_onednns_variable_counts_too(monkeypatch, no_onednn_limit):
    monkeypatch.setattr(device_support, 'cpu_has_bf16_instructions', lambda: True)
    monkeypatch.setenv('DNNL_MAX_CPU_ISA', 'avx2')
    assert not native_bf16(CPU).native


@pytest.mark.parametrize('flags, expected', [({'avx2', 'avx512_bf16'}, True), ({'amx_bf16', 'amx_tile'}, True),
                                             ({'avx2', 'avx512f', 'avx512bw'}, False), (set(), False)])
def test_without_pytorchs_cpuinfo_query_the_kernels_flags_decide(monkeypatch, flags, expected):
    """torch < 2.3 has no torch.cpu._is_avx512_bf16_supported: /proc/cpuinfo's flags are read instead."""
    monkeypatch.delattr(torch.cpu, '_is_avx512_bf16_supported', raising=False)
    monkeypatch.setattr(device_support, 'cpu_flags', lambda: frozenset(flags))
    assert device_support.cpu_has_bf16_instructions() is expected


def test_pytorchs_cpuinfo_query_agrees_with_the_kernels_flags():
    if not hasattr(torch.cpu, '_is_avx512_bf16_supported') or not device_support.cpu_flags():
        pytest.skip('needs both PyTorch\'s cpuinfo query and /proc/cpuinfo')
    flags = device_support.cpu_flags()
    assert device_support.cpu_has_bf16_instructions() == any(f in flags for f in device_support.CPU_BF16_FLAGS)


@pytest.mark.parametrize('capability, native', [((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_cuda_bf16_is_native_from_compute_capability_8(monkeypatch, capability, native):
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda device=None: 'Some GPU')
    decision = native_bf16(torch.device('cuda', 0))
    assert decision.native is native
    assert f'{capability[0]}.{capability[1]}' in decision.reason


def test_describe_cpu_names_the_model_capability_and_bf16(monkeypatch):
    monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', 'AVX2')
    line = device_support.describe_cpu()
    assert device_support.cpu_model() in line
    assert f'PyTorch CPU capability {torch.backends.cpu.get_cpu_capability()}' in line
    assert 'oneDNN limited to AVX2' in line and 'native bf16: no' in line


# ---------------------------------------------------------------- AESOPLoss precision: bf16

@pytest.fixture
def difference_path_calls(monkeypatch):
    calls = Counter()
    original = DifferencePath.__call__

    def counted(self, target, pred):
        calls['difference path'] += 1
        return original(self, target, pred)

    monkeypatch.setattr(DifferencePath, '__call__', counted)
    return calls


def signal_loss(**options):
    torch.manual_seed(0)
    loss = build_loss(dict(type='AESOPLoss', autoencoder=TINY_AE, **options))
    default_init_weights(loss.autoencoder, 0.8)
    return loss


def pair():
    torch.manual_seed(1)
    target = torch.rand(1, 3, 16, 16)
    return target + 0.05 * torch.randn_like(target), target


@pytest.mark.parametrize('native', [False, True])
def test_bf16_runs_the_difference_path_only_where_bf16_is_native(monkeypatch, log_lines, difference_path_calls,
                                                                  native):
    monkeypatch.setattr(autoencoder_passes, 'native_bf16', lambda device: NativeBF16(native, 'the reason given'))
    bf16, fp32 = signal_loss(precision='bf16'), signal_loss()
    pred, target = pair()
    for _ in range(2):
        value = bf16(pred, target)
    fallback = [m for m in log_lines if 'precision=bf16' in m]
    if native:
        assert difference_path_calls['difference path'] == 2 and not fallback
    else:
        # no emulated bf16 (slower than fp32): the fp32 passes themselves, said once with the reason
        assert difference_path_calls['difference path'] == 0
        assert fallback == ['AESOPLoss: precision=bf16 runs in fp32 on cpu: the reason given.']
        assert torch.equal(value, fp32(pred, target))  # the same fp32 code path, the same numbers


def test_bf16_decides_per_device_from_this_machine(monkeypatch, log_lines, difference_path_calls):
    """No stand-in for the rule: on this CPU, with oneDNN limited to AVX2 (as on an AVX2-only host), fp32 runs."""
    monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', 'AVX2')
    loss = signal_loss(precision='bf16')
    loss(*pair())
    assert difference_path_calls['difference path'] == 0
    assert any('oneDNN is limited to AVX2' in m for m in log_lines) or any('no AVX512-BF16' in m for m in log_lines)
