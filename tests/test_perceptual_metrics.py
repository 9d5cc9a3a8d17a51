"""calculate_lpips / calculate_dists: BasicSR metric convention, network loading, and use from val.metrics.

The trunks are stand-in (random) torchvision weights placed in the private TORCH_HOME, so only
claims that hold for any trunk weights are tested: 0 for identical images, symmetry, positive for
different images (the packages' own calibration weights are non-negative, and the per-layer
similarity terms are at most 1). "More distortion scores higher" is not guaranteed for a random
trunk and is not claimed here.
"""
import logging
from urllib.error import URLError

import numpy as np
import pytest
import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from basicsr.utils import tensor2img
from basicsr.utils.registry import METRIC_REGISTRY

from aesop_basicsr.metrics import dists_metric, lower_is_better, lpips_metric
from aesop_basicsr.metrics.perceptual_util import clear_network_cache
from aesop_basicsr.utils.sample_data import load_photo

METRICS = ['calculate_lpips', 'calculate_dists']
DISTS_ZERO_TOL = 1e-5  # DISTS computes variance and covariance by different formulas: ~1e-7 for identical images


@pytest.fixture(scope='module')
def stand_in_trunks(stand_in_alexnet, stand_in_vgg16):
    clear_network_cache()
    yield
    clear_network_cache()


@pytest.fixture(scope='module')
def photos():
    """A real 96x96 BGR photo crop, a lightly and a heavily noised copy (uint8, as BasicSR passes them)."""
    clean = np.ascontiguousarray(load_photo('astronaut')[100:196, 180:276, ::-1])
    rng = np.random.default_rng(0)
    light = np.clip(clean + rng.normal(0, 4, clean.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(clean + rng.normal(0, 40, clean.shape), 0, 255).astype(np.uint8)
    return clean, light, heavy


@pytest.mark.parametrize('name', METRICS)
def test_metric_properties_that_hold_for_any_weights(name, stand_in_trunks, photos):
    metric = METRIC_REGISTRY.get(name)
    clean, light, heavy = photos
    tol = DISTS_ZERO_TOL if name == 'calculate_dists' else 0.
    assert isinstance(metric(clean, clean, crop_border=0), float)
    assert abs(metric(clean, clean, crop_border=0)) <= tol
    for other in (light, heavy):
        ab, ba = metric(clean, other, crop_border=0), metric(other, clean, crop_border=0)
        assert ab == pytest.approx(ba, rel=1e-5, abs=1e-7)
        assert ab > 10 * tol + 1e-6


def rgb_unit_tensor(bgr_uint8: np.ndarray) -> torch.Tensor:
    """A uint8 BGR HWC image as a (1, 3, H, W) RGB float tensor in [0, 1], written out independently."""
    rgb = bgr_uint8[..., [2, 1, 0]].astype(np.float64) / 255.
    return torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float().unsqueeze(0)


@pytest.fixture(scope='module')
def reference_networks(stand_in_trunks):
    """The reference packages' own networks, built their documented way, on the same stand-in trunks."""
    import warnings

    import lpips
    from DISTS_pytorch import DISTS
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ref_lpips = lpips.LPIPS(net='alex', version='0.1', verbose=False).eval()
        ref_dists = DISTS().eval()  # reads the package's alpha/beta from sys.prefix/weights.pt
    return {'calculate_lpips': ref_lpips, 'calculate_dists': ref_dists}


@pytest.mark.parametrize('name', METRICS)
def test_metric_equals_the_reference_network_called_on_rgb_in_its_own_convention(name, reference_networks, photos):
    """LPIPS takes RGB in [-1, 1] (its ``normalize=True`` maps [0, 1] there); DISTS takes RGB in [0, 1].

    So a BGR image must be reordered, and LPIPS's input rescaled; both are checked against the
    reference networks called directly on the RGB tensors.
    """
    metric = METRIC_REGISTRY.get(name)
    ref = reference_networks[name]
    clean, light, heavy = photos
    for other in (light, heavy):
        x, y = rgb_unit_tensor(clean), rgb_unit_tensor(other)
        with torch.no_grad():
            if name == 'calculate_lpips':
                expected = ref(2 * x - 1, 2 * y - 1).item()  # lpips' own convention: [-1, 1]
                assert expected == pytest.approx(ref(x, y, normalize=True).item(), abs=1e-6)
            else:
                expected = ref(x, y).item()
        got = metric(clean, other, crop_border=0)
        assert got == pytest.approx(expected, abs=1e-6)
        # the same score crops as the reference on the cropped image
        xc, yc = rgb_unit_tensor(clean[4:-4, 4:-4]), rgb_unit_tensor(other[4:-4, 4:-4])
        with torch.no_grad():
            cropped = ref(2 * xc - 1, 2 * yc - 1).item() if name == 'calculate_lpips' else ref(xc, yc).item()
        assert metric(clean, other, crop_border=4) == pytest.approx(cropped, abs=1e-6)
    # the two bugs this guards against give other values on a colour photo
    x, y = rgb_unit_tensor(clean), rgb_unit_tensor(light)
    with torch.no_grad():
        if name == 'calculate_lpips':
            unscaled, bgr = ref(x, y).item(), ref(2 * x.flip(1) - 1, 2 * y.flip(1) - 1).item()
            assert abs(unscaled - metric(clean, light, 0)) > 1e-4
        else:
            bgr = ref(x.flip(1), y.flip(1)).item()
    assert abs(bgr - metric(clean, light, 0)) > 1e-5


@pytest.mark.parametrize('name', METRICS)
def test_metric_follows_basicsr_conventions(name, stand_in_trunks, photos):
    """crop_border drops the border, CHW equals HWC, float [0, 255] equals uint8, grey works, shapes must match."""
    metric = METRIC_REGISTRY.get(name)
    clean, light, _ = photos
    tol = DISTS_ZERO_TOL if name == 'calculate_dists' else 0.
    border_only = clean.copy()
    border_only[:4] = 255 - border_only[:4]
    assert metric(clean, border_only, crop_border=0) > 1e-4
    assert abs(metric(clean, border_only, crop_border=4)) <= tol

    hwc = metric(clean, light, crop_border=4)
    assert metric(clean.transpose(2, 0, 1), light.transpose(2, 0, 1), 4, input_order='CHW') == pytest.approx(hwc)
    assert metric(clean.astype(np.float64), light.astype(np.float32), 4) == pytest.approx(hwc, rel=1e-5)
    # BGR in: swapping the channel order of both images changes the score (the networks see RGB)
    assert metric(clean[..., ::-1], light[..., ::-1], 4) != pytest.approx(hwc, rel=1e-6)

    grey, grey_light = clean[..., 1], light[..., 1]
    assert metric(grey, grey_light, 0) > 0
    with pytest.raises(ValueError, match='shapes are different'):
        metric(clean, clean[:-1], crop_border=0)
    with pytest.raises(ValueError, match='input_order'):
        metric(clean, clean, crop_border=0, input_order='NCHW')


@pytest.mark.parametrize('name, package, constructor', [('calculate_lpips', 'lpips', 'LPIPS'),
                                                        ('calculate_dists', 'DISTS_pytorch', 'DISTS')])
def test_network_is_built_once_in_eval_mode_without_grad(name, package, constructor, stand_in_trunks, photos,
                                                         monkeypatch, caplog):
    pkg = pytest.importorskip(package)
    real = getattr(pkg, constructor)
    built = []

    def counting(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pkg, constructor, counting)
    basicsr_logger = logging.getLogger('basicsr')
    basicsr_logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger='basicsr')  # BasicSR's logger does not propagate to the root
    clear_network_cache()
    try:
        clean, light, _ = photos
        metric = METRIC_REGISTRY.get(name)
        scores = [metric(clean, light, crop_border=0) for _ in range(3)]
    finally:
        basicsr_logger.removeHandler(caplog.handler)
    assert len(built) == 1
    assert scores[0] == scores[1] == scores[2]
    net = lpips_metric.lpips_network() if name == 'calculate_lpips' else dists_metric.dists_network()
    assert len(built) == 1
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert next(net.parameters()).device == torch.device('cpu')
    announced = [r.getMessage() for r in caplog.records if 'network loaded on' in r.getMessage()]
    assert announced == [f'{constructor} metric: network loaded on cpu.']
    assert not [r for r in caplog.records if 'better' in r.getMessage()]  # called directly: nothing to say about it


def test_dists_uses_the_package_alpha_beta(stand_in_trunks):
    """The learned alpha/beta come from the package's weights.pt, not the random init of DISTS(load_weights=False)."""
    shipped = torch.load(dists_metric.dists_weight_files()[0], weights_only=True)
    net = dists_metric.dists_network()
    assert torch.equal(net.alpha.cpu(), shipped['alpha']) and torch.equal(net.beta.cpu(), shipped['beta'])


def test_missing_dists_alpha_beta_file_names_where_it_was_looked_for(stand_in_trunks, monkeypatch, tmp_path):
    nowhere = [str(tmp_path / 'a' / 'weights.pt'), str(tmp_path / 'b' / 'weights.pt')]
    monkeypatch.setattr(dists_metric, 'dists_weight_files', lambda: nowhere)
    with pytest.raises(FileNotFoundError, match=r'DISTS metric: the learned alpha/beta file weights.pt .* missing '
                                                rf'\(looked at {nowhere[0]}, {nowhere[1]}\); reinstall'):
        dists_metric._build_dists()


@pytest.mark.parametrize('name, filename', [('calculate_lpips', 'alexnet-owt-7be5be79.pth'),
                                            ('calculate_dists', 'vgg16-397923af.pth')])
def test_offline_without_cached_weights_names_the_file_and_where_to_put_it(name, filename, tmp_path, monkeypatch,
                                                                           photos):
    def offline(url, dst, *args, **kwargs):
        raise URLError('[Errno -2] Name or service not known')

    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    clear_network_cache()
    try:
        clean = photos[0]
        with pytest.raises(FileNotFoundError) as err:
            METRIC_REGISTRY.get(name)(clean, clean, crop_border=0)
    finally:
        clear_network_cache()
    message = str(err.value)
    assert str(tmp_path / 'hub' / 'checkpoints' / filename) in message
    assert f'https://download.pytorch.org/models/{filename}' in message


def test_metrics_from_val_metrics_through_sr_model_validation(stand_in_trunks, paired_x4, tmp_path):
    """An option file's val.metrics runs both metrics in BasicSR's own validation loop, tracked as lower-better."""
    metrics = {
        'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True},
        'lpips': {'type': 'calculate_lpips', 'crop_border': 4, 'better': 'lower'},
        'dists': {'type': 'calculate_dists', 'crop_border': 4, 'better': 'lower'},
    }
    opt = {
        'name': 'metrics_validation', 'model_type': 'SRModel', 'scale': 4, 'num_gpu': 0, 'dist': False, 'rank': 0,
        'world_size': 1, 'is_train': False,
        'network_g': {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                      'num_grow_ch': 4, 'scale': 4},
        'path': {'pretrain_network_g': None, 'visualization': str(tmp_path)},
        'val': {'save_img': False, 'metrics': metrics},
    }
    val_opt = {'name': 'val', 'type': 'PairedImageDataset', 'dataroot_gt': paired_x4['val']['gt'],
               'dataroot_lq': paired_x4['val']['lq'], 'io_backend': {'type': 'disk'}, 'phase': 'val', 'scale': 4}
    loader = build_dataloader(build_dataset(val_opt), val_opt, num_gpu=0, dist=False)
    torch.manual_seed(0)
    model = build_model(opt)
    model.validation(loader, current_iter=1, tb_logger=None, save_img=False)

    expected = {'lpips': [], 'dists': []}
    for data in loader:
        model.feed_data(data)
        model.test()
        sr, gt = tensor2img(model.output), tensor2img(data['gt'])
        expected['lpips'].append(lpips_metric.calculate_lpips(sr, gt, crop_border=4))
        expected['dists'].append(dists_metric.calculate_dists(sr, gt, crop_border=4))
    assert len(expected['lpips']) == 2
    for key in ('lpips', 'dists'):
        assert model.metric_results[key] == pytest.approx(np.mean(expected[key]), rel=1e-5)
        assert model.metric_results[key] > 0
        best = model.best_metric_results['val'][key]
        assert best['better'] == 'lower' and best['val'] == pytest.approx(model.metric_results[key])


@pytest.mark.parametrize('name, constructor', [('calculate_lpips', 'LPIPS'), ('calculate_dists', 'DISTS')])
def test_missing_better_key_is_warned_once_and_only_when_missing(name, constructor, stand_in_trunks, photos,
                                                                 monkeypatch, caplog):
    """BasicSR passes a metric's option dict, ``better`` included, as keyword arguments (calculate_metric)."""
    from basicsr.metrics import calculate_metric
    monkeypatch.setattr(lower_is_better, '_warned', set())
    logger = logging.getLogger('basicsr')
    logger.addHandler(caplog.handler)
    try:
        clean, light, _ = photos
        pair = {'img': clean, 'img2': light}
        calculate_metric(pair, {'type': name, 'crop_border': 0, 'better': 'lower'})
        METRIC_REGISTRY.get(name)(clean, light, crop_border=0)  # called directly, not from an option dict
        assert not [r for r in caplog.records if 'better' in r.getMessage()]
        for _ in range(2):
            calculate_metric(pair, {'type': name, 'crop_border': 0})
    finally:
        logger.removeHandler(caplog.handler)
    warned = [r.getMessage() for r in caplog.records if 'better' in r.getMessage()]
    assert warned == [f"{constructor} metric: lower is better, but its metrics entry ({name}) has no 'better: lower', "
                      'so BasicSR logs the highest (worst) value as Best; add better: lower (aesop-train and AESOP\'s '
                      'models add it themselves).']


def test_lower_is_better_metrics_are_known_by_name():
    lower = ['calculate_lpips', 'calculate_dists', 'calculate_lpips_pytorch', 'calculate_dists_pytorch', 'calculate_niqe',
             'calculate_colour_offset']
    higher = ['calculate_psnr', 'calculate_ssim', 'calculate_ae_psnr', 'calculate_lr_psnr', 'calculate_psnr_pytorch',
              'calculate_hf_energy_ratio', 'no_such_metric', None]
    assert [lower_is_better.is_lower_is_better(name) for name in lower + higher] == [True] * 6 + [False] * 8


@pytest.mark.parametrize('model_type', ['AESOPAEModel', 'ESRGANLDLModel'])
def test_our_models_set_better_lower_for_lower_is_better_metrics(model_type):
    """Under any train.py, AESOP's models track LPIPS (and AESOPAEModel its LR copy) as lower-is-better when the
    option file forgot to say so."""
    from tiny_training import NET_G, TINY_AE
    opt = {
        'name': 'metrics', 'model_type': model_type, 'scale': 4, 'num_gpu': 0, 'dist': False, 'rank': 0,
        'world_size': 1, 'is_train': False, 'path': {'pretrain_network_g': None},
        'network_g': dict(TINY_AE if model_type == 'AESOPAEModel' else NET_G),
        'val': {'metrics': {'lpips': {'type': 'calculate_lpips', 'crop_border': 4},
                            'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}},
    }
    model = build_model(opt)
    model._initialize_best_metric_results('val')
    expected = {'lpips': 'lower', 'psnr': 'higher'}
    if model_type == 'AESOPAEModel':
        expected.update(lpips_lr='lower', psnr_lr='higher')
    assert {name: best['better'] for name, best in model.best_metric_results['val'].items()} == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('name', METRICS)
def test_metric_runs_on_cuda_by_default_and_agrees_with_cpu(name, stand_in_trunks, photos):
    metric = METRIC_REGISTRY.get(name)
    clean, light, _ = photos
    net = lpips_metric.lpips_network() if name == 'calculate_lpips' else dists_metric.dists_network()
    assert next(net.parameters()).is_cuda
    assert metric(clean, light, 0) == pytest.approx(metric(clean, light, 0, device='cpu'), rel=1e-3, abs=1e-5)
