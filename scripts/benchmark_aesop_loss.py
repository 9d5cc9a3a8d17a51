"""Cost of a full-size AESOPLoss forward+backward next to L1Loss, measured in one run.

    python scripts/benchmark_aesop_loss.py [--size 128] [--repeats 5] [--device cpu|cuda] [--bf16]

Prints the median wall time of each loss's forward+backward on a 1x3xSxS HR patch and their ratio,
and, for scale, a full-size RRDBNet generator's forward+backward on the matching LR patch (what a
training step costs without any loss). All are timed interleaved, so machine noise hits them alike;
report the ratios, not the seconds.
"""
import argparse
import statistics
import time

import aesop_basicsr  # noqa: F401
import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss


def time_step(loss: torch.nn.Module, pred: torch.Tensor, target: torch.Tensor, device: torch.device) -> float:
    pred = pred.detach().requires_grad_(True)
    if device.type == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    loss(pred, target).backward()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - start


def time_generator_step(generator: torch.nn.Module, lr: torch.Tensor, device: torch.device) -> float:
    if device.type == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    generator(lr).mean().backward()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args()
    device = torch.device(args.device)

    aesop = build_loss(dict(type='AESOPLoss', autoencoder=dict(type='AESOPAutoEncoder', scale=4))).to(device)
    l1 = build_loss(dict(type='L1Loss')).to(device)
    generator = build_network(dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23,
                                   num_grow_ch=32, scale=4)).to(device)
    torch.manual_seed(0)
    target = torch.rand(1, 3, args.size, args.size, device=device)
    pred = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    lr = torch.rand(1, 3, args.size // 4, args.size // 4, device=device)
    for loss in (aesop, l1):  # warm-up
        time_step(loss, pred, target, device)
    time_generator_step(generator, lr, device)

    times = {'AESOPLoss': [], 'L1Loss': [], 'RRDBNet G': []}
    for _ in range(args.repeats):
        times['AESOPLoss'].append(time_step(aesop, pred, target, device))
        times['L1Loss'].append(time_step(l1, pred, target, device))
        times['RRDBNet G'].append(time_generator_step(generator, lr, device))
    median = {name: statistics.median(values) for name, values in times.items()}
    params = sum(p.numel() for p in aesop.autoencoder.parameters())
    print(f'device={device} patch=1x3x{args.size}x{args.size} AE params={params / 1e6:.1f}M '
          f'threads={torch.get_num_threads()} repeats={args.repeats}')
    for name, value in median.items():
        print(f'{name:10s} forward+backward median {value * 1e3:10.2f} ms')
    print(f'ratio AESOPLoss / L1Loss = {median["AESOPLoss"] / median["L1Loss"]:.0f}x')
    print(f'ratio AESOPLoss / RRDBNet generator forward+backward on the LR patch = '
          f'{median["AESOPLoss"] / median["RRDBNet G"]:.2f}x')


if __name__ == '__main__':
    main()
