"""Names that resolve in a BasicSR registry only while nobody has registered them.

BasicSR's ``Registry.register`` asserts that a name is new. A plugin that registered, say,
``DRCT`` when BasicSR is imported would therefore break every project that registers its own
``DRCT`` afterwards (DRCT's and HAT's repositories do, when their ``train.py`` imports their
archs). So the names this package adds for third-party architectures are *fallbacks*: they are
not put into the registry's map; BasicSR's lookup (``Registry.get``, which reads
``registry._obj_map.get(name)``) falls back to them when the map has no such name. A later
``register`` of the same name succeeds as usual, and from then on the project's own object wins.

``name in registry`` stays False for a fallback (that is what lets a later registration pass
BasicSR's assertion); ask :func:`is_registered` for "does ``registry.get(name)`` work".
A fallback is built on first lookup by a zero-argument factory (e.g. one that imports spandrel),
once per process.
"""
from typing import Any, Callable, Dict, List, TypeVar

from basicsr.utils.registry import Registry

T = TypeVar('T')


class FallbackMap(dict):
    """A registry's ``_obj_map``: a plain dict of what is registered, plus factories for fallback names.

    Only :meth:`get` (BasicSR's lookup) consults the fallbacks; ``in``, iteration, ``keys()`` and
    item access see registered objects only.
    """

    def __init__(self, registered: Dict[str, Any]):
        super().__init__(registered)
        self.factories: Dict[str, Callable[[], Any]] = {}
        self.resolved: Dict[str, Any] = {}

    def get(self, name: str, default: Any = None) -> Any:
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        if name in self.factories:
            if name not in self.resolved:
                self.resolved[name] = self.factories[name]()
            return self.resolved[name]
        return default


def _fallback_map(registry: Registry) -> FallbackMap:
    """The registry's map as a :class:`FallbackMap` (installed once; what is registered stays registered, and so
    do the fallbacks of a map made by an earlier import of this module, e.g. after ``importlib.reload``)."""
    if not isinstance(registry._obj_map, FallbackMap):
        earlier = getattr(registry._obj_map, 'factories', {})
        registry._obj_map = FallbackMap(registry._obj_map)
        registry._obj_map.factories.update(earlier)
    return registry._obj_map


def add_fallback(registry: Registry, name: str, factory: Callable[[], Any]) -> None:
    """Let ``registry.get(name)`` return ``factory()`` for as long as nothing is registered under ``name``.

    Adding a name again (a re-imported module) replaces its factory, and the object is built anew on next lookup.
    """
    fallbacks = _fallback_map(registry)
    fallbacks.factories[name] = factory
    fallbacks.resolved.pop(name, None)


def register_fallback(registry: Registry) -> Callable[[T], T]:
    """Decorator: ``@register_fallback(ARCH_REGISTRY)`` adds a class or function as a fallback under its name."""

    def deco(obj: T) -> T:
        add_fallback(registry, obj.__name__, lambda: obj)
        return obj

    return deco


def is_registered(registry: Registry, name: str) -> bool:
    """Whether ``registry.get(name)`` finds an object: registered, or a fallback."""
    return name in registry or name in getattr(registry._obj_map, 'factories', {})


def fallback_names(registry: Registry) -> List[str]:
    """The fallback names of ``registry`` that nothing has registered (yet), sorted."""
    factories = getattr(registry._obj_map, 'factories', {})
    return sorted(name for name in factories if name not in registry)
