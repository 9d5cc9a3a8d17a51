"""What LPIPS and DISTS share: BasicSR-convention image input, a per-process network cache, weight files.

Both metrics wrap a maintained reference package (``lpips``, ``DISTS_pytorch``) whose trunk is a
torchvision ImageNet classifier fetched through ``torch.hub`` into ``$TORCH_HOME/hub/checkpoints``.
Where that file is missing and cannot be downloaded (offline), the error names the file, the URL
and the path to put it at, instead of a bare ``URLError``.
"""
import os
import warnings
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
from basicsr.metrics.metric_util import reorder_image
from basicsr.utils import get_root_logger
from torch import Tensor, nn

_NETWORKS: Dict[Tuple[str, str], nn.Module] = {}


def metric_device(device: Optional[str] = None) -> torch.device:
    """``device`` if given, else the current CUDA device (where BasicSR models run) or the CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def hub_checkpoint(url: str) -> str:
    """Where ``torch.hub`` (and so torchvision) keeps the file downloaded from ``url``."""
    return os.path.join(torch.hub.get_dir(), 'checkpoints', os.path.basename(url))


def cached_network(name: str, device: torch.device, build: Callable[[], nn.Module], note: str = '') -> nn.Module:
    """Build ``name`` once per process and device, in eval mode with gradients off; log it (with ``note``)."""
    key = (name, str(device))
    if key not in _NETWORKS:
        net = build().to(device).eval()
        net.requires_grad_(False)
        _NETWORKS[key] = net
        get_root_logger().info(f'{name} metric: network loaded on {device}. {note}'.rstrip())
    return _NETWORKS[key]


def clear_network_cache() -> None:
    """Forget the cached networks (the next call rebuilds them; for tests and after changing weight files)."""
    _NETWORKS.clear()


def build_with_torchvision_weights(metric: str, url: str, build: Callable[[], nn.Module]) -> nn.Module:
    """Run ``build`` (which loads torchvision's ImageNet weights from ``url``) with an actionable error.

    Args:
        metric: Metric name for messages, e.g. ``LPIPS``.
        url: The torchvision weights URL that ``build`` loads, e.g. ``AlexNet_Weights.IMAGENET1K_V1.url``.
        build: Builds the network; torchvision downloads the weights if they are not cached.
    """
    path = hub_checkpoint(url)
    if not os.path.isfile(path):
        get_root_logger().info(f'{metric} metric: {path} is not cached; torchvision will download {url}.')
    try:
        with warnings.catch_warnings():
            # the reference packages use torchvision's legacy ``pretrained=True`` argument
            warnings.filterwarnings('ignore', message=r".*(pretrained|weight enum).*", category=UserWarning)
            return build()
    except Exception as err:
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f'{metric} metric: the ImageNet weights file {os.path.basename(path)} is not in the torch hub '
                f'cache and could not be downloaded ({type(err).__name__}: {err}). Download {url} by hand and '
                f'put it at {path} (the cache is $TORCH_HOME/hub/checkpoints; TORCH_HOME defaults to '
                f'~/.cache/torch).') from err
        raise RuntimeError(f'{metric} metric: could not load the weights file {path} ({type(err).__name__}: '
                           f'{err}). If it is damaged, delete it and download {url} again.') from err


def image_to_tensor(img: np.ndarray, crop_border: int, input_order: str, device: torch.device) -> Tensor:
    """A BasicSR metric image (BGR, [0, 255], uint8 or float, HWC or CHW) as a (1, 3, H, W) RGB tensor in [0, 1]."""
    if input_order not in ('HWC', 'CHW'):
        raise ValueError(f'Wrong input_order {input_order}. Supported input_orders are "HWC" and "CHW"')
    img = reorder_image(np.asarray(img), input_order=input_order)
    if crop_border != 0:
        img = img[crop_border:-crop_border, crop_border:-crop_border, ...]
    channels = img.shape[2]
    if channels == 1:
        img = np.repeat(img, 3, axis=2)
    elif channels == 3:
        img = img[..., ::-1]  # BGR (cv2, BasicSR's tensor2img) -> RGB, the order the networks were trained on
    else:
        raise ValueError(f'Expected a grey or 3-channel image, got {channels} channels.')
    tensor = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32) / 255.)
    return tensor.permute(2, 0, 1).unsqueeze(0).to(device)


def image_pair_to_tensors(img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str,
                          device: torch.device) -> Tuple[Tensor, Tensor]:
    """Both images of a metric call as tensors (see ``image_to_tensor``), after checking their shapes agree."""
    if img.shape != img2.shape:
        raise ValueError(f'Image shapes are different: {img.shape}, {img2.shape}.')
    return (image_to_tensor(img, crop_border, input_order, device),
            image_to_tensor(img2, crop_border, input_order, device))


def perceptual_distance(net: nn.Module, img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str,
                        **forward_kwargs) -> float:
    """``net(x, y, **forward_kwargs)`` on both images of a BasicSR metric call, as a float, without gradients."""
    x, y = image_pair_to_tensors(img, img2, crop_border, input_order, next(net.parameters()).device)
    with torch.no_grad():
        return float(net(x, y, **forward_kwargs).item())
