"""The expression library: plain functions grouped by family, each an `Entry`.

Every name is usable as a filter (`{{ x | slugify }}`) unless marked
function-only, and some are also functions (`{{ uuid() }}`,
`{{ jmespath(json, 'a.b') }}`). None of them changes the meaning of a Jinja
built-in filter; docs/expressions.md documents each one with an example that
the test suite runs.
"""

from __future__ import annotations

from linkflow.engine.expressions.library import (
    dates,
    encoding,
    lists,
    misc,
    numbers,
    objects,
    regex,
    strings,
)
from linkflow.engine.expressions.library._base import SYSTEM_RNG, Entry, Rng

__all__ = ["ENTRIES", "SYSTEM_RNG", "Entry", "Rng"]

ENTRIES: tuple[Entry, ...] = (
    *strings.ENTRIES,
    *regex.ENTRIES,
    *numbers.ENTRIES,
    *dates.ENTRIES,
    *lists.ENTRIES,
    *objects.ENTRIES,
    *encoding.ENTRIES,
    *misc.ENTRIES,
)
