"""AESOPLoss: Eq. 8 by hand, gradients, the frozen auto-encoder, and the paper's core property."""
import copy

import pytest
import torch
import torch.nn.functional as F
from basicsr.losses import build_loss

from aesop_basicsr.losses.aesop_loss import AESOPLoss
from aesop_basicsr.utils.sample_data import load_photo

TINY_AE = dict(type='AESOPAutoEncoder', scale=4, num_feat=16, num_grow_ch=8, num_block=1,
               decoder=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4))


def photo_batch(size: int = 32, count: int = 2) -> torch.Tensor:
    """Real image content (skimage's astronaut) as an (N, 3, size, size) tensor in [0, 1]."""
    photo = torch.from_numpy(load_photo('astronaut')).float().div(255).permute(2, 0, 1)
    return torch.stack([photo[:, 100 + 40 * i:100 + 40 * i + size, 200:200 + size] for i in range(count)])


def build_aesop(**kwargs) -> AESOPLoss:
    torch.manual_seed(0)
    loss = build_loss(dict(type='AESOPLoss', autoencoder=kwargs.pop('autoencoder', TINY_AE), **kwargs))
    for p in loss.autoencoder.parameters():  # scale-0.1 init makes psi nearly constant; make it expressive
        p.data.normal_(0, 0.2)
    return loss


@pytest.mark.parametrize('criterion, reference', [
    ('l1', lambda a, b: (a - b).abs()),
    ('mse', lambda a, b: (a - b)**2),
    ('charbonnier', lambda a, b: torch.sqrt((a - b)**2 + 1e-12)),
])
@pytest.mark.parametrize('reduction', ['mean', 'sum', 'none'])
def test_loss_is_criterion_of_autoencoded_images(criterion, reference, reduction):
    loss = build_aesop(criterion=criterion, reduction=reduction, loss_weight=0.5)
    target = photo_batch()
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    autoencoder64 = copy.deepcopy(loss.autoencoder).double()  # an independent float64 Eq. 8
    with torch.no_grad():
        element = reference(autoencoder64(pred.double()), autoencoder64(target.double()))
    expected = {'mean': element.mean(), 'sum': element.sum(), 'none': element}[reduction]
    # fp32 rounding (direct or Winograd convolution) moves an element by ~1e-5 of the output's range
    assert torch.allclose(loss(pred, target).double(), 0.5 * expected, rtol=1e-5, atol=1e-5 * element.abs().max())


def test_elementwise_weight_is_applied_in_autoencoded_space():
    loss = build_aesop(reduction='sum')
    target = photo_batch()
    pred = target.flip(-1)
    weight = torch.zeros_like(target)
    weight[..., :16] = 1
    with torch.no_grad():
        expected = ((loss.autoencoder(pred) - loss.autoencoder(target)).abs() * weight).sum()
    assert torch.allclose(loss(pred, target, weight), expected, rtol=1e-5)


def test_loss_is_zero_for_identical_images_and_positive_otherwise():
    loss = build_aesop()
    target = photo_batch()
    assert loss(target.clone(), target).item() == 0
    assert loss(target.flip(-2), target).item() > 0


def test_gradient_reaches_pred_only_and_matches_autograd_of_the_formula():
    loss = build_aesop()
    target = photo_batch().requires_grad_(True)
    pred = (target.detach() + 0.05 * torch.randn_like(target)).requires_grad_(True)
    loss(pred, target).backward()
    assert target.grad is None
    assert all(p.grad is None for p in loss.autoencoder.parameters())

    pred_ref = pred.detach().double().requires_grad_(True)
    ae_copy = build_aesop().autoencoder.double()  # same seed -> same weights, not frozen; float64 autograd
    ae_copy.requires_grad_(True)
    F.l1_loss(ae_copy(pred_ref), ae_copy(target.detach().double())).backward()
    difference = pred.grad.double() - pred_ref.grad  # fp32 rounding only: ~1e-6 of the gradient
    assert difference.norm() <= 1e-5 * pred_ref.grad.norm()
    assert difference.abs().max() <= 1e-5 * pred_ref.grad.abs().max()
    assert pred.grad.abs().sum() > 0


def test_autoencoder_is_frozen_in_eval_mode_and_moves_with_the_loss():
    loss = build_aesop()
    loss.train()
    assert loss.training and not loss.autoencoder.training
    assert not any(m.training for m in loss.autoencoder.modules())
    assert not any(p.requires_grad for p in loss.autoencoder.parameters())
    loss.double()
    assert all(p.dtype == torch.float64 for p in loss.autoencoder.parameters())
    target = photo_batch().double()
    assert loss(target.flip(-1), target).dtype == torch.float64


def test_optimizer_steps_leave_the_autoencoder_bit_identical():
    loss = build_aesop()
    before = {k: v.clone() for k, v in loss.autoencoder.state_dict().items()}
    target = photo_batch()
    generator = torch.nn.Conv2d(3, 3, 3, 1, 1)
    optimizer = torch.optim.Adam(list(generator.parameters()) + list(loss.parameters()), lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        loss(generator(target), target).backward()
        optimizer.step()
    after = loss.autoencoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.fixture
def area_aesop() -> AESOPLoss:
    """AESOP with the paper's ablation encoder: an exact linear (box) downsampler."""
    return build_aesop(autoencoder=dict(TINY_AE, encoder_type='area'))


def test_core_property_perturbation_in_downsampler_null_space_is_not_penalised(area_aesop):
    """E(h) = 0  =>  L_AESOP(pred + h) = L_AESOP(pred), while L1 grows with |h| (paper, Sec. 3)."""
    target = photo_batch()
    pred = F.interpolate(F.avg_pool2d(target, 4), scale_factor=4, mode='bicubic', align_corners=False)
    checker = (torch.arange(32).view(1, 1, 32, 1) + torch.arange(32).view(1, 1, 1, 32)) % 2 * 2. - 1
    h = 0.2 * checker.expand_as(target)  # +-0.2 alternating: every 4x4 block averages to 0
    assert torch.allclose(F.avg_pool2d(h, 4), torch.zeros(1), atol=1e-7)

    base = area_aesop(pred, target)
    l1_values, aesop_values = [], []
    for amount in (1., 2., 3.):
        l1_values.append(F.l1_loss(pred + amount * h, target).item())
        aesop_values.append(area_aesop(pred + amount * h, target).item())
    assert aesop_values == pytest.approx([base.item()] * 3, rel=1e-5)
    assert l1_values[0] > F.l1_loss(pred, target).item() and l1_values[0] < l1_values[1] < l1_values[2]


def test_core_property_perturbation_that_survives_downsampling_is_penalised(area_aesop):
    target = photo_batch()
    h = 0.2 * torch.ones_like(target)  # constant: its 4x4 average is 0.2, not 0
    assert area_aesop(target + h, target).item() > 1e-4
    assert area_aesop(target + 2 * h, target).item() > area_aesop(target + h, target).item()
    assert F.l1_loss(target + h, target).item() > 0


def test_charbonnier_eps_enters_as_sqrt_of_d_squared_plus_eps():
    """eps is BasicSR's Charbonnier epsilon: sqrt(d^2 + eps), d = psi(pred) - psi(target), in float64 by hand."""
    target = photo_batch()
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    values = {}
    for eps in (1e-12, 0.5, 10.):
        loss = build_aesop(criterion='charbonnier', eps=eps)
        with torch.no_grad():
            d = loss.autoencoder(pred).double() - loss.autoencoder(target).double()
        values[eps] = loss(pred, target).item()
        assert values[eps] == pytest.approx(torch.sqrt(d**2 + eps).mean().item(), rel=1e-5)
    assert values[10.] > values[0.5] > values[1e-12] * 1.01  # far more than rounding: eps is used


def write_ae_file(path, extra: bool) -> torch.Tensor:
    """An expressive tiny AE's weights under params_ema (plus one foreign tensor if ``extra``); returns psi(x)."""
    source = build_aesop().autoencoder
    state = dict(source.state_dict())
    if extra:
        state['projection_head.weight'] = torch.ones(2, 2)  # a key the network does not have
    torch.save({'params_ema': state}, path)
    with torch.no_grad():
        return source(photo_batch())


def test_strict_load_ae_false_loads_a_file_with_an_extra_key(tmp_path):
    path = str(tmp_path / 'ae_with_extra.pth')
    expected = write_ae_file(path, extra=True)
    with pytest.raises(ValueError, match=r"1 unexpected \(first: \['projection_head.weight'\]\)"):
        AESOPLoss(TINY_AE, pretrain_network_ae=path, strict_load_ae=True)
    torch.manual_seed(123)  # another random init, so only loading can give the file's outputs
    loss = AESOPLoss(TINY_AE, pretrain_network_ae=path, strict_load_ae=False)
    with torch.no_grad():
        assert torch.equal(loss.autoencoder(photo_batch()), expected)
