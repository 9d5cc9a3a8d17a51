"""Every bad input to AESOPLoss fails when the loss is built or called, naming the option and value at fault."""
import pytest
import torch
from basicsr.losses import build_loss

TINY_AE = dict(type='AESOPAutoEncoder', scale=4, num_feat=16, num_grow_ch=8, num_block=1,
               decoder=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4))


def aesop(**kwargs):
    return build_loss(dict(type='AESOPLoss', autoencoder=kwargs.pop('autoencoder', TINY_AE), **kwargs))


@pytest.fixture(scope='module')
def ae_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('ae') / 'ae.pth'
    state = aesop().autoencoder.state_dict()
    torch.save({'params': state, 'params_ema': state}, path)
    return str(path)


def test_missing_file(tmp_path):
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match=rf"AESOPLoss.pretrain_network_ae: checkpoint file '{missing}'"):
        aesop(pretrain_network_ae=missing)


def test_param_key_not_in_file_lists_the_keys_it_has(ae_file):
    with pytest.raises(KeyError, match=r"AESOPLoss.param_key_ae: 'weights' is not in .*ae.pth.*\['params', "
                                       r"'params_ema'\]"):
        aesop(pretrain_network_ae=ae_file, param_key_ae='weights')


def test_param_key_on_a_bare_state_dict_says_to_unset_it(tmp_path):
    path = tmp_path / 'bare.pth'
    torch.save(aesop().autoencoder.state_dict(), path)
    with pytest.raises(KeyError, match=r'holds a bare state dict .* set AESOPLoss.param_key_ae: ~'):
        aesop(pretrain_network_ae=str(path))
    assert aesop(pretrain_network_ae=str(path), param_key_ae=None)  # and loads when told


@pytest.mark.parametrize('autoencoder, tensor', [
    (dict(TINY_AE, num_block=2), r'missing tensors \(first: \[\'body.1'),
    (dict(TINY_AE, num_feat=32), r'conv_first.0.weight has shape \(1, 3, 3, 3\) in the file but \(2, 3, 3, 3\)'),
])
def test_checkpoint_that_does_not_fit_names_the_tensor_and_hints(ae_file, autoencoder, tensor):
    with pytest.raises(ValueError, match=tensor) as err:
        aesop(autoencoder=autoencoder, pretrain_network_ae=ae_file)
    assert 'AESOPLoss.pretrain_network_ae' in str(err.value) and 'num_block, num_feat, scale' in str(err.value)


def test_decoder_scale_that_disagrees_with_the_autoencoder():
    ae = dict(TINY_AE, decoder=dict(TINY_AE['decoder'], scale=2))
    with pytest.raises(ValueError, match=r'RRDBNet upscales by 2 .* auto-encoder has scale=4'):
        aesop(autoencoder=ae)


@pytest.mark.parametrize('pred_shape, target_shape, message', [
    ((1, 3, 32, 32), (1, 3, 32, 64), r'pred \(1, 3, 32, 32\) and target \(1, 3, 32, 64\) differ in shape'),
    ((3, 32, 32), (3, 32, 32), r'must be NCHW tensors; got shapes \(3, 32, 32\)'),
    ((3, 32, 32), (1, 3, 32, 32), r'must be NCHW tensors; got shapes \(3, 32, 32\) and \(1, 3, 32, 32\)'),
    ((1, 3, 32, 32), (3, 32, 32), r'must be NCHW tensors; got shapes \(1, 3, 32, 32\) and \(3, 32, 32\)'),
    ((1, 3, 30, 32), (1, 3, 30, 32), r'spatial size \(30, 32\) is not divisible by the auto-encoder scale 4'),
    ((1, 3, 32, 30), (1, 3, 32, 30), r'spatial size \(32, 30\) is not divisible by the auto-encoder scale 4'),
])
def test_bad_tensor_shapes(pred_shape, target_shape, message):
    with pytest.raises(ValueError, match=message):
        aesop()(torch.rand(pred_shape), torch.rand(target_shape))


@pytest.mark.parametrize('option, value, choices', [('criterion', 'l3', 'l1, mse, charbonnier'),
                                                     ('reduction', 'median', 'mean, sum, none')])
def test_unknown_criterion_or_reduction(option, value, choices):
    with pytest.raises(ValueError, match=f"AESOPLoss: {option}='{value}' is unknown; choose one of {choices}."):
        aesop(**{option: value})


@pytest.mark.parametrize('autoencoder', [{'scale': 4}, 'AESOPAutoEncoder', None])
def test_autoencoder_option_without_a_type(autoencoder):
    with pytest.raises(ValueError, match=r'AESOPLoss: autoencoder must be an option dict with a type, '
                                         r'e.g. \{type: AESOPAutoEncoder, scale: 4\}.'):
        aesop(autoencoder=autoencoder)


def test_file_that_is_not_a_checkpoint(tmp_path):
    text = tmp_path / 'notes.pth'
    text.write_text('these are not weights')
    with pytest.raises(ValueError, match=r"pretrain_network_ae: '.*notes.pth' is not a PyTorch checkpoint"):
        aesop(pretrain_network_ae=str(text))
    tensor = tmp_path / 'tensor.pth'
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ValueError, match=r"tensor.pth' holds a Tensor, not a dict of weights"):
        aesop(pretrain_network_ae=str(tensor))


class ArbitraryObject:
    """Stands for any pickled code a checkpoint could smuggle in."""


def test_pickled_code_is_refused_by_weights_only_loading(tmp_path):
    path = tmp_path / 'pickle.pth'
    torch.save({'params_ema': {}, 'hook': ArbitraryObject()}, path)
    with pytest.raises(ValueError, match='is not a PyTorch checkpoint that loads with weights_only=True'):
        aesop(pretrain_network_ae=str(path))


def test_checkpoint_saved_from_a_wrapped_network_loads_without_its_module_prefix(tmp_path):
    """DataParallel/DDP save keys as ``module.<name>``; as BasicSR does, the prefix is dropped."""
    from basicsr.archs.arch_util import default_init_weights
    source = aesop().autoencoder
    default_init_weights(source, 1)
    path = tmp_path / 'ddp.pth'
    torch.save({'params_ema': {f'module.{k}': v for k, v in source.state_dict().items()}}, path)
    loaded = aesop(pretrain_network_ae=str(path)).autoencoder
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in loaded.state_dict().items())


def test_an_entry_that_is_not_a_tensor_is_named(tmp_path):
    state = dict(aesop().autoencoder.state_dict(), note='trained on DF2K')
    path = tmp_path / 'noted.pth'
    torch.save({'params_ema': state}, path)
    with pytest.raises(ValueError, match=r"AESOPLoss.param_key_ae: .*noted.pth' under 'params_ema' is not a state "
                                         r"dict \(entry 'note' is a str\)"):
        aesop(pretrain_network_ae=str(path))


def test_safetensors_file_errors_name_the_option(tmp_path, monkeypatch):
    broken = tmp_path / 'broken.safetensors'
    broken.write_bytes(b'\x00' * 16)
    with pytest.raises(ValueError, match=r"AESOPLoss.pretrain_network_ae: .*broken.safetensors' is not a readable "
                                         r"safetensors file"):
        aesop(pretrain_network_ae=str(broken))
    monkeypatch.setitem(__import__('sys').modules, 'safetensors.torch', None)  # as if not installed
    with pytest.raises(ImportError, match=r"AESOPLoss.pretrain_network_ae: reading .*broken.safetensors' needs the "
                                          r"safetensors package \(pip install safetensors\)"):
        aesop(pretrain_network_ae=str(broken))
