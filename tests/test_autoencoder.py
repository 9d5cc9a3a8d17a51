"""AESOPAutoEncoder: shapes at every scale, any BasicSR decoder, and the authors' released checkpoint layout."""
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from basicsr.archs import build_network
from basicsr.archs.arch_util import default_init_weights
from basicsr.archs.rrdbnet_arch import RRDB, RRDBNet
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from aesop_basicsr.archs.aesop_autoencoder_arch import AESOPAutoEncoder
from aesop_basicsr.utils.checkpoint import load_pretrained


def tiny_rrdb_decoder(scale: int) -> dict:
    return dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4, scale=scale)


def tiny_decoder(scale: int) -> dict:
    """BasicSR's RRDBNet upscales by 1, 2 or 4 only; EDSR covers x8."""
    if scale == 8:
        return dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=8)
    return tiny_rrdb_decoder(scale)


@pytest.mark.parametrize('scale', [2, 4, 8])
def test_encoder_reaches_lr_size_and_autoencoder_returns_hr_size(scale):
    ae = AESOPAutoEncoder(scale=scale, num_feat=64, num_grow_ch=8, num_block=1, decoder=tiny_decoder(scale))
    x = torch.rand(2, 3, 8 * scale, 16 * scale)
    with torch.no_grad():
        z = ae.encode(x)
        y = ae(x)
    assert z.shape == (2, 3, 8, 16)
    assert y.shape == x.shape
    assert torch.equal(y, ae.decode(z))


def std_in_kaiming_units(*convs: nn.Conv2d) -> float:
    """The std of the convs' weights, each divided by Kaiming-normal's std sqrt(2 / fan_in) for its layer."""
    return torch.cat([(conv.weight * (conv.weight[0].numel() / 2)**0.5).flatten() for conv in convs]).std().item()


def test_defaults_are_the_papers_x4_auto_encoder():
    """Mutation survivors: the default scale and the decoder's default size; the encoder's stem and head start as
    Kaiming-normal x 0.1, the scale BasicSR gives the RRDB blocks between them (ESRGAN's initialisation for stable
    residual training), not at full Kaiming scale."""
    torch.manual_seed(0)
    ae = AESOPAutoEncoder()
    assert ae.scale == 4 and ae.encoder_type == 'rrdb' and len(ae.body) == 2
    assert type(ae.decoder) is RRDBNet and len(ae.decoder.body) == 23 and ae.decoder.conv_first.out_channels == 64
    # the paper's sizes: a few hundred weights in the stem, 38k in the head
    assert std_in_kaiming_units(ae.body[0].rdb1.conv5) == pytest.approx(0.1, rel=0.02)
    assert std_in_kaiming_units(*ae.conv_first) == pytest.approx(0.1, rel=0.2)
    assert std_in_kaiming_units(*ae.conv_last) == pytest.approx(0.1, rel=0.05)


@pytest.mark.parametrize('size', [(16, 18), (18, 16)])
def test_encoder_names_a_height_or_width_the_scale_does_not_divide(size):
    ae = AESOPAutoEncoder(scale=4, num_feat=16, num_grow_ch=4, num_block=1, decoder=tiny_decoder(4))
    with pytest.raises(ValueError, match=r'not divisible by scale=4'):
        ae.encode(torch.rand(1, 3, *size))


def test_load_state_dict_is_strict_by_default():
    ae = AESOPAutoEncoder(scale=4, num_feat=16, num_grow_ch=4, num_block=1, decoder=tiny_decoder(4))
    state = ae.state_dict()
    state.pop(next(iter(state)))
    with pytest.raises(RuntimeError, match='Missing key'):
        ae.load_state_dict(state)


@pytest.mark.parametrize('decoder', [
    dict(type='SwinIR', upscale=4, in_chans=3, img_size=8, window_size=4, img_range=1., depths=[1], embed_dim=12,
         num_heads=[2], mlp_ratio=2, upsampler='pixelshuffle'),
    dict(type='MSRResNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=4),
    dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=4),
    dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4),  # default scale 4
])
def test_any_registered_sr_network_serves_as_decoder(decoder):
    ae = build_network(dict(type='AESOPAutoEncoder', scale=4, num_feat=16, num_block=1, decoder=decoder))
    assert type(ae.decoder) is ARCH_REGISTRY.get(decoder['type'])
    with torch.no_grad():
        assert ae(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)


@pytest.mark.parametrize('scale, decoder, said', [
    (4, tiny_rrdb_decoder(2), 'upscales by 2'),
    (4, dict(type='MSRResNet', num_feat=8, num_block=1, upscale=8), 'upscales by 8'),
    (2, dict(type='MSRResNet', num_feat=8, num_block=1), 'upscales by 4'),  # MSRResNet's default upscale
    (2, dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1), 'upscales by 4'),  # default scale
])
def test_decoder_scale_must_agree(scale, decoder, said):
    with pytest.raises(ValueError, match=f'{said} .* the auto-encoder has scale={scale}'):
        AESOPAutoEncoder(scale=scale, num_feat=16, decoder=decoder)


def test_default_decoder_upscales_by_the_auto_encoders_scale():
    """Without a decoder dict the paper's RRDBNet is built for the scale asked for, not RRDBNet's default x4."""
    ae = AESOPAutoEncoder(scale=2)
    assert type(ae.decoder) is RRDBNet
    with torch.no_grad():
        assert ae(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_decoder_that_does_not_reach_the_input_size_is_named():
    ae = AESOPAutoEncoder(scale=8, num_feat=64, decoder=tiny_rrdb_decoder(8))  # RRDBNet silently upscales x4
    with pytest.raises(ValueError, match=r'RRDBNet turned the \(32, 32\) input into \(16, 16\)'):
        ae(torch.rand(1, 3, 32, 32))


def test_invalid_options_are_named():
    with pytest.raises(ValueError, match=r"power of two >= 2 with encoder_type='rrdb' \(pixel-unshuffle by 2"):
        AESOPAutoEncoder(scale=3, num_feat=18, decoder=tiny_rrdb_decoder(3))
    with pytest.raises(ValueError, match=r'num_feat=24 must be a multiple of scale\*\*2=16 \(the stem has num_feat'):
        AESOPAutoEncoder(scale=4, num_feat=24, decoder=tiny_rrdb_decoder(4))
    with pytest.raises(ValueError, match="encoder_type='wavelet' is unknown; choose one of rrdb, area, bicubic"):
        AESOPAutoEncoder(scale=4, encoder_type='wavelet', decoder=tiny_rrdb_decoder(4))
    with pytest.raises(ValueError, match=r'the decoder option dict needs a "type" \(e.g. RRDBNet\)'):
        AESOPAutoEncoder(scale=4, num_feat=16, decoder=dict(num_feat=8, scale=4))
    with pytest.raises(ValueError, match=r'input size \(30, 32\) is not divisible by scale=4'):
        AESOPAutoEncoder(scale=4, num_feat=16, decoder=tiny_rrdb_decoder(4)).encode(torch.rand(1, 3, 30, 32))


@pytest.mark.parametrize('scale', [0, -2, 2.0, '4'])
def test_scale_must_be_a_positive_integer(scale):
    with pytest.raises(ValueError, match=f'scale={scale!r} must be a positive integer'):
        AESOPAutoEncoder(scale=scale, encoder_type='area', decoder=tiny_rrdb_decoder(2))


def test_scale_1_is_allowed_with_a_fixed_encoder():
    """A positive integer, 1 included: the box encoder at scale 1 is the identity (only ``rrdb`` needs >= 2)."""
    ae = AESOPAutoEncoder(scale=1, encoder_type='area', decoder=tiny_rrdb_decoder(1))
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(ae.encode(x), x)


@pytest.mark.parametrize('encoder_type, scale', [('area', 3), ('area', 4), ('bicubic', 4)])
def test_fixed_downsampling_encoders_have_no_weights(encoder_type, scale):
    ae = AESOPAutoEncoder(scale=scale, encoder_type=encoder_type, decoder=tiny_rrdb_decoder(scale))
    assert all(name.startswith('decoder.') for name in ae.state_dict())
    x = torch.rand(1, 3, 12 * scale, 12 * scale)
    z = ae.encode(x)
    assert z.shape == (1, 3, 12, 12)
    if encoder_type == 'area':
        assert torch.allclose(z[0, :, 0, 0], x[0, :, :scale, :scale].mean(dim=(1, 2)))
    # a constant image stays constant under both downsamplers
    assert torch.allclose(ae.encode(torch.full_like(x, 0.3)), torch.full_like(z, 0.3), atol=1e-6)


def test_bicubic_encoder_is_antialiased_bicubic_downsampling():
    """The ``bicubic`` ablation encoder: PyTorch's antialiased bicubic (Keys a=-0.5, PIL's filter), not plain
    bicubic sampling, which aliases at x4. Checked against Pillow's own resize of a real, non-square photo crop."""
    from PIL import Image

    from aesop_basicsr.utils.sample_data import load_photo
    photo = load_photo('astronaut')[:128, :96].astype(np.float32) / 255.
    x = torch.from_numpy(photo.transpose(2, 0, 1).copy())[None]
    ae = AESOPAutoEncoder(scale=4, encoder_type='bicubic', decoder=tiny_rrdb_decoder(4))
    z = ae.encode(x)
    assert z.shape == (1, 3, 32, 24)
    antialiased = F.interpolate(x, size=(32, 24), mode='bicubic', align_corners=False, antialias=True)
    assert torch.allclose(z, antialiased, atol=1e-6)
    pil = np.stack([np.asarray(Image.fromarray(photo[..., c], mode='F').resize((24, 32), Image.BICUBIC))
                    for c in range(3)])
    assert np.abs(z[0].numpy() - pil).max() < 2e-3
    aliased = F.interpolate(x, size=(32, 24), mode='bicubic', align_corners=False, antialias=False)
    assert (z - aliased).abs().max() > 0.05


class AuthorsLayoutAE(nn.Module):
    """The module structure of the authors' released AE: each encoder part is registered twice."""

    def __init__(self, num_feat=64, num_block=2, decoder_blocks=23):
        super().__init__()
        stem = num_feat // 16
        self.conv_first = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1), nn.Conv2d(stem, stem, 3, 1, 1))
        self.body = nn.Sequential(*[RRDB(num_feat, 32) for _ in range(num_block)])
        self.conv_last = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.Conv2d(num_feat, 3, 3, 1, 1))
        self.encoder = nn.Sequential(self.conv_first, nn.Sequential(nn.PixelUnshuffle(2), nn.PixelUnshuffle(2)),
                                     self.body, self.conv_last)
        self.decoder = RRDBNet(3, 3, num_feat=64, num_block=decoder_blocks, num_grow_ch=32, scale=4)

    def forward(self, x):
        return self.decoder(self.encoder(x))


@pytest.fixture(scope='module')
def released_checkpoint(tmp_path_factory):
    """A file in the released format: {'params_ema': state dict with duplicated encoder keys}, paper sizes."""
    torch.manual_seed(0)
    reference = AuthorsLayoutAE().eval()
    for p in reference.parameters():  # visible, non-trivial weights everywhere
        p.data.uniform_(-0.05, 0.05)
    path = tmp_path_factory.mktemp('released') / 'AE_RRDBdecoder_100K.pth'
    torch.save({'params_ema': reference.state_dict()}, path)
    return reference, str(path)


def test_released_checkpoint_layout_loads_strictly_and_reproduces_the_authors_module(released_checkpoint):
    reference, path = released_checkpoint
    state = torch.load(path, weights_only=True)['params_ema']
    assert any(k.startswith('encoder.0.') for k in state) and any(k.startswith('conv_first.') for k in state)
    assert 300 < len(state) < 1000  # "a few hundred keys"

    ae = build_network(dict(type='AESOPAutoEncoder', scale=4))  # the paper's settings are the defaults
    load_pretrained(ae, path, 'params_ema', True, 'pretrain_network_ae', 'param_key_ae')
    # every tensor accounted for: each of ours came from the file, and each file key maps to one of ours
    ours = ae.state_dict()
    folded = AESOPAutoEncoder.fold_released_keys(state)
    assert set(folded) == set(ours)
    assert all(torch.equal(ours[k], folded[k]) for k in ours)

    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ae.eval()(x), reference(x), atol=1e-6)
        # the channel order of two 2x unshuffles matters: one 4x step would give another encoding
        assert torch.allclose(ae.encode(x), reference.encoder(x), atol=1e-6)


def test_released_layout_with_inconsistent_twins_is_rejected(released_checkpoint, tmp_path):
    _, path = released_checkpoint
    state = torch.load(path, weights_only=True)['params_ema']
    state['encoder.0.0.weight'] = state['encoder.0.0.weight'] + 1
    bad = tmp_path / 'bad.pth'
    torch.save({'params_ema': state}, bad)
    ae = AESOPAutoEncoder(scale=4)
    with pytest.raises(ValueError, match='encoder.0.0.weight differs from its twin conv_first.0.weight; the file is '
                                         'not a consistent AESOP auto-encoder checkpoint'):
        load_pretrained(ae, str(bad), 'params_ema', True, 'pretrain_network_ae', 'param_key_ae')


def test_our_own_checkpoints_round_trip_in_pth_and_safetensors(tmp_path):
    from safetensors.torch import save_file
    torch.manual_seed(1)
    opt = dict(type='AESOPAutoEncoder', scale=4, num_feat=16, num_block=1, decoder=tiny_rrdb_decoder(4))
    trained = build_network(opt)
    for p in trained.parameters():
        p.data.normal_(0, 0.1)
    state = trained.state_dict()
    torch.save({'params': state, 'params_ema': state}, tmp_path / 'ae.pth')
    save_file({f'params_ema.{k}': v.contiguous() for k, v in state.items()}, str(tmp_path / 'ae.safetensors'))
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / 'bare.safetensors'))

    x = torch.rand(1, 3, 16, 16)
    expected = trained.eval()(x)
    for file, key in [('ae.pth', 'params'), ('ae.pth', 'params_ema'), ('ae.safetensors', 'params_ema'),
                      ('bare.safetensors', None)]:
        ae = build_network(opt)
        load_pretrained(ae, str(tmp_path / file), key, True, 'pretrain_network_ae', 'param_key_ae')
        assert torch.equal(ae.eval()(x), expected), file


def test_a_stem_narrower_than_the_image_channels_is_warned_about(caplog):
    import logging
    caplog.set_level(logging.WARNING, logger='basicsr')
    logging.getLogger('basicsr').addHandler(caplog.handler)
    try:
        AESOPAutoEncoder(scale=4, num_feat=32, decoder=tiny_rrdb_decoder(4))
        assert 'num_feat / scale**2 = 2 channels, fewer than num_in_ch=3' in caplog.text
        assert 'Use num_feat >= 48.' in caplog.text
        caplog.clear()
        AESOPAutoEncoder(scale=4, num_feat=48, decoder=tiny_rrdb_decoder(4))
        assert 'fewer than num_in_ch' not in caplog.text
    finally:
        logging.getLogger('basicsr').removeHandler(caplog.handler)


def small_rrdb_ae(scale: int = 4) -> AESOPAutoEncoder:
    return AESOPAutoEncoder(scale=scale, num_feat=16, num_grow_ch=4, num_block=1, decoder=tiny_decoder(scale))


def test_released_encoder_keys_without_their_twins_are_renamed():
    """A file holding the encoder only under ``encoder.0/2/3.*`` loads as if it had ``conv_first/body/conv_last``."""
    torch.manual_seed(0)
    source = small_rrdb_ae()
    default_init_weights(source, 1)
    aliases = {'conv_first.': 'encoder.0.', 'body.': 'encoder.2.', 'conv_last.': 'encoder.3.'}
    released = OrderedDict()
    for key, value in source.state_dict().items():
        prefix = next((p for p in aliases if key.startswith(p)), None)
        released[key if prefix is None else aliases[prefix] + key[len(prefix):]] = value
    assert not any(k.startswith(tuple(aliases)) for k in released)
    ae = small_rrdb_ae()
    ae.load_state_dict(released)  # strict
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(ae(x), source(x))


def test_load_state_dict_copies_into_the_networks_tensors_unless_assign_is_asked_for():
    """As nn.Module: by default the values are copied (a half-precision file gives a float32 network that does not
    share the caller's tensors); ``assign=True`` is passed on and takes the file's tensors themselves."""
    torch.manual_seed(0)
    half = {k: v.half() for k, v in small_rrdb_ae().state_dict().items()}
    ae = small_rrdb_ae()
    ae.load_state_dict(half)
    weight = ae.conv_first[0].weight
    assert weight.dtype == torch.float32 and torch.equal(weight, half['conv_first.0.weight'].float())
    half['conv_first.0.weight'].zero_()
    assert weight.abs().sum() > 0
    assigned = small_rrdb_ae()
    assigned.load_state_dict(half, assign=True)
    assert assigned.conv_first[0].weight.dtype == torch.float16
    assert assigned.conv_first[0].weight.data_ptr() == half['conv_first.0.weight'].data_ptr()


@pytest.mark.parametrize('scale, num_feat', [(2, 4), (2, 16), (4, 16), (4, 64), (8, 64)])
def test_scale_of_state_dict_reads_the_scale_a_checkpoint_was_made_for(scale, num_feat):
    ae = AESOPAutoEncoder(scale=scale, num_feat=num_feat, num_grow_ch=4, num_block=1, decoder=tiny_decoder(scale))
    assert AESOPAutoEncoder.scale_of_state_dict(ae.state_dict()) == scale


def test_scale_of_state_dict_says_none_when_it_cannot_tell():
    state = small_rrdb_ae().state_dict()  # x4: stem 1 channel, 16 after pixel-unshuffle
    stem, after = state['conv_first.1.weight'], state['conv_last.0.weight']
    fixed = AESOPAutoEncoder(scale=4, encoder_type='area', decoder=tiny_decoder(4)).state_dict()
    cases = {
        'fixed encoder, no weights': fixed,
        'no stem': {'conv_last.0.weight': after},
        'no layer after the stem': {'conv_first.1.weight': stem},
        'stem not a conv weight': {'conv_first.1.weight': stem.flatten(1), 'conv_last.0.weight': after},
        'after not a conv weight': {'conv_first.1.weight': stem, 'conv_last.0.weight': after.flatten(1)},
        'empty stem': {'conv_first.1.weight': torch.zeros(0, 1, 3, 3), 'conv_last.0.weight': after},
        'not stem x scale**2': {'conv_first.1.weight': torch.zeros(4, 4, 3, 3),
                                'conv_last.0.weight': torch.zeros(16, 20, 3, 3)},
    }
    for name, case in cases.items():
        assert AESOPAutoEncoder.scale_of_state_dict(case) is None, name
