"""The public API is deliberate: ``__all__`` is sorted, complete and importable."""

from __future__ import annotations

import telic


def test_all_is_sorted_and_importable() -> None:
    names = [n for n in telic.__all__ if n != "__version__"]
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in telic.__all__:
        assert hasattr(telic, name), name


def test_every_public_name_is_exported() -> None:
    public = {
        n
        for n in vars(telic)
        if not n.startswith("_")
        and n != "annotations"
        and not isinstance(getattr(telic, n), type(telic))
    }
    assert public <= set(telic.__all__), public - set(telic.__all__)
