"""AESOPLoss's precision / checkpoint / compile / channels_last / winograd modes against a float64 Eq. 8, on real images."""
import copy

import pytest
import numpy as np
import torch
import torch.nn.functional as F
from basicsr.archs.arch_util import default_init_weights
from basicsr.losses import build_loss
from basicsr.utils import img2tensor

from aesop_basicsr.losses import autoencoder_passes
from aesop_basicsr.losses.difference_path import DifferencePath, supports_difference_path
from aesop_basicsr.losses.exact_fp32 import ExactBackward, exact_fp32
from aesop_basicsr.utils.device_support import NativeBF16
from aesop_basicsr.utils.sample_data import load_photo, matlab_bicubic_resize

SMALL_AE = dict(type='AESOPAutoEncoder', scale=4, num_feat=48, num_grow_ch=8, num_block=1,
                decoder=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=16, num_block=2, num_grow_ch=8,
                             scale=4))
MODES = {
    'default': {},
    'winograd': dict(winograd=True),
    'winograd off': dict(winograd=False),
    'contiguous': dict(channels_last=False),
    'checkpoint': dict(checkpoint=True),
    'bf16': dict(precision='bf16'),
    'bf16 checkpoint': dict(precision='bf16', checkpoint=True),
}
TOLERANCE = {'fp32': (1e-4, 0.9999), 'bf16': (1e-2, 0.99)}  # (loss rel. error, gradient cosine) vs float64


@pytest.fixture(autouse=True)
def difference_path_on_every_cpu(monkeypatch):
    """Run the bf16 difference path whatever this CPU has: its numbers are what these tests check, and emulated
    bf16 rounds as native bf16 does (only slower). Whether it runs is tested in test_device_support.py."""
    monkeypatch.setattr(autoencoder_passes, 'native_bf16', lambda device: NativeBF16(True, 'forced by the test'))


@pytest.fixture(scope='module')
def signal_state():
    """Weights whose auto-encoder output depends on its input (kaiming x 0.8, random biases)."""
    torch.manual_seed(0)
    net = build_loss(dict(type='AESOPLoss', autoencoder=SMALL_AE, channels_last=False)).autoencoder
    default_init_weights(net, 0.8)
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.bias.data.uniform_(-0.05, 0.05)
    return copy.deepcopy(net.state_dict())


def build(state, **modes):
    loss = build_loss(dict(type='AESOPLoss', autoencoder=SMALL_AE, **modes))
    loss.autoencoder.load_state_dict(state)
    return loss


def rgb_batch(*images_bgr: np.ndarray) -> torch.Tensor:
    """BGR uint8 images (as loaded) -> an (N, 3, H, W) RGB batch in [0, 1], by BasicSR's img2tensor."""
    return torch.stack(img2tensor([image.astype(np.float32) / 255. for image in images_bgr]))


def photos(size: int = 32) -> torch.Tensor:
    crops = [load_photo(name)[100:100 + size, 150:150 + size] for name in ('astronaut',)]
    return rgb_batch(*crops)


@pytest.fixture(scope='module')
def cases():
    """(pred, target) pairs: Gaussian residuals 0.05 and 0.01 on photos, and a bicubic SR of a real HR."""
    target = photos()
    torch.manual_seed(1)
    hr = load_photo('chelsea')[50:82, 100:132]
    sr = matlab_bicubic_resize(matlab_bicubic_resize(hr, 0.25), 4)

    return {'residual 0.05': (target + 0.05 * torch.randn_like(target), target),
            'residual 0.01': (target + 0.01 * torch.randn_like(target), target),
            'real SR/HR': (rgb_batch(sr), rgb_batch(hr))}


def loss_and_grad(loss, pred, target):
    pred = pred.detach().clone().requires_grad_(True)
    value = loss(pred, target)
    value.backward()
    return value.detach(), pred.grad.detach()


@pytest.fixture(scope='module')
def float64_reference(signal_state, cases):
    net = build(signal_state, channels_last=False).autoencoder.double()
    return {case: loss_and_grad(lambda p, t: F.l1_loss(net(p), net(t)), pred.double(), target.double())
            for case, (pred, target) in cases.items()}


def test_the_autoencoder_carries_signal(signal_state, cases):
    net = build(signal_state).autoencoder
    pred, target = cases['residual 0.05']
    with torch.no_grad():
        out = net(target)
        assert 0.1 < out.std() < 10
        assert (net(pred) - out).abs().mean() > 0.2 * (pred - target).abs().mean()


@pytest.mark.parametrize('mode', MODES)
def test_each_mode_matches_float64_eq8(mode, signal_state, cases, float64_reference):
    loss = build(signal_state, **MODES[mode])
    max_error, min_cosine = TOLERANCE[MODES[mode].get('precision', 'fp32')]
    for case, (pred, target) in cases.items():
        value, grad = loss_and_grad(loss, pred, target)
        ref_value, ref_grad = float64_reference[case]
        assert value.dtype == torch.float32
        assert abs(value.double() - ref_value) / ref_value <= max_error, (mode, case)
        assert F.cosine_similarity(grad.double().flatten(), ref_grad.flatten(), 0) >= min_cosine, (mode, case)


def test_plain_bf16_autocast_is_what_the_difference_path_avoids(signal_state, cases):
    """The tolerance has teeth: near GT, naive bf16 autocast of the same network is far off, bf16 mode is not."""
    net = build(signal_state).autoencoder
    bf16 = build(signal_state, precision='bf16')
    target = cases['residual 0.01'][1]
    torch.manual_seed(4)
    pred = target + 0.002 * torch.randn_like(target)
    net64 = copy.deepcopy(net).double()
    ref_value = F.l1_loss(net64(pred.double()), net64(target.double())).detach()

    def autocast_loss(p, t):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            return F.l1_loss(net(p).float(), net(t).float())

    autocast_error, bf16_error = (abs(loss_and_grad(loss, pred, target)[0].double() - ref_value) / ref_value
                                  for loss in (autocast_loss, bf16))
    assert bf16_error < 1e-2 and autocast_error > 10 * bf16_error


def test_difference_path_is_the_plain_path_in_float64_layer_by_layer(signal_state):
    net = build(signal_state, channels_last=False).autoencoder.double()
    assert supports_difference_path(net)
    path = DifferencePath(net, torch.float64, channels_last=False)
    torch.manual_seed(3)
    a, d = torch.randn(2, 16, 8, 8, dtype=torch.float64), 0.1 * torch.randn(2, 16, 8, 8, dtype=torch.float64)
    rrdb = net.decoder.body[0]
    layers = {'conv': (path.conv, rrdb.rdb1.conv1),
              'lrelu': (path.lrelu, rrdb.rdb1.lrelu),
              'dense block': (path.rdb, rrdb.rdb1),
              'rrdb': (path.rrdb, rrdb)}
    with torch.no_grad():
        for name, (step, module) in layers.items():
            x = a[:, :module.in_channels] if name == 'conv' else a
            dx = d[:, :x.shape[1]]
            out_a, out_d = step(module, (x, dx))
            expected = module(x.clone())
            assert torch.allclose(out_a, expected, rtol=0, atol=1e-12), name
            assert torch.allclose(out_d, module(x + dx) - expected, rtol=0, atol=1e-10), name
        image = photos(32).double()
        pred = image + 0.05 * torch.randn_like(image)
        assert torch.allclose(path(image, pred), net(pred) - net(image), rtol=0, atol=1e-10)


@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
def test_checkpointing_changes_nothing_numerically(precision, signal_state, cases):
    plain = build(signal_state, precision=precision)
    recomputed = build(signal_state, precision=precision, checkpoint=True)
    for case in ('residual 0.01', 'real SR/HR'):
        pred, target = cases[case]
        value, grad = loss_and_grad(plain, pred, target)
        value_ck, grad_ck = loss_and_grad(recomputed, pred, target)
        assert torch.allclose(value_ck, value, rtol=1e-6, atol=0)
        assert torch.allclose(grad_ck, grad, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize('mode', [*MODES, 'compile'])
def test_autoencoder_stays_frozen_in_eval_mode_and_out_of_checkpoints(mode, signal_state, cases, monkeypatch):
    if mode == 'compile':  # the compiled function is not a module; no need to pay for compilation here
        monkeypatch.setattr(autoencoder_passes, 'compile_available', lambda: False)
    loss = build(signal_state, **(dict(compile=True) if mode == 'compile' else MODES[mode]))
    before = {k: v.clone() for k, v in loss.autoencoder.state_dict().items()}
    loss.train()
    pred, target = cases['residual 0.05']
    loss_and_grad(loss, pred, target)
    assert not any(m.training for m in loss.autoencoder.modules())
    assert not any(p.requires_grad or p.grad is not None for p in loss.autoencoder.parameters())
    # nothing but the auto-encoder's own tensors in the loss's state (the model saves net_g/net_d only)
    assert set(loss.state_dict()) == {f'autoencoder.{k}' for k in before}
    assert [name for name, _ in loss.named_children()] == ['autoencoder']
    assert all(torch.equal(v, before[k]) for k, v in loss.autoencoder.state_dict().items())


@pytest.mark.parametrize('options, key', [
    (dict(precision='fp16'), 'precision'),
    (dict(precision='amp'), 'precision'),
    (dict(checkpoint='yes'), 'checkpoint'),
    (dict(compile=1), 'compile'),
    (dict(channels_last=None), 'channels_last'),
    (dict(winograd='yes'), 'winograd'),
    (dict(winograd=1), 'winograd'),
    (dict(compile=True, checkpoint=True), 'checkpoint'),
    (dict(compile=True, precision='bf16'), 'compile'),
])
def test_bad_mode_fails_when_the_loss_is_built_naming_the_key(options, key):
    with pytest.raises(ValueError, match=rf'AESOPLoss: .*{key}'):
        build_loss(dict(type='AESOPLoss', autoencoder=SMALL_AE, **options))


def test_bf16_with_another_decoder_falls_back_to_fp32_with_one_log_line(log_lines, signal_state, cases):
    other = dict(SMALL_AE, decoder=dict(type='MSRResNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1,
                                        upscale=4))
    loss = build_loss(dict(type='AESOPLoss', autoencoder=other, precision='bf16'))
    fallback = [m for m in log_lines if 'precision=bf16' in m]
    assert len(fallback) == 1 and 'MSRResNet' in fallback[0] and 'fp32' in fallback[0]
    assert loss.passes.precision == 'fp32'
    pred, target = cases['residual 0.01']
    with torch.no_grad():
        expected = F.l1_loss(loss.autoencoder(pred), loss.autoencoder(target))
    assert torch.allclose(loss(pred, target), expected, rtol=1e-5)


def test_compile_falls_back_with_a_warning_when_compilation_fails(log_lines, signal_state, cases, monkeypatch):

    def broken_compile(fn, **kwargs):

        def compiled(*args):
            raise RuntimeError('no compiler')

        return compiled

    monkeypatch.setattr(torch, 'compile', broken_compile)
    monkeypatch.setattr(autoencoder_passes, 'compile_available', lambda: True)
    loss, eager = build(signal_state, compile=True), build(signal_state)
    pred, target = cases['residual 0.05']
    assert torch.equal(loss(pred, target), eager(pred, target))
    assert any('torch.compile failed' in m and 'no compiler' in m for m in log_lines)


def test_exact_fp32_turns_tf32_off_only_inside_and_in_backward(signal_state, cases):
    cudnn = torch.backends.cudnn
    previous = cudnn.allow_tf32
    cudnn.allow_tf32 = True
    try:
        with exact_fp32(torch.device('cuda')):
            assert not cudnn.allow_tf32
        assert cudnn.allow_tf32
        seen = []

        def fn(x):
            seen.append(cudnn.allow_tf32)
            return x.sin()

        x = torch.randn(5, requires_grad=True)
        out = ExactBackward.apply(x, fn)  # on CPU tensors the scope is a no-op, the gradient must still be right
        out.sum().backward()
        assert torch.allclose(x.grad, x.detach().cos())
        # the wrapper around a checkpointed bf16 difference path (what CUDA runs) changes no number
        passes = build(signal_state, precision='bf16', checkpoint=True).passes
        pred, target = cases['residual 0.05']
        direct = loss_and_grad(lambda p, t: passes._difference(t, p).abs().mean(), pred, target)
        wrapped = loss_and_grad(lambda p, t: ExactBackward.apply(p, lambda q: passes._difference(t, q)).abs().mean(),
                                pred, target)
        assert torch.equal(direct[0], wrapped[0]) and torch.equal(direct[1], wrapped[1])
    finally:
        cudnn.allow_tf32 = previous


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('mode', ['default', 'checkpoint', 'bf16'])
def test_modes_on_cuda_match_float64_with_tf32_left_on_globally(mode, signal_state, cases):
    cudnn = torch.backends.cudnn
    previous = cudnn.allow_tf32
    cudnn.allow_tf32 = True  # PyTorch's default: the AE passes must not be affected, the setting not changed
    try:
        loss = build(signal_state, **MODES[mode]).cuda()
        net = copy.deepcopy(loss.autoencoder).double()
        max_error, min_cosine = TOLERANCE[MODES[mode].get('precision', 'fp32')]
        for case, (pred, target) in cases.items():
            pred, target = pred.cuda(), target.cuda()
            value, grad = loss_and_grad(loss, pred, target)
            ref_value, ref_grad = loss_and_grad(lambda p, t: F.l1_loss(net(p), net(t)), pred.double(),
                                                target.double())
            assert abs(value.double() - ref_value) / ref_value <= max_error, (mode, case)
            assert F.cosine_similarity(grad.double().flatten(), ref_grad.flatten(), 0) >= min_cosine, (mode, case)
            assert cudnn.allow_tf32
    finally:
        cudnn.allow_tf32 = previous
