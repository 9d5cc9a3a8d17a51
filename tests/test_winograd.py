"""Winograd F(4x4, 3x3) and the Winograd RRDB: equal to direct convolution and BasicSR's RRDB in float64."""
import copy

import pytest
import torch
import torch.nn.functional as F
from basicsr.archs.arch_util import default_init_weights
from basicsr.archs.rrdbnet_arch import RRDB
from basicsr.losses import build_loss

from aesop_basicsr.losses import winograd_rrdb
from aesop_basicsr.losses.winograd import (input_transform, input_transform_adjoint, output_transform,
                                           output_transform_adjoint, transform_weight)
from aesop_basicsr.losses.winograd_rrdb import WinogradKernels, WinogradRRDB


def nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous()


def winograd_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """NCHW 3x3 convolution (padding 1, no bias) by the Winograd transforms."""
    n, c, h, w = x.shape
    domain = x.new_empty(36, n * (h // 4) * (w // 4), c)
    input_transform(nhwc(x), domain)
    return output_transform(torch.bmm(domain, transform_weight(weight)), n, h, w).permute(0, 3, 1, 2)


def test_winograd_convolution_equals_direct_convolution_in_float64():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8, 12, dtype=torch.float64)
    weight = torch.randn(7, 5, 3, 3, dtype=torch.float64)
    assert torch.allclose(winograd_conv(x, weight), F.conv2d(x, weight, padding=1), rtol=0, atol=1e-12)


def test_winograd_convolution_in_fp32_is_within_fp32_rounding_of_float64():
    torch.manual_seed(0)
    x, weight = torch.rand(1, 32, 16, 16), torch.randn(16, 32, 3, 3) * 0.1
    exact = F.conv2d(x.double(), weight.double(), padding=1)
    error = (winograd_conv(x, weight).double() - exact).abs().max() / exact.abs().max()
    assert 0 < error < 1e-5


def test_each_transform_has_its_adjoint():
    """<T x, y> == <x, T* y>: backward uses the adjoints, so a wrong one would give wrong gradients."""
    torch.manual_seed(0)
    n, h, w, c = 2, 8, 12, 3
    tiles = n * (h // 4) * (w // 4)
    x, y = torch.randn(n, h, w, c, dtype=torch.float64), torch.randn(36, tiles, c, dtype=torch.float64)
    transformed = x.new_empty(36, tiles, c)
    input_transform(x, transformed)
    assert torch.allclose((transformed * y).sum(), (x * input_transform_adjoint(y, n, h, w)).sum(), atol=1e-9)
    z = torch.randn(n, h, w, c, dtype=torch.float64)
    assert torch.allclose((output_transform(y, n, h, w) * z).sum(), (y * output_transform_adjoint(z)).sum(),
                          atol=1e-9)


@pytest.fixture(scope='module')
def block():
    torch.manual_seed(0)
    rrdb = RRDB(16, 8)
    default_init_weights(rrdb, 1)  # BasicSR scales its init by 0.1; full scale makes every layer matter
    for module in rrdb.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.bias.data.uniform_(-0.1, 0.1)
    return rrdb.double().requires_grad_(False)


def test_winograd_rrdb_equals_basicsr_rrdb_in_float64_forward_and_backward(block):
    torch.manual_seed(1)
    x = torch.randn(2, 16, 8, 12, dtype=torch.float64)
    probe = torch.randn(2, 16, 8, 12, dtype=torch.float64)
    outputs, grads = [], []
    for forward in (block, lambda t: WinogradRRDB()(block, t)):
        inp = x.clone().requires_grad_(True)
        out = forward(inp)
        out.backward(probe)
        outputs.append(out)
        grads.append(inp.grad)
    assert outputs[1].shape == outputs[0].shape
    assert outputs[0].std() > 0.5 * x.std()  # the block changes its input: the test compares real work
    assert torch.allclose(outputs[1], outputs[0], rtol=0, atol=1e-10)
    assert torch.allclose(grads[1], grads[0], rtol=0, atol=1e-10)


def test_winograd_rrdb_follows_weights_loaded_after_its_first_call(block):
    net, run = copy.deepcopy(block), WinogradRRDB()
    x = torch.randn(1, 16, 8, 8, dtype=torch.float64)
    run(net, x)
    with torch.no_grad():
        net.rdb2.conv3.weight.mul_(-2)
    assert torch.allclose(run(net, x), net(x), atol=1e-10)


def test_kept_kernels_are_reused_until_their_weight_changes_and_recomputed_ones_are_not_kept(block):
    net = copy.deepcopy(block)
    conv, other = net.rdb1.conv1, net.rdb1.conv2
    kept = WinogradKernels(cache=True)
    first = kept(conv, torch.float64)
    assert kept(conv, torch.float64) is first  # no recomputation per call: that is the speed it is kept for
    assert torch.equal(kept(other, torch.float64), transform_weight(other.weight))  # one kernel per convolution
    with torch.no_grad():
        conv.weight.mul_(3)
    assert torch.allclose(kept(conv, torch.float64), 3 * first)
    recomputed = WinogradKernels(cache=False)
    assert recomputed(conv, torch.float64) is not recomputed(conv, torch.float64)
    lean, fast = WinogradRRDB(cache_kernels=False).kernels, WinogradRRDB().kernels
    assert lean(conv, torch.float64) is not lean(conv, torch.float64)
    assert fast(conv, torch.float64) is fast(conv, torch.float64)


def test_transform_weight_needs_3x3_kernels():
    with pytest.raises(ValueError, match='needs 3x3 kernels, not \\(4, 2, 5, 5\\)'):
        transform_weight(torch.zeros(4, 2, 5, 5))


def test_only_sizes_that_tile_by_four_on_cpu_take_the_winograd_path(block):
    assert WinogradRRDB.applies(block, torch.zeros(1, 16, 8, 12))
    assert not WinogradRRDB.applies(block, torch.zeros(1, 16, 9, 12))
    assert not WinogradRRDB.applies(block, torch.zeros(1, 16, 8, 10))  # the width too
    assert not WinogradRRDB.applies(block, torch.zeros(1, 16, 8, 8, dtype=torch.bfloat16))
    assert not WinogradRRDB.applies(torch.nn.Conv2d(16, 16, 3), torch.zeros(1, 16, 8, 8))


AE = dict(type='AESOPAutoEncoder', scale=4, num_feat=16, num_grow_ch=8, num_block=1,
          decoder=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=16, num_block=2, num_grow_ch=8, scale=4))


@pytest.mark.parametrize('winograd, threads, size, winograd_blocks', [
    ('auto', 1, 32, 3),  # LR 8: all three RRDBs (encoder 1, decoder 2)
    ('auto', 1, 36, 0),  # LR 9 does not tile by 4: direct convolution
    ('auto', 2, 32, 0),  # more threads: direct convolution, which scales with them
    (True, 2, 32, 3),
    (False, 1, 32, 0),
])
def test_aesop_loss_runs_its_rrdbs_by_winograd_where_asked_and_they_tile(winograd, threads, size, winograd_blocks,
                                                                          monkeypatch):
    calls = []
    original = winograd_rrdb.WinogradDenseBlock.apply
    monkeypatch.setattr(winograd_rrdb.WinogradDenseBlock, 'apply',
                        lambda *args: calls.append(1) or original(*args))
    monkeypatch.setattr(torch, 'get_num_threads', lambda: threads)  # what the loss reads; the real count stays
    torch.manual_seed(0)
    loss = build_loss(dict(type='AESOPLoss', autoencoder=AE, winograd=winograd))
    default_init_weights(loss.autoencoder, 1)
    target = torch.rand(1, 3, size, size)
    pred = (target + 0.05 * torch.randn_like(target)).requires_grad_(True)
    value = loss(pred, target)
    value.backward()
    assert len(calls) == 2 * 3 * winograd_blocks  # two passes, three dense blocks per RRDB
    net = copy.deepcopy(loss.autoencoder).double()
    pred64 = pred.detach().double().requires_grad_(True)
    reference = F.l1_loss(net(pred64), net(target.double()))
    reference.backward()
    assert abs(value.item() - reference.item()) <= 1e-5 * reference.item()
    assert F.cosine_similarity(pred.grad.double().flatten(), pred64.grad.flatten(), 0) > 0.99999
