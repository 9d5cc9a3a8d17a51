"""Metrics where lower is better (LPIPS, DISTS): BasicSR's "Best" must track the lowest value.

BasicSR keeps, per validation metric, the best value so far as the *highest* one unless the metric's
option dict says ``better: lower`` (``BaseModel._initialize_best_metric_results``); it also passes
that dict, ``better`` included, as keyword arguments to the metric function
(``basicsr.metrics.calculate_metric``). So a lower-is-better metric without ``better: lower`` logs its
worst value as Best, silently. Here:

- :func:`lower_is_better` marks a metric function (ours: ``calculate_lpips``, ``calculate_dists``, and the
  authors' names for them, ``calculate_{lpips,dists}_pytorch``); BasicSR's ``calculate_niqe`` is known too;
- :func:`fill_in_better` sets ``better: lower`` where it is missing, and says so in the log:
  ``aesop-train`` and AESOP's models (``AESOPAEModel``, ``ESRGANLDLModel``, the authors' model names in
  :mod:`aesop_basicsr.compat`) call it before validating;
- :func:`warn_if_better_missing`, called by the metric itself, warns once per process and metric when
  BasicSR runs it from an option dict without ``better`` (a stock model under BasicSR's own train.py).
"""
import sys
from typing import Any, Callable, List, Mapping, MutableMapping, Set, TypeVar

from basicsr.utils import get_root_logger

F = TypeVar('F', bound=Callable[..., float])
BASICSR_LOWER_IS_BETTER = ('calculate_niqe', )
_warned: Set[str] = set()


def lower_is_better(metric: F) -> F:
    """Mark a metric function as lower-is-better."""
    metric.lower_is_better = True  # type: ignore[attr-defined]
    return metric


def is_lower_is_better(metric_type: Any) -> bool:
    """Whether the metric ``metric_type`` (registered, or a fallback name) is lower-is-better."""
    from basicsr.utils.registry import METRIC_REGISTRY

    from aesop_basicsr.utils.fallback_registry import is_registered
    if metric_type in BASICSR_LOWER_IS_BETTER:
        return True
    return isinstance(metric_type, str) and is_registered(METRIC_REGISTRY, metric_type) and getattr(
        METRIC_REGISTRY.get(metric_type), 'lower_is_better', False)


def fill_in_better(opt: Mapping[str, Any], log: bool = True) -> List[str]:
    """Set ``better: lower`` on each ``val.metrics`` entry of a lower-is-better metric that has no ``better``.

    Returns:
        One message per entry set, e.g. ``val:metrics:lpips: calculate_lpips is lower-is-better ...``;
        each is also logged on BasicSR's logger if ``log``.
    """
    metrics = (opt.get('val') or {}).get('metrics') or {}
    messages = []
    for name, metric_opt in metrics.items():
        if isinstance(metric_opt, MutableMapping) and 'better' not in metric_opt \
                and is_lower_is_better(metric_opt.get('type')):
            metric_opt['better'] = 'lower'
            messages.append(f'val:metrics:{name}: {metric_opt["type"]} is lower-is-better and has no \'better\' key; '
                            'better: lower is set, so that Best is its lowest value.')
            if log:
                get_root_logger().info(messages[-1])
    return messages


def _called_by_basicsr_calculate_metric(depth: int = 4) -> bool:
    frame = sys._getframe(2)  # our caller's caller: the metric function's caller
    for _ in range(depth):
        if frame is None:
            return False
        if frame.f_code.co_name == 'calculate_metric' and frame.f_globals.get('__name__') == 'basicsr.metrics':
            return True
        frame = frame.f_back
    return False


def warn_if_better_missing(metric_name: str, metric_type: str, kwargs: Mapping[str, Any]) -> None:
    """Warn once per process when BasicSR runs this metric from an option dict that has no ``better``."""
    if 'better' in kwargs or metric_name in _warned or not _called_by_basicsr_calculate_metric():
        return
    _warned.add(metric_name)
    get_root_logger().warning(f'{metric_name} metric: lower is better, but its metrics entry ({metric_type}) has no '
                              "'better: lower', so BasicSR logs the highest (worst) value as Best; add better: lower "
                              '(aesop-train and AESOP\'s models add it themselves).')
