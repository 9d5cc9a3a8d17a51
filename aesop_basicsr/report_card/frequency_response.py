"""How strongly AESOP and L1 respond to a perturbation of one spatial frequency.

AESOP (Eq. 8) should penalise what the LR image determines and ignore the rest. For an x``s``
auto-encoder psi = D(E(.)) that means: a small sinusoid h of frequency f added to a real HR image x
should give ``mean |psi(x + h) - psi(x)|`` close to L1's ``mean |h|`` below the LR Nyquist frequency
``1 / (2 s)`` cycles per HR pixel, and close to zero above it (the LR grid cannot hold it).

:func:`measure_frequency_response` sweeps f over sinusoids with a whole number of periods across
square HR crops, horizontal and vertical, each at a random phase, and reports per frequency (mean
over crops and both orientations, divided by the amplitude):

- ``l1``: ``mean |h|`` (2 / pi for a sinusoid: the same at every frequency);
- ``aesop``: ``mean |psi(x + h) - psi(x)|`` (AESOPLoss with the l1 criterion);
- ``encoder_gain``: the amplitude of ``E(x + h) - E(x)`` at h's frequency (least squares over the
  LR crop without its border), i.e. the encoder's transfer function |H(f)|, aliasing included.

For the fixed encoders, |H(f)| is known: :func:`box_transfer` (``area``) and :func:`bicubic_transfer`
(``bicubic``; also MATLAB's antialiased ``imresize``, the LR the learned encoder is trained towards).
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

DEFAULT_AMPLITUDE = 0.02  # about 5 grey levels: small enough that psi responds about linearly
ORIENTATIONS = ('horizontal', 'vertical')


def lr_nyquist(scale: int) -> float:
    """The LR Nyquist frequency in cycles per HR pixel."""
    return 1 / (2 * scale)


def box_transfer(frequencies: np.ndarray, scale: int) -> np.ndarray:
    """|H(f)| of averaging ``scale`` neighbouring samples (``avg_pool2d``), f in cycles per HR pixel."""
    f = np.asarray(frequencies, np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        gain = np.abs(np.sin(np.pi * scale * f) / (scale * np.sin(np.pi * f)))
    return np.where(np.isclose(np.sin(np.pi * f), 0), 1.0, gain)


def keys_cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (a = -0.5: MATLAB's imresize and torch's antialiased bicubic)."""
    x = np.abs(x)
    return np.where(x <= 1, (a + 2) * x**3 - (a + 3) * x**2 + 1,
                    np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0))


def bicubic_transfer(frequencies: np.ndarray, scale: int) -> np.ndarray:
    """|H(f)| of antialiased bicubic downscaling by an integer ``scale``: the cubic kernel stretched by
    ``scale``, taps at the HR pixels around each LR pixel centre, weights normalised to sum to 1."""
    offsets = np.arange(-2 * scale, 2 * scale + 1, dtype=np.float64)  # HR pixels relative to s*m
    weights = keys_cubic((offsets - (scale - 1) / 2) / scale)
    weights /= weights.sum()
    f = np.asarray(frequencies, np.float64)[:, None]
    return np.abs((weights[None, :] * np.exp(-2j * np.pi * f * offsets[None, :])).sum(axis=1))


def encoder_reference(encoder_type: str, frequencies: np.ndarray, scale: int) -> Dict[str, np.ndarray]:
    """The known transfer function to set the measured encoder gain against, with its label."""
    if encoder_type == 'area':
        return {'label': 'box average (theory)', 'gain': box_transfer(frequencies, scale)}
    if encoder_type == 'bicubic':
        return {'label': 'antialiased bicubic (theory)', 'gain': bicubic_transfer(frequencies, scale)}
    return {'label': 'MATLAB bicubic LR (what the encoder is trained to match)',
            'gain': bicubic_transfer(frequencies, scale)}


def sweep_cycles(crop: int, scale: int, count: int = 20) -> np.ndarray:
    """Whole numbers of periods across a ``crop``-px square for the sweep, about evenly spaced.

    Left out: multiples of ``crop / (2 * scale)`` (they land on the LR grid's DC or Nyquist, where a
    sampled sinusoid's amplitude depends on its phase) and the HR Nyquist ``crop / 2``.
    """
    if crop % (2 * scale):
        raise ValueError(f'crop={crop} must be a multiple of 2 * scale = {2 * scale}.')
    period = crop // (2 * scale)
    cycles = np.unique(np.round(np.linspace(1, crop // 2 - 1, count)).astype(int))
    cycles = np.where(cycles % period == 0, cycles + 1, cycles)
    return np.unique(cycles[cycles < crop // 2])


def sinusoid(size: int, cycles: int, orientation: str, phase: float) -> Tensor:
    """A (1, 1, size, size) unit sinusoid with ``cycles`` periods across the square, float64."""
    wave = torch.sin(2 * np.pi * cycles * torch.arange(size, dtype=torch.float64) / size + phase)
    if orientation == 'horizontal':  # varies along the width
        return wave.view(1, 1, 1, size).expand(1, 1, size, size)
    if orientation == 'vertical':
        return wave.view(1, 1, size, 1).expand(1, 1, size, size)
    raise ValueError(f'orientation must be one of {ORIENTATIONS}; got {orientation!r}.')


def fitted_amplitude(profile: np.ndarray, cycles_per_sample: float) -> float:
    """Amplitude of the sinusoid of the given frequency that best fits a 1-D signal (least squares)."""
    m = np.arange(profile.size, dtype=np.float64)
    basis = np.stack([np.sin(2 * np.pi * cycles_per_sample * m), np.cos(2 * np.pi * cycles_per_sample * m)], axis=1)
    coef = np.linalg.lstsq(basis, profile, rcond=None)[0]
    return float(np.hypot(*coef))


@dataclass
class FrequencyResponse:
    """Responses per unit amplitude at each frequency (cycles per HR pixel)."""
    scale: int
    frequencies: np.ndarray
    l1: np.ndarray
    aesop: np.ndarray
    encoder_gain: np.ndarray
    amplitude: float
    crops: int
    encoder_type: str = 'rrdb'
    reference: Dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def nyquist(self) -> float:
        return lr_nyquist(self.scale)

    @property
    def relative(self) -> np.ndarray:
        """AESOP's response divided by L1's: about 1 where AESOP penalises like L1, 0 where it ignores."""
        return self.aesop / self.l1

    def band_mean(self, band: str) -> float:
        """Mean of :attr:`relative` clearly below (f <= 0.8 f_N) or above (f >= 1.25 f_N) the LR Nyquist."""
        f = self.frequencies
        mask = f <= 0.8 * self.nyquist if band == 'below' else f >= 1.25 * self.nyquist
        if not mask.any():
            raise ValueError(f'no swept frequency lies {band} the LR Nyquist frequency; use a larger crop.')
        return float(self.relative[mask].mean())

    def rows(self) -> List[Dict[str, float]]:
        ref = self.reference.get('gain')
        return [{'frequency': float(f), 'lr_frequency': float(f * self.scale), 'l1': float(a), 'aesop': float(b),
                 'aesop_over_l1': float(b / a), 'encoder_gain': float(g),
                 'encoder_reference': float(ref[i]) if ref is not None else float('nan')}
                for i, (f, a, b, g) in enumerate(zip(self.frequencies, self.l1, self.aesop, self.encoder_gain))]


@torch.no_grad()
def measure_frequency_response(autoencoder: nn.Module,
                               crops: Sequence[Tensor],
                               cycles: Optional[np.ndarray] = None,
                               amplitude: float = DEFAULT_AMPLITUDE,
                               seed: int = 0,
                               batch_size: int = 8,
                               phase: Optional[float] = None) -> FrequencyResponse:
    """Sweep sinusoids over ``crops`` (each (1, C, S, S) RGB in [0, 1], S a multiple of 2 * scale).

    ``autoencoder`` needs ``scale``, ``encode`` and ``decode`` (an ``AESOPAutoEncoder``). Each sinusoid
    gets a random phase (``seed``), or ``phase`` for all.
    """
    scale = int(autoencoder.scale)
    if not crops:
        raise ValueError('measure_frequency_response needs at least one image crop.')
    size = crops[0].shape[-1]
    if any(c.shape[-2:] != (size, size) for c in crops):
        raise ValueError(f'all crops must be {size}x{size} squares; got {[tuple(c.shape[-2:]) for c in crops]}.')
    cycles = sweep_cycles(size, scale) if cycles is None else np.asarray(cycles, int)
    device = next(autoencoder.parameters(), torch.empty(0)).device
    dtype = next(autoencoder.parameters(), torch.empty(0, dtype=torch.float32)).dtype
    rng = np.random.default_rng(seed)
    lr_size = size // scale
    border = min(2, lr_size // 8)

    l1 = np.zeros((len(crops), len(ORIENTATIONS), len(cycles)))
    aesop, gain = np.zeros_like(l1), np.zeros_like(l1)
    for i, crop in enumerate(crops):
        x = crop.to(device, dtype)
        z_x = autoencoder.encode(x)
        psi_x = autoencoder.decode(z_x)
        jobs = [(o, c, float(rng.uniform(0, 2 * np.pi)) if phase is None else phase)
                for o in range(len(ORIENTATIONS)) for c in range(len(cycles))]
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start:start + batch_size]
            h = torch.cat([amplitude * sinusoid(size, int(cycles[c]), ORIENTATIONS[o], phase)
                           for o, c, phase in chunk]).to(device, dtype)
            z = autoencoder.encode(x + h)
            psi = autoencoder.decode(z)
            aesop_vals = (psi - psi_x).abs().mean(dim=(1, 2, 3)).double().cpu().numpy()
            l1_vals = h.abs().mean(dim=(1, 2, 3)).double().cpu().numpy()  # equal on every channel
            dz = (z - z_x).double().mean(dim=1).cpu().numpy()  # (B, h, w), averaged over channels
            for k, (o, c, _) in enumerate(chunk):
                profile = dz[k].mean(axis=0) if ORIENTATIONS[o] == 'horizontal' else dz[k].mean(axis=1)
                profile = profile[border:lr_size - border]
                # sample m of the LR profile sits at HR position scale*m (+ a constant): the phase is free
                gain[i, o, c] = fitted_amplitude(profile, scale * cycles[c] / size) / amplitude
                aesop[i, o, c] = aesop_vals[k] / amplitude
                l1[i, o, c] = l1_vals[k] / amplitude
    frequencies = cycles / size
    encoder_type = getattr(autoencoder, 'encoder_type', 'rrdb')
    return FrequencyResponse(scale=scale, frequencies=frequencies, l1=l1.mean(axis=(0, 1)),
                             aesop=aesop.mean(axis=(0, 1)),
                             encoder_gain=gain.mean(axis=(0, 1)), amplitude=amplitude, crops=len(crops),
                             encoder_type=encoder_type,
                             reference=encoder_reference(encoder_type, frequencies, scale))
