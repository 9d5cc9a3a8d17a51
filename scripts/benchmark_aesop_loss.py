"""Cost and accuracy of AESOPLoss in each mode, and of a whole ESRGAN+LDL training step, measured in one run.

    python scripts/benchmark_aesop_loss.py [--quick] [--device cpu|cuda] [--part loss|step|all]

1. Loss: forward+backward of AESOPLoss in each mode next to the authors' formulation (no-grad AE(GT),
   AE(SR), L1, fp32, contiguous tensors) on the same weights, timed interleaved (round-robin, so
   machine noise hits all modes alike; speed-ups are medians of per-round ratios, and ratios of the
   best times; on CPU with one thread the times are the process's CPU time, else wall times), and each mode's
   loss error and gradient cosine against a float64 computation of Eq. 8, at Gaussian residuals
   0.05 and 0.01 on a real photo and on a real SR/HR pair (MATLAB-bicubic x4 down and up).
2. Step: a whole ESRGANLDLModel generator+discriminator step (RRDBNet G, VGG-style D, VGG19
   perceptual loss on stand-in weights, LDL, GAN, EMA) with L1 vs AESOP in each mode as the pixel
   loss: iterations/s (interleaved) and peak memory. CUDA: max allocated, in process. CPU: peak
   RSS (VmHWM) of a fresh process per mode over its first steps, above its RSS once built, with
   glibc's mmap threshold pinned so freed tensors leave the RSS (see the README).

The auto-encoder is the paper's (2-RRDB encoder, 23-block RRDBNet decoder). Its weights carry
signal: BasicSR's default_init_weights at scale 0.5 (kaiming-normal x 0.5) for every convolution,
biases U(-0.01, 0.01); psi then maps a photo (std 0.29) to an output of std ~0.5.
Sizes: CUDA, the paper's (batch 16, 128-px GT, full networks); CPU, 1x128-px for the loss and
batch 2 with a 6-block generator for the step (--quick: 64-px loss, batch 1 and a 2-block generator for the
step, no compile mode).
"""
import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

os.environ.setdefault('TORCHINDUCTOR_COMPILE_THREADS', '1')  # no compile-worker pool on a shared machine
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
import aesop_basicsr  # noqa: E402,F401  (registers AESOPLoss, AESOPAutoEncoder, ESRGANLDLModel)
from basicsr.archs.arch_util import default_init_weights  # noqa: E402
from basicsr.losses import build_loss  # noqa: E402
from basicsr.utils import get_root_logger, img2tensor  # noqa: E402

from aesop_basicsr.losses.exact_fp32 import exact_fp32, run_exact_fp32  # noqa: E402
from aesop_basicsr.utils.device_support import describe_cpu, native_bf16  # noqa: E402
from aesop_basicsr.utils.sample_data import load_photo, matlab_bicubic_resize  # noqa: E402

WEIGHT_SCALE = 0.5
LOSS_MODES: Dict[str, Optional[dict]] = {  # None: the authors' formulation
    'authors fp32': None,
    'default': {},
    'fp32, winograd off': dict(winograd=False),
    'fp32 checkpoint': dict(checkpoint=True),
    'fp32 compile': dict(compile=True),
    'bf16': dict(precision='bf16'),
    'bf16 checkpoint': dict(precision='bf16', checkpoint=True),
}
STEP_MODES = ('L1', 'default', 'fp32 checkpoint', 'bf16', 'bf16 checkpoint')


def ae_opt(num_block: int = 23) -> dict:
    return dict(type='AESOPAutoEncoder', scale=4, num_feat=64, num_grow_ch=32, num_block=2,
                decoder=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=64, num_block=num_block,
                             num_grow_ch=32, scale=4))


def signal_weights(decoder_blocks: int) -> dict:
    """A state dict of the auto-encoder whose output depends on its input (see the module docstring)."""
    torch.manual_seed(1)
    net = build_loss(dict(type='AESOPLoss', autoencoder=ae_opt(decoder_blocks), channels_last=False)).autoencoder
    default_init_weights(net, WEIGHT_SCALE)
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.bias.data.uniform_(-0.01, 0.01)
    return copy.deepcopy(net.state_dict())


def build_aesop(state: dict, decoder_blocks: int, device: torch.device, **modes) -> torch.nn.Module:
    loss = build_loss(dict(type='AESOPLoss', autoencoder=ae_opt(decoder_blocks), **modes))
    loss.autoencoder.load_state_dict(state)
    return loss.to(device)


class AuthorsLoss(torch.nn.Module):
    """The authors' formulation: no-grad AE(GT), AE(SR), L1, in the framework's default fp32."""

    def __init__(self, net: torch.nn.Module, autocast: Optional[torch.dtype] = None, tf32_off: bool = False) -> None:
        super().__init__()
        self.net = net
        self.autocast = autocast
        self.tf32_off = tf32_off

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.tf32_off:  # CUDA: the same two passes with TF32 kept out (forward and backward)
            with exact_fp32(target.device), torch.no_grad():
                target_ae = self.net(target)
            return F.l1_loss(run_exact_fp32(self.net, pred), target_ae)
        with torch.autocast(pred.device.type, dtype=self.autocast or torch.bfloat16, enabled=bool(self.autocast)):
            with torch.no_grad():
                target_ae = self.net(target)
            pred_ae = self.net(pred)
        return F.l1_loss(pred_ae.float(), target_ae.float())


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize()


def rgb_batch(*images_bgr: np.ndarray) -> torch.Tensor:
    """BGR uint8 images (as loaded) -> an (N, 3, H, W) RGB batch in [0, 1], by BasicSR's img2tensor."""
    return torch.stack(img2tensor([image.astype(np.float32) / 255. for image in images_bgr]))


def photo(size: int, batch: int) -> torch.Tensor:
    """Real photo crops (skimage astronaut, coffee, ...) as (batch, 3, size, size) in [0, 1]."""
    from aesop_basicsr.utils.sample_data import PHOTO_NAMES
    crops = []
    for i in range(batch):
        image = load_photo(PHOTO_NAMES[i % 4])
        top = (image.shape[0] - size) // 2 + 8 * (i // 4)
        left = (image.shape[1] - size) // 2
        crops.append(image[top:top + size, left:left + size])
    return rgb_batch(*crops)


def real_sr_pair(size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(SR, HR): an HR photo crop and its MATLAB-bicubic x4 downscale, upscaled back by bicubic x4."""
    hr = load_photo('astronaut')
    top, left = 120, 180
    hr = hr[top:top + size, left:left + size]
    sr = matlab_bicubic_resize(matlab_bicubic_resize(hr, 0.25), 4)

    return rgb_batch(sr), rgb_batch(hr)


def loss_and_grad(loss: Callable, pred: torch.Tensor, target: torch.Tensor) -> Tuple[float, torch.Tensor]:
    pred = pred.detach().clone().requires_grad_(True)
    value = loss(pred, target)
    value.backward()
    return float(value.detach()), pred.grad.detach().double().flatten()


def cpu_time_clock(device: torch.device) -> bool:
    """One CPU thread: this process's CPU time (the work done, whatever else the shared machine runs)."""
    return device.type == 'cpu' and torch.get_num_threads() == 1


def clock(device: torch.device) -> float:
    """CPU time with one CPU thread; otherwise wall time (after synchronising CUDA)."""
    sync(device)
    return time.process_time() if cpu_time_clock(device) else time.perf_counter()


def timed(loss: Callable, pred: torch.Tensor, target: torch.Tensor, device: torch.device) -> float:
    pred = pred.detach().requires_grad_(True)
    start = clock(device)
    loss(pred, target).backward()
    return clock(device) - start


def loss_benchmark(args, device: torch.device) -> None:
    blocks = 23
    state = signal_weights(blocks)
    logger = get_root_logger()
    logger.setLevel('ERROR')
    losses: Dict[str, Callable] = {}
    for name, modes in LOSS_MODES.items():
        if modes is None:
            net = build_aesop(state, blocks, device, channels_last=False).autoencoder
            losses[name] = AuthorsLoss(net)
            if device.type == 'cuda':
                losses['authors fp32, TF32 off'] = AuthorsLoss(net, tf32_off=True)
        elif modes.get('compile') and (args.no_compile or args.quick):
            continue
        elif name == 'fp32, winograd off' and device.type == 'cpu' and torch.get_num_threads() > 1:
            losses[name] = build_aesop(state, blocks, device, **modes)  # the default here; Winograd forced:
            losses['fp32, winograd on'] = build_aesop(state, blocks, device, winograd=True)
        else:
            losses[name] = build_aesop(state, blocks, device, **modes)
    # plain autocast's error is bf16 rounding, the same on every device; where bf16 is emulated its row
    # costs minutes (oneDNN at AVX2: ~10x fp32's time), so it is measured where bf16 is native
    extra_accuracy = {}
    if native_bf16(device).native:
        extra_accuracy['plain bf16 autocast'] = AuthorsLoss(losses['authors fp32'].net, torch.bfloat16)
    if device.type == 'cuda':
        extra_accuracy['plain fp16 autocast'] = AuthorsLoss(losses['authors fp32'].net, torch.float16)

    # accuracy against float64 (batch 1: accuracy does not depend on the batch)
    net64 = copy.deepcopy(losses['authors fp32'].net).double()
    size = args.loss_size
    target = photo(size, 1).to(device)
    torch.manual_seed(2)
    cases = {f'residual {r}': (target + r * torch.randn_like(target), target) for r in (0.05, 0.01)}
    sr, hr = real_sr_pair(size)
    cases['real SR/HR'] = (sr.to(device), hr.to(device))
    heading(f'AESOPLoss accuracy vs float64 Eq. 8 (1x3x{size}x{size}); loss rel. error | gradient cosine', device)
    header = f'{"mode":28s}' + ''.join(f'{c:>26s}' for c in cases)
    print(header)
    reference = {}
    for case, (pred, tgt) in cases.items():
        reference[case] = loss_and_grad(lambda p, t: F.l1_loss(net64(p), net64(t).detach()), pred.double(),
                                        tgt.double())
    accuracy = {}
    rows = dict(losses, **extra_accuracy)
    for name, loss in rows.items():
        cells = []
        for case, (pred, tgt) in cases.items():
            value, grad = loss_and_grad(loss, pred, tgt)
            ref_value, ref_grad = reference[case]
            error = abs(value - ref_value) / ref_value
            cosine = float(F.cosine_similarity(grad, ref_grad, 0))
            accuracy[(name, case)] = (error, cosine)
            cells.append(f'{error:12.2e} | {cosine:9.6f}')
        print(f'{name:28s}' + ''.join(f'{c:>26s}' for c in cells))
    if not extra_accuracy:
        print('(plain bf16 autocast: not measured here, bf16 is emulated on this device; its error is bf16 rounding, '
              'the same as on a device with native bf16)')
    if device.type == 'cuda':
        print(f'(authors fp32 runs with torch.backends.cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, '
              'PyTorch\'s default)')

    # speed, interleaved
    batch = args.batch
    target = photo(size, batch).to(device)
    pred = target + 0.05 * torch.randn_like(target)
    compile_s = {}
    for name, loss in losses.items():  # warm-up (and compilation)
        compile_s[name] = sum(timed(loss, pred, target, device) for _ in range(2 if 'compile' in name else 1))
    times: Dict[str, List[float]] = {name: [] for name in losses}
    for _ in range(args.repeats):
        for name, loss in losses.items():
            times[name].append(timed(loss, pred, target, device))
    base = times['authors fp32']
    heading(f'AESOPLoss forward+backward, {batch}x3x{size}x{size}, device={describe(device)}, '
            f'threads={torch.get_num_threads()}, {args.repeats} interleaved rounds', device)
    unit = 'CPU' if cpu_time_clock(device) else 'wall'
    print(f'times are {unit} times')
    print(f'{"mode":28s}{"median ms":>12s}{"best ms":>10s}{"speed-up: median":>18s}{"best":>8s}'
          f'{"first call s":>14s}')
    for name, values in times.items():
        ratio = statistics.median(b / v for b, v in zip(base, values))
        best = min(base) / min(values)
        print(f'{name:28s}{statistics.median(values) * 1e3:12.1f}{min(values) * 1e3:10.1f}{ratio:17.2f}x{best:7.2f}x'
              f'{compile_s[name]:14.1f}')
    print('(speed-up vs the authors\' formulation: "median", the median of per-round ratios; "best", the ratio of '
          'the best times,\n where noise only adds time; first call includes any compilation)')
    targets(accuracy, times, device)


def targets(accuracy: dict, times: dict, device: torch.device) -> None:
    base = times['authors fp32']

    def speedup(name):
        median = statistics.median(b / v for b, v in zip(base, times[name]))
        return f'{median:.2f}x median, {min(base) / min(times[name]):.2f}x best'

    cases = sorted({case for _, case in accuracy})
    print('\n== targets (' + describe_cpu() + ')')
    default_ok = all(accuracy[('default', c)][0] <= 1e-4 and accuracy[('default', c)][1] >= 0.9999 for c in cases)
    print(f'default: {speedup("default")} (target >= 1.2x); loss error <= 1e-4 and cosine >= 0.9999 '
          f'in every case: {default_ok}')
    bf16_ok = all(accuracy[('bf16', c)][0] <= 1e-2 and accuracy[('bf16', c)][1] >= 0.99 for c in cases)
    if native_bf16(device).native:
        print(f'bf16: {speedup("bf16")} (target >= 1.5x); loss error <= 1% and cosine >= 0.99 in every case: '
              f'{bf16_ok}')
    else:
        vs_default = statistics.median(d / b for d, b in zip(times['default'], times['bf16']))
        print(f'bf16 (not native here, runs fp32): {speedup("bf16")}, {vs_default:.2f}x the default\'s speed '
              f'(target: no slower than fp32); accuracy as fp32: {bf16_ok}')


# --- whole training step -------------------------------------------------------------------------
def stand_in_vgg19() -> None:
    """A randomly initialised VGG19 where torch.hub looks for the ImageNet one (nothing is downloaded)."""
    if 'TORCH_HOME' not in os.environ:
        os.environ['TORCH_HOME'] = os.path.join(tempfile.gettempdir(), 'aesop-benchmark-torch-home')
    path = os.path.join(os.environ['TORCH_HOME'], 'hub', 'checkpoints', 'vgg19-dcbb9e9d.pth')
    if not os.path.isfile(path):
        from torchvision.models import vgg19
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.manual_seed(0)
        torch.save(vgg19().state_dict(), path + '.tmp')
        os.replace(path + '.tmp', path)


def step_sizes(args, device: torch.device) -> dict:
    if device.type == 'cuda':
        return dict(batch=16, gt=128, g_blocks=23)
    return dict(batch=1 if args.quick else 2, gt=128, g_blocks=2 if args.quick else 6)


def build_model(args, device: torch.device, pixel: str):
    from basicsr.models import build_model as basicsr_build_model
    sizes = step_sizes(args, device)
    l1 = {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}
    train = {
        'ema_decay': 0.999,
        'optim_g': {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]},
        'optim_d': {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]},
        'scheduler': {'type': 'MultiStepLR', 'milestones': [10**6], 'gamma': 0.5},
        'total_iter': 10**6, 'warmup_iter': -1,
        'pixel_opt': dict(l1), 'ldl_opt': dict(l1),
        'perceptual_opt': {'type': 'PerceptualLoss', 'layer_weights': {'conv1_2': 0.1, 'conv2_2': 0.1, 'conv3_4': 1,
                                                                        'conv4_4': 1, 'conv5_4': 1},
                           'vgg_type': 'vgg19', 'use_input_norm': True, 'range_norm': False,
                           'perceptual_weight': 1.0, 'style_weight': 0, 'criterion': 'l1'},
        'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'real_label_val': 1.0, 'fake_label_val': 0.0,
                    'loss_weight': 5e-3},
        'net_d_iters': 1, 'net_d_init_iters': 0,
    }
    opt = {'name': 'benchmark', 'model_type': 'ESRGANLDLModel', 'scale': 4, 'dist': False, 'rank': 0,
           'world_size': 1, 'is_train': True, 'num_gpu': 1 if device.type == 'cuda' else 0,
           'network_g': {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64,
                         'num_block': sizes['g_blocks'], 'num_grow_ch': 32, 'scale': 4},
           'network_d': {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3, 'num_feat': 64, 'input_size': sizes['gt']},
           'path': {'pretrain_network_g': None, 'pretrain_network_d': None}, 'train': train}
    torch.manual_seed(0)
    model = basicsr_build_model(opt)
    gt = photo(sizes['gt'], sizes['batch'])
    lq = F.interpolate(gt, scale_factor=0.25, mode='bicubic', antialias=True, align_corners=False).clamp(0, 1)
    data = {'lq': lq.to(device), 'gt': gt.to(device)}
    return model, data


def pixel_losses(args, device: torch.device, names) -> Dict[str, torch.nn.Module]:
    state = signal_weights(23)
    losses = {}
    for name in names:
        if name == 'L1':
            losses[name] = build_loss({'type': 'L1Loss'}).to(device)
        else:
            losses[name] = build_aesop(state, 23, device, **LOSS_MODES[name])
    return losses


def one_step(model, data, pixel: torch.nn.Module, it: int, device: torch.device) -> float:
    model.cri_pix.pixel = pixel
    start = clock(device)
    model.feed_data(data)
    model.optimize_parameters(it)
    return clock(device) - start


def rss_kib(field: str) -> int:
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def memory_probe(args, device: torch.device, name: str) -> None:
    """(Subprocess) Peak RSS of the first steps above the RSS once everything is built, in MiB."""
    get_root_logger().setLevel('ERROR')
    model, data = build_model(args, device, name)
    pixel = pixel_losses(args, device, [name])[name]
    model.cri_pix.pixel = pixel
    with open('/proc/self/clear_refs', 'w') as refs:  # reset VmHWM to the current RSS (Linux >= 4.0)
        refs.write('5')
    before = rss_kib('VmRSS')
    for it in range(1, 3):
        one_step(model, data, pixel, it, device)
    print(json.dumps({'peak_mib': (rss_kib('VmHWM') - before) / 1024}))


def step_benchmark(args, device: torch.device) -> None:
    stand_in_vgg19()
    get_root_logger().setLevel('ERROR')
    sizes = step_sizes(args, device)
    model, data = build_model(args, device, 'L1')
    losses = pixel_losses(args, device, STEP_MODES)
    peak: Dict[str, float] = {}
    for it, (name, pixel) in enumerate(losses.items(), start=1):  # warm-up
        one_step(model, data, pixel, it, device)
    if device.type == 'cuda':
        for name, pixel in losses.items():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            one_step(model, data, pixel, 100, device)
            peak[name] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', OMP_NUM_THREADS=str(torch.get_num_threads()))
        for name in losses:
            command = [sys.executable, os.path.abspath(__file__), '--memory-probe', name, '--device', 'cpu']
            command += ['--quick'] if args.quick else []
            proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            lines = [line for line in proc.stdout.splitlines() if line.startswith('{')]
            if proc.returncode or not lines:
                print(f'memory probe {name} failed:\n{proc.stderr[-2000:]}')
                peak[name] = float('nan')
            else:
                peak[name] = json.loads(lines[-1])['peak_mib']
    times: Dict[str, List[float]] = {name: [] for name in losses}
    it = 10
    for _ in range(args.steps):
        for name, pixel in losses.items():
            it += 1
            times[name].append(one_step(model, data, pixel, it, device))
    what = ('CUDA max allocated above the model, wall times' if device.type == 'cuda' else
            'peak RSS above the built model, CPU times')
    heading(f'ESRGAN+LDL training step (G RRDBNet {sizes["g_blocks"]} blocks, VGG-style D, VGG19 perceptual '
            f'(stand-in weights), LDL, GAN, EMA), batch {sizes["batch"]}, GT {sizes["gt"]} px, '
            f'device={describe(device)}, {args.steps} interleaved rounds', device)
    print(f'{"pixel loss":20s}{"it/s":>10s}{"best it/s":>11s}{"vs L1":>8s}{"peak MiB":>10s}{"AESOP extra MiB":>17s}')
    l1 = times['L1']
    for name, values in times.items():
        ratio = statistics.median(a / b for a, b in zip(l1, values))
        extra = peak[name] - peak['L1']
        print(f'{name:20s}{1 / statistics.median(values):10.3f}{1 / min(values):11.3f}{ratio:7.2f}x'
              f'{peak[name]:10.0f}{extra:17.0f}')
    print(f'({what}; it/s from the median and the best step time; "vs L1": step speed relative to the L1 '
          'step, median of per-round ratios)')
    half = (peak['fp32 checkpoint'] - peak['L1']) / max(peak['default'] - peak['L1'], 1e-9)
    print(f'target: checkpoint=true keeps {half:.2f} of the default mode\'s extra peak memory (target <= 0.5)')


def heading(title: str, device: torch.device) -> None:
    """A table's title, then the machine it was measured on (the CPU always; figures differ per CPU class)."""
    print(f'\n== {title}')
    print(describe_cpu())
    bf16 = native_bf16(device)
    if not bf16.native:
        print(f'(precision bf16 runs in fp32 here: {bf16.reason})')


def describe(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return 'cpu'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--quick', action='store_true', help='smaller sizes and fewer repeats (a few minutes)')
    parser.add_argument('--part', choices=('loss', 'step', 'all'), default='all')
    parser.add_argument('--repeats', type=int, default=None, help='interleaved rounds of the loss timing')
    parser.add_argument('--steps', type=int, default=None, help='interleaved rounds of the training step')
    parser.add_argument('--threads', type=int, default=1, help='CPU threads (the shared machine: 1)')
    parser.add_argument('--no-compile', action='store_true', help='skip the compile modes')
    parser.add_argument('--memory-probe', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == 'cpu':
        torch.set_num_threads(args.threads)
    cuda = device.type == 'cuda'
    args.loss_size = 128 if cuda or not args.quick else 64
    args.batch = 16 if cuda else 1
    args.repeats = args.repeats or (7 if args.quick else (20 if cuda else 11))
    args.steps = args.steps or (3 if args.quick else (10 if cuda else 5))
    if args.memory_probe:
        stand_in_vgg19()
        return memory_probe(args, device, args.memory_probe)
    print(f'torch {torch.__version__}; auto-encoder weights: default_init_weights scale {WEIGHT_SCALE}, '
          f'biases U(-0.01, 0.01)')
    if args.part in ('loss', 'all'):
        loss_benchmark(args, device)
    if args.part in ('step', 'all'):
        step_benchmark(args, device)


if __name__ == '__main__':
    main()
