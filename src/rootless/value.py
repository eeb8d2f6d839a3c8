"""Small value classes for modules on the start-up path of `run`, without dataclasses' import cost.

``@dataclass`` writes and compiles ``__init__``, ``__repr__``, ``__eq__`` (and ``__setattr__``,
``__hash__`` when frozen) for every class at import: about 0.3 ms a class, over 10 ms for the
classes that `rootless run` imports. A ``Value`` lists its fields in ``__slots__`` (in the order of
its ``__init__``, which it writes itself) and gets the rest from here, field by field as a
dataclass does: equality with an object of the same class, a hash, and ``Name(a=1, b='x')``.
Unlike a frozen dataclass, its attributes can be assigned: treat it as immutable all the same.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple


class Value:
    __slots__: Tuple[str, ...] = ()

    def _values(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, n) for n in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()  # type: ignore[attr-defined]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__)})"


def as_dict(v: Value) -> Dict[str, Any]:
    """The fields and their values (shallow, unlike dataclasses.asdict)."""
    return {n: getattr(v, n) for n in v.__slots__}
