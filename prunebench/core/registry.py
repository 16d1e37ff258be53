"""A tiny name → object registry shared by models, methods and datasets (OpenLTH style)."""

from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from prunebench.core.errors import PrunebenchError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named items of one kind (methods, models, regimes, ...); an unknown name is a :class:`PrunebenchError` listing
    the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Add ``item`` as ``name`` and return it. Raises ``ValueError`` (a programming error) if ``name`` is taken."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._items[name] = item
        return item

    def unregister(self, name: str) -> T:
        """Remove and return ``name`` (tests that register throw-away examples clean up with it)."""
        return self._items.pop(name)

    def get(self, name: str) -> T:
        """The item called ``name``. Raises :class:`PrunebenchError` naming the known ones if there is none."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise PrunebenchError(f"unknown {self.kind} {name!r}; choose one of: {known}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
