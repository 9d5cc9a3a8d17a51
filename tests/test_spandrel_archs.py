"""spandrel's architectures as BasicSR networks, SpandrelNet and SPSRNet, in-process.

Full-size networks are built once per module (about 5 s of CPU for all of them); what runs through
them is checked on tiny configurations in float64.
"""
import inspect
import json
import logging
from collections import OrderedDict
from copy import deepcopy
from os import path as osp
from typing import Dict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from basicsr.archs import build_network
from basicsr.archs.arch_util import default_init_weights
from basicsr.archs.rrdbnet_arch import RRDB, RRDBNet
from basicsr.models import build_model
from basicsr.models.base_model import BaseModel
from basicsr.utils.registry import ARCH_REGISTRY

from aesop_basicsr.archs.aesop_autoencoder_arch import declared_scale
from aesop_basicsr.archs.spandrel_arch import ARCHITECTURES, BY_NAME, drct_linear_adjust_to_conv
from aesop_basicsr.archs.spsr_arch import SPSRNet
from aesop_basicsr.utils.checkpoint import check_fits
from aesop_basicsr.utils.fallback_registry import fallback_names, is_registered
from conftest import REPO_ROOT

# Each architecture at the size of its paper's main x4 model, with the keys of its own repository's
# option file (DRCT: the AESOP authors' train_Synthetic_AESOP_DRCT.yml, whose compress_ratio,
# squeeze_factor, conv_scale and overlap_ratio DRCT itself does not use). Community architectures
# without a paper size (FDAT, MoESR, Real-CUGAN) at spandrel's defaults.
PAPER_SIZE = {
    'DRCT': dict(upscale=4, in_chans=3, img_size=64, window_size=16, compress_ratio=3, squeeze_factor=30,
                 conv_scale=0.01, overlap_ratio=0.5, img_range=1., depths=[6] * 6, embed_dim=180, num_heads=[6] * 6,
                 mlp_ratio=2, upsampler='pixelshuffle', resi_connection='1conv', use_checkpoint=True),
    'HAT': dict(upscale=4, in_chans=3, img_size=64, window_size=16, compress_ratio=3, squeeze_factor=30,
                conv_scale=0.01, overlap_ratio=0.5, img_range=1., depths=[6] * 6, embed_dim=180, num_heads=[6] * 6,
                mlp_ratio=2, upsampler='pixelshuffle', resi_connection='1conv'),
    'DAT': dict(upscale=4, in_chans=3, img_size=64, img_range=1., split_size=[8, 32], depth=[6] * 6, embed_dim=180,
                num_heads=[6] * 6, expansion_factor=4, resi_connection='1conv'),
    'ATD': dict(upscale=4, in_chans=3, img_size=64, embed_dim=210, depths=[6] * 6, num_heads=[6] * 6, window_size=16,
                category_size=256, num_tokens=128, reducted_dim=20, convffn_kernel_size=5, img_range=1., mlp_ratio=2,
                upsampler='pixelshuffle', resi_connection='1conv', use_checkpoint=False),
    'RGT': dict(upscale=4, in_chans=3, img_size=64, img_range=1., depth=[6] * 8, embed_dim=180, num_heads=[6] * 8,
                mlp_ratio=2, resi_connection='1conv', split_size=[8, 32], c_ratio=0.5),
    'Swin2SR': dict(upscale=4, in_chans=3, img_size=64, window_size=8, img_range=1., depths=[6] * 6, embed_dim=180,
                    num_heads=[6] * 6, mlp_ratio=2, upsampler='pixelshuffle', resi_connection='1conv'),
    'CRAFT': dict(upscale=4, in_chans=3, img_size=64, window_size=16, img_range=1., depths=[2, 2, 2, 2], embed_dim=48,
                  num_heads=[6, 6, 6, 6], mlp_ratio=2, resi_connection='1conv', split_size_0=4, split_size_1=16),
    'OmniSR': dict(num_in_ch=3, num_out_ch=3, num_feat=64, res_num=5, up_scale=4, bias=True, block_num=1,
                   window_size=8, pe=True),
    'DITN': dict(inp_channels=3, dim=60, ITL_blocks=4, SAL_blocks=4, UFONE_blocks=1, ffn_expansion_factor=2,
                 bias=False, LayerNorm_type='WithBias', patch_size=8, upscale=4),
    'SeemoRe': dict(scale=4, in_chans=3, num_experts=3, num_layers=6, embedding_dim=36, img_range=1.,
                    use_shuffle=True, global_kernel_size=11, recursive=2, lr_space='exp', topk=1),
    'FDAT': dict(num_in_ch=3, num_out_ch=3, scale=4),
    'SPAN': dict(num_in_ch=3, num_out_ch=3, feature_channels=48, upscale=4, bias=True, img_range=255.,
                 rgb_mean=[0.4488, 0.4371, 0.4040]),
    'PLKSR': dict(dim=64, n_blocks=28, upscaling_factor=4, ccm_type='DCCM', kernel_size=17, split_ratio=0.25,
                  lk_type='PLK', use_ea=False),
    'RealPLKSR': dict(dim=64, n_blocks=28, upscaling_factor=4, kernel_size=17, split_ratio=0.25, use_ea=True,
                      norm_groups=4),
    'SAFMN': dict(dim=36, n_blocks=8, ffn_scale=2.0, upscaling_factor=4),
    'DCTLSA': dict(in_nc=3, nf=55, num_modules=6, out_nc=3, upscale=4, num_head=5),
    'MoSR': dict(in_ch=3, out_ch=3, upscale=4, n_block=24, dim=64, upsampler='ps', kernel_size=7,
                 expansion_ratio=1.5, conv_ratio=1.0),
    'MoESR': dict(in_ch=3, out_ch=3, scale=4),
    'SwiftSRGAN': dict(in_channels=3, num_channels=64, num_blocks=16, upscale_factor=4),
    'UpCunet2x': dict(in_channels=3, out_channels=3),
    'UpCunet3x': dict(in_channels=3, out_channels=3),
    'UpCunet4x': dict(in_channels=3, out_channels=3),
    'UpCunet2x_fast': dict(in_channels=3, out_channels=3),
}
TINY_DRCT = dict(type='DRCT', upscale=4, in_chans=3, img_size=16, window_size=4, compress_ratio=3, squeeze_factor=30,
                 conv_scale=0.01, overlap_ratio=0.5, img_range=1., depths=[1, 1], embed_dim=12, num_heads=[2, 2],
                 mlp_ratio=1, upsampler='pixelshuffle', resi_connection='1conv', gc=4)
TINY_HAT = dict(type='HAT', upscale=4, in_chans=3, img_size=16, window_size=4, compress_ratio=3, squeeze_factor=4,
                overlap_ratio=0.5, img_range=1., depths=[1, 1], embed_dim=12, num_heads=[2, 2], mlp_ratio=1,
                upsampler='pixelshuffle', resi_connection='1conv', num_feat=8)
SPSR_LAYOUT = osp.join(REPO_ROOT, 'tests', 'data', 'spsr_official_layout.json')


def kwargs_of(opt: dict) -> dict:
    return {k: v for k, v in opt.items() if k != 'type'}


def signal_carrying(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """float64, every conv/linear at full-scale Kaiming initialisation (outputs depend on inputs)."""
    torch.manual_seed(seed)
    default_init_weights(net, 1)
    return net.double()


def same_value(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture(scope='module')
def paper_size() -> Dict[str, torch.nn.Module]:
    """Every architecture built once at its paper's size through BasicSR's build_network."""
    nets = {}
    for name, options in PAPER_SIZE.items():
        torch.manual_seed(0)
        nets[name] = build_network(dict(type=name, **options)).eval()
    return nets


def load_like_basicsr(net: torch.nn.Module, path: str, param_key, strict: bool = True) -> None:
    """BasicSR 1.4.2's own BaseModel.load_network (as `python -m basicsr.test` runs it)."""
    BaseModel.load_network(BaseModel.__new__(BaseModel), net, path, strict, param_key)


# ------------------------------------------------------------------ names and registration

def test_every_architecture_is_a_fallback_name_basicsr_does_not_have():
    """Each name resolves through BasicSR's lookup without being in the registry's map (so a project may still
    register it), and none shadows a name BasicSR (or this package) registers."""
    names = [spec.name for spec in ARCHITECTURES] + ['SPSRNet']
    assert set(names) <= set(fallback_names(ARCH_REGISTRY))
    assert sorted(PAPER_SIZE) == sorted(spec.name for spec in ARCHITECTURES)
    for name in names:
        assert name not in ARCH_REGISTRY and name not in ARCH_REGISTRY.keys()
        assert is_registered(ARCH_REGISTRY, name)
        cls = ARCH_REGISTRY.get(name)
        assert cls.__name__ == name and ARCH_REGISTRY.get(name) is cls  # built once
    assert is_registered(ARCH_REGISTRY, 'RRDBNet') and not is_registered(ARCH_REGISTRY, 'NoSuchNet')
    assert ARCH_REGISTRY.get('SpandrelNet').__module__ == 'aesop_basicsr.archs.spandrel_net_arch'


def test_a_later_registration_of_the_same_name_wins():
    """BasicSR's register() accepts a name that is only a fallback; the registered object then resolves."""

    class HAT(torch.nn.Module):
        pass

    ours = ARCH_REGISTRY.get('HAT')
    ARCH_REGISTRY.register(HAT)
    try:
        assert ARCH_REGISTRY.get('HAT') is HAT
    finally:
        del ARCH_REGISTRY._obj_map['HAT']
    assert ARCH_REGISTRY.get('HAT') is ours


def test_fallbacks_survive_a_reimport_of_the_registry_module():
    """importlib.reload of fallback_registry makes a new FallbackMap class: the map an earlier import installed
    keeps its fallbacks, and a name added again is built anew (test_registration reloads every module)."""
    from basicsr.utils.registry import Registry

    from aesop_basicsr.utils.fallback_registry import add_fallback

    class EarlierFallbackMap(dict):  # what the earlier import of the module left in the registry
        factories = {'Earlier': lambda: 'earlier object'}

    registry = Registry('test')
    registry._obj_map = EarlierFallbackMap(Registered='registered object')
    add_fallback(registry, 'Later', lambda: 'first')
    assert [registry.get(n) for n in ('Registered', 'Earlier', 'Later')] == ['registered object', 'earlier object',
                                                                               'first']
    add_fallback(registry, 'Later', lambda: 'second')
    assert registry.get('Later') == 'second' and 'Earlier' not in registry


def test_option_keys_of_the_official_files_bind_and_scales_are_declared():
    """The signature accepts the architecture's own keys plus use_checkpoint and any unused key; the AE's
    scale check finds each architecture's upscaling factor under its own key (OmniSR up_scale, ...)."""
    for name, options in PAPER_SIZE.items():
        cls = ARCH_REGISTRY.get(name)
        inspect.signature(cls).bind(**options, not_a_parameter=1)
        assert 'use_checkpoint' in inspect.signature(cls).parameters
        expected = BY_NAME[name].fixed_scale or 4
        assert declared_scale(dict(type=name, **options)) == expected, name
    assert declared_scale(dict(type='OmniSR', up_scale=2)) == 2
    assert declared_scale(dict(type='SAFMN', dim=36)) == 4  # SAFMN's default upscaling_factor
    assert declared_scale(dict(type='UpCunet3x')) == 3


# ------------------------------------------------------------------ paper size, official layout

@pytest.mark.parametrize('name', sorted(PAPER_SIZE))
def test_builds_at_paper_size_and_loads_an_official_checkpoint_strictly(name, paper_size, tmp_path):
    """spandrel's auto-detection, run on the network's state dict, recognises the architecture and rebuilds it
    with the hyperparameters the option file gave (so every key reached the network) and the same tensors;
    a stand-in checkpoint with those keys and shapes loads strictly through BasicSR's own load_network."""
    import spandrel
    net = paper_size[name]
    spec = BY_NAME[name]
    state = net.state_dict()
    detected = spandrel.ModelLoader().load_from_state_dict(state)
    assert detected.architecture.id == spec.module
    assert type(detected.model) is type(net).__mro__[2]  # (ours, SpandrelSRNet, spandrel's class)
    assert {k: v.shape for k, v in detected.model.state_dict().items()} == {k: v.shape for k, v in state.items()}
    given = {k: v for k, v in PAPER_SIZE[name].items() if k in type(net).accepted}
    mismatched = {k: (v, detected.model.hyperparameters.get(k)) for k, v in given.items()
                  if not same_value(v, detected.model.hyperparameters.get(k))}
    assert not mismatched, mismatched
    assert detected.scale == net.upscale_factor

    stand_in = OrderedDict((k, v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v.clone())
                           for k, v in state.items())
    path = str(tmp_path / f'{name}.pth')
    torch.save({'params_ema': stand_in}, path)
    load_like_basicsr(net, path, 'params_ema')
    loaded = net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in stand_in.items())


def test_drct_loads_the_aesop_authors_linear_adjust_layout(paper_size, tmp_path):
    """The authors' DRCT checkpoints (AESOP_DRCT256_300K.pth, the reproduced DRCT+LDL) hold the dense blocks'
    1x1 'adjust' convolutions as (out, in) Linear weights: they load strictly through BasicSR's loader and
    through aesop-train's (check_fits), into the official (out, in, 1, 1) tensors."""
    net = paper_size['DRCT']
    official = OrderedDict((k, torch.randn_like(v) if v.is_floating_point() else v.clone())
                           for k, v in net.state_dict().items())
    authors = OrderedDict((k, v.flatten(1) if '.adjust' in k and k.endswith('weight') else v)
                          for k, v in official.items())
    reshaped = [k for k in official if official[k].dim() != authors[k].dim()]
    assert len(reshaped) == 6 * 5  # five adjust convs per residual group
    path = str(tmp_path / 'AESOP_DRCT256_300K.pth')
    torch.save({'params_ema': authors}, path)
    load_like_basicsr(net, path, 'params_ema')
    assert all(torch.equal(net.state_dict()[k], v) for k, v in official.items())
    folded = net.fold_released_keys(authors)
    check_fits(net, folded, path, 'path:pretrain_network_g', strict=True)
    assert drct_linear_adjust_to_conv(official).keys() == official.keys()


# ------------------------------------------------------------------ what runs: padding, checkpointing, log

def test_drct_pads_to_the_window_as_the_authors_forward_does():
    """An LR whose sides are not multiples of the window: reflect-padded bottom/right, run, cropped (the
    authors' DRCT.forward); computed here with F.pad and spandrel's own forward on the padded input."""
    net = signal_carrying(build_network(deepcopy(TINY_DRCT))).eval()
    x = torch.rand(1, 3, 9, 14, dtype=torch.float64)
    with torch.no_grad():
        out = net(x)
        padded = F.pad(x, (0, 2, 0, 3), mode='reflect')  # to 12 x 16, window 4
        expected = type(net).__mro__[2].forward(net, padded)[..., :36, :56]
    assert out.shape == (1, 3, 36, 56)
    assert torch.allclose(out, expected, rtol=0, atol=1e-12)
    assert out.std() > 0.05
    with torch.no_grad():  # contiguous NCHW, padded or not (spandrel's DRCT returns a batch channels-last)
        for size in ((8, 8), (9, 14)):
            assert net(torch.rand(2, 3, *size, dtype=torch.float64)).is_contiguous(), size
    tiny = torch.rand(1, 3, 2, 3, dtype=torch.float64)  # smaller than the padding: reflect, then replicate
    with torch.no_grad():
        assert net(tiny).shape == (1, 3, 8, 12)


@pytest.mark.parametrize('options', [TINY_DRCT, TINY_HAT], ids=['DRCT', 'HAT'])
def test_use_checkpoint_recomputes_each_group_and_gives_the_same_gradients(options):
    """use_checkpoint: each residual group runs again in backward (its blocks' forward hooks fire twice) and the
    input and parameter gradients equal those of the plain network in float64 (DropPath active: the
    recomputation replays the same random state)."""
    plain = signal_carrying(build_network(deepcopy(options))).train()
    ckpt = signal_carrying(build_network(dict(options, use_checkpoint=True))).train()
    ckpt.load_state_dict(plain.state_dict())
    calls = []
    first_block = next(ckpt.layers[0].children())
    first_block.register_forward_hook(lambda *args: calls.append(1))
    results = []
    for net in (plain, ckpt):
        x = torch.rand(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1),
                       requires_grad=True)
        torch.manual_seed(3)
        net(x).pow(2).mean().backward()
        results.append((x.grad, {k: p.grad for k, p in net.named_parameters() if p.grad is not None}))
    assert len(calls) == 2  # forward, and again in backward
    (gx_plain, g_plain), (gx_ckpt, g_ckpt) = results
    assert gx_plain.abs().max() > 0 and torch.allclose(gx_plain, gx_ckpt, rtol=1e-9, atol=1e-12)
    assert g_plain.keys() == g_ckpt.keys()
    for key in g_plain:
        assert torch.allclose(g_plain[key], g_ckpt[key], rtol=1e-9, atol=1e-12), key
    with torch.no_grad():  # without autograd the groups run once
        ckpt(torch.rand(1, 3, 8, 8, dtype=torch.float64))
    assert len(calls) == 3
    copy = deepcopy(ckpt)  # the copy's groups recompute themselves, not the original's
    unit = copy.layers[0]
    assert unit.forward.args[0].__self__ is unit


def test_unused_option_keys_are_named_once_in_the_log():
    """DRCT takes (and ignores) the keys the DRCT/HAT option files carry: one log line names them, however many
    networks are built (net_g and its EMA copy)."""
    logger = logging.getLogger('basicsr')
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        extra = dict(TINY_DRCT, never_used_key_a=1, never_used_key_b=2)
        for _ in range(2):
            build_network(deepcopy(extra))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [r.getMessage() for r in records if 'never_used_key_a' in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].startswith('DRCT: option(s) compress_ratio, conv_scale, never_used_key_a, never_used_key_b, '
                               'overlap_ratio, squeeze_factor not used')


# ------------------------------------------------------------------ SpandrelNet

@pytest.fixture(scope='module')
def legacy_esrgan(tmp_path_factory):
    """A small ESRGAN in the original release's key layout (RRDB_ESRGAN_x4.pth: a bare state dict with
    RRDB_trunk/trunk_conv/upconv/HRconv names) and BasicSR's RRDBNet holding the same weights."""
    net = signal_carrying(RRDBNet(3, 3, num_feat=16, num_block=2, num_grow_ch=32)).eval()
    legacy = OrderedDict()
    for key, value in net.state_dict().items():
        for new, old in (('body.', 'RRDB_trunk.'), ('conv_body.', 'trunk_conv.'), ('conv_up1.', 'upconv1.'),
                         ('conv_up2.', 'upconv2.'), ('conv_hr.', 'HRconv.')):
            if key.startswith(new):
                key = old + key[len(new):]
                break
        legacy[key.replace('.rdb', '.RDB')] = value.float()
    path = str(tmp_path_factory.mktemp('legacy') / 'RRDB_ESRGAN_x4.pth')
    torch.save(legacy, path)
    return path, net


def test_spandrel_net_reads_a_legacy_esrgan_file_as_it_is(legacy_esrgan):
    """SpandrelNet detects ESRGAN in the old key layout and computes what BasicSR's RRDBNet computes with the same
    weights (float64, an independent implementation), on an LR of any size."""
    path, reference = legacy_esrgan
    net = build_network(dict(type='SpandrelNet', model_path=path)).double().eval()
    assert (net.architecture, net.scale) == ('ESRGAN', 4)
    x = torch.rand(1, 3, 13, 10, dtype=torch.float64)
    with torch.no_grad():
        out, expected = net(x), reference(x)
    assert out.shape == (1, 3, 52, 40) and expected.std() > 0.05
    assert torch.allclose(out, expected, rtol=0, atol=1e-10)


def test_spandrel_net_pads_to_the_size_the_detected_architecture_needs(tmp_path):
    """A DRCT file (spandrel: sides a multiple of 16): a 9 x 11 LR is reflect-padded to 16 x 16, run, and cropped
    back to 36 x 44 (computed here with F.pad and the detected network)."""
    options = dict(TINY_DRCT, window_size=16, img_size=16)
    path = str(tmp_path / 'drct.pth')
    torch.save({'params': signal_carrying(build_network(deepcopy(options))).float().state_dict()}, path)
    net = build_network(dict(type='SpandrelNet', model_path=path)).double().eval()
    assert (net.architecture, net.scale, net.size_multiple) == ('DRCT', 4, 16)
    x = torch.rand(1, 3, 9, 11, dtype=torch.float64)
    with torch.no_grad():
        out = net(x)
        expected = net.model(F.pad(x, (0, 5, 0, 7), mode='reflect'))[..., :36, :44]
    assert out.shape == (1, 3, 36, 44) and torch.allclose(out, expected, rtol=0, atol=1e-12)


def test_spandrel_net_errors_name_the_file(tmp_path):
    # (by class name: test_registration reloads the package's modules, error classes included)
    with pytest.raises(Exception, match='model_path: .*missing.pth') as err:
        build_network(dict(type='SpandrelNet', model_path=str(tmp_path / 'missing.pth')))
    assert type(err.value).__name__ == 'MissingFileError'
    path = str(tmp_path / 'unknown.pth')
    torch.save({'params': {'some.weight': torch.zeros(3, 3)}}, path)
    with pytest.raises(Exception, match="model_path: .*unknown.pth' holds no architecture that spandrel") as err:
        build_network(dict(type='SpandrelNet', model_path=path))
    assert type(err.value).__name__ == 'CheckpointError'


# ------------------------------------------------------------------ SPSRNet

def test_spsr_has_the_official_key_layout():
    """Every tensor of the official spsr.pth, with its shape (read from the original SPSR code by
    scripts/check_spsr_against_original.py --write-layout), and no other; HR_conv0_new twice, as there."""
    with open(SPSR_LAYOUT) as f:
        official = json.load(f)
    net = SPSRNet(in_nc=3, out_nc=3, nf=64, nb=23, gc=32)
    assert {k: list(v.shape) for k, v in net.state_dict().items()} == official
    assert net.model[8] is net.HR_conv0_new[0]
    assert sum(p.numel() for p in net.parameters()) == 24796248


def basicsr_rrdb(state: Dict[str, torch.Tensor], prefix: str, nf: int, gc: int) -> RRDB:
    """BasicSR's RRDB holding the SPSR state's RRDB under ``prefix`` (an independent implementation of the block)."""
    block = RRDB(nf, gc).double()
    block.load_state_dict({k[len(prefix):].replace('RDB', 'rdb').replace('.0.', '.'): v
                           for k, v in state.items() if k.startswith(prefix)}, strict=True)
    return block.eval()


def spsr_by_hand(state: Dict[str, torch.Tensor], x: torch.Tensor, nf: int, nb: int, gc: int) -> Dict[str, torch.Tensor]:
    """SPSR's forward (Ma et al., CVPR 2020, Fig. 2) from the state dict alone: BasicSR's RRDB blocks, F.conv2d,
    nearest upsampling, LeakyReLU 0.2, and numpy central differences for the gradient map."""
    def conv(name, t, act=False):
        out = F.conv2d(t, state[name + '.weight'], state[name + '.bias'], padding=state[name + '.weight'].shape[-1] // 2)
        return F.leaky_relu(out, 0.2) if act else out

    def up(name, t):  # nearest x2 then conv + LeakyReLU
        return conv(name, F.interpolate(t, scale_factor=2, mode='nearest'), act=True)

    image = np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)))
    dy = image[..., 2:, 1:-1] - image[..., :-2, 1:-1]
    dx = image[..., 1:-1, 2:] - image[..., 1:-1, :-2]
    gradient = torch.from_numpy(np.sqrt(dx**2 + dy**2 + 1e-6))

    shallow = conv('model.0', x)
    feat, taps = shallow, []
    for index in range(nb):
        feat = basicsr_rrdb(state, f'model.1.sub.{index}.', nf, gc)(feat)
        if index in (4, 9, 14, 19):
            taps.append(feat)
    feat = shallow + conv(f'model.1.sub.{nb}', feat)
    sr = conv('HR_conv1_new.0', conv('model.8', up('model.6', up('model.3', feat)), act=True))

    branch_lr = conv('b_fea_conv.0', gradient)
    branch = branch_lr
    for stage, tap in enumerate(taps, start=1):
        branch = conv(f'b_concat_{stage}.0', basicsr_rrdb(state, f'b_block_{stage}.', 2 * nf, gc)(
            torch.cat([branch, tap], 1)))
    branch = conv('b_LR_conv.0', branch) + branch_lr
    branch = conv('b_module.8', conv('b_module.6', up('b_module.4', up('b_module.1', branch)), act=True))
    fused = conv('f_concat.0', basicsr_rrdb(state, 'f_block.', 2 * nf, gc)(torch.cat([branch, sr], 1)))
    return {'sr_branch': sr, 'gradient': gradient, 'out': conv('f_HR_conv1.0', conv('f_HR_conv0.0', fused, act=True))}


def test_spsr_equals_an_independent_float64_computation():
    """SPSRNet's output (and its SR branch and gradient map on the way) equal SPSR's forward computed from the state
    dict alone with BasicSR's RRDB, F.conv2d and a numpy gradient, in float64 on an odd-sized LR."""
    nf, nb, gc = 8, 21, 4
    net = signal_carrying(SPSRNet(in_nc=3, out_nc=3, nf=nf, nb=nb, gc=gc)).eval()
    x = torch.rand(1, 3, 11, 9, dtype=torch.float64)
    seen = {}
    net.HR_conv1_new.register_forward_hook(lambda m, i, o: seen.__setitem__('sr_branch', o))
    net.get_g_nopadding.register_forward_hook(lambda m, i, o: seen.__setitem__('gradient', o))
    with torch.no_grad():
        seen['out'] = net(x)
        expected = spsr_by_hand(net.state_dict(), x, nf, nb, gc)
    assert seen['out'].shape == (1, 3, 44, 36) and seen['out'].std() > 0.01
    for key in ('gradient', 'sr_branch', 'out'):
        assert torch.allclose(seen[key], expected[key], rtol=0, atol=1e-10), key


def test_spsr_refuses_what_the_official_network_cannot_be():
    with pytest.raises(ValueError, match='nb must be at least 20'):
        SPSRNet(nb=19)
    with pytest.raises(ValueError, match="upsample_mode='pixelshuffle' is not supported"):
        SPSRNet(nb=20, nf=8, upsample_mode='pixelshuffle')


# ------------------------------------------------------------------ a spandrel decoder in AESOPAEModel

def test_auto_encoder_with_a_spandrel_decoder_trains_under_aesop_ae_model(paired_x4):
    """AESOPAEModel trains an auto-encoder whose decoder is spandrel's SPAN: two steps on real photos change the
    decoder's weights, and its loss is finite."""
    decoder = dict(type='SPAN', num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=4, img_range=1.)
    opt = {
        'name': 'ae_span', 'model_type': 'AESOPAEModel', 'scale': 4, 'num_gpu': 0, 'is_train': True, 'dist': False,
        'rank': 0, 'world_size': 1,
        'network_g': dict(type='AESOPAutoEncoder', scale=4, num_in_ch=3, num_feat=16, num_grow_ch=4, num_block=1,
                          decoder=decoder),
        'path': {'pretrain_network_g': None, 'resume_state': None},
        'train': {'ema_decay': 0.9, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}, 'total_iter': 2,
                  'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
                  'lr_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
    }
    torch.manual_seed(0)
    model = build_model(opt)
    assert type(model.net_g.decoder) is ARCH_REGISTRY.get('SPAN')
    before = {k: v.clone() for k, v in model.net_g.decoder.state_dict().items()}
    from basicsr.data import build_dataset
    dataset = build_dataset(dict(name='photos', type='PairedImageDataset', phase='train', scale=4,
                                 io_backend={'type': 'disk'}, dataroot_gt=paired_x4['train']['gt'],
                                 dataroot_lq=paired_x4['train']['lq'], gt_size=64, use_hflip=True, use_rot=True))
    for step in (1, 2):
        batch = dataset[step]
        model.feed_data({'gt': batch['gt'][None], 'lq': batch['lq'][None]})
        model.optimize_parameters(step)
    losses = model.get_current_log()
    assert np.isfinite(losses['l_pix']) and np.isfinite(losses['l_lr'])
    after = model.net_g.decoder.state_dict()
    changed = [k for k in before if 'eval_conv' not in k and not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2
