"""Text filters: case, padding, slugs, accents, tags, tests on text."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping
from urllib.parse import urlsplit

from linkflow.engine.expressions._limits import check_text
from linkflow.engine.expressions.library._base import Entry, as_int, as_list, as_text

__all__ = ["ENTRIES"]

# Letters that Unicode does not decompose into a base letter plus an accent.
_NO_DECOMPOSITION = str.maketrans(
    {"ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE",
     "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "þ": "th", "Þ": "Th", "\u0131": "i"}
)  # fmt: skip
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def remove_accents(value: object) -> str:
    """Drop diacritics: "Crème brûlée" → "Creme brulee"."""
    text = as_text(value)
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text.translate(_NO_DECOMPOSITION))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _words(value: object) -> list[str]:
    return _WORDS.findall(remove_accents(value))


def slugify(value: object, separator: object = "-") -> str:
    """Lower-case ASCII words joined by `separator`."""
    return as_text(separator).join(re.findall(r"[a-z0-9]+", remove_accents(value).lower()))


def camel_case(value: object) -> str:
    """ "first name" → "firstName"."""
    words = [w.lower() for w in _words(value)]
    return "".join(words[:1] + [w.capitalize() for w in words[1:]])


def snake_case(value: object) -> str:
    """ "First Name" → "first_name"."""
    return "_".join(w.lower() for w in _words(value))


def kebab_case(value: object) -> str:
    """ "First Name" → "first-name"."""
    return "-".join(w.lower() for w in _words(value))


def upper_first(value: object) -> str:
    """Upper-case the first character only, leaving the rest as is."""
    text = as_text(value)
    return text[:1].upper() + text[1:]


def _padding(text: str, width: object, fill: object) -> str:
    size = as_int(width, "the width")
    check_text(size, "the padded text")
    filler = as_text(fill) or " "
    missing = size - len(text)
    if missing <= 0:
        return ""
    return (filler * (missing // len(filler) + 1))[:missing]


def pad_start(value: object, width: object, fill: object = " ") -> str:
    """Pad on the left to `width` characters."""
    text = as_text(value)
    return _padding(text, width, fill) + text


def pad_end(value: object, width: object, fill: object = " ") -> str:
    """Pad on the right to `width` characters."""
    text = as_text(value)
    return text + _padding(text, width, fill)


def _affixes(value: object) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(as_text(v) for v in value)
    return (as_text(value),)


def starts_with(value: object, prefix: object) -> bool:
    """Whether the text starts with `prefix` (or one of a list of prefixes)."""
    return as_text(value).startswith(_affixes(prefix))


def ends_with(value: object, suffix: object) -> bool:
    """Whether the text ends with `suffix` (or one of a list of suffixes)."""
    return as_text(value).endswith(_affixes(suffix))


def contains(value: object, needle: object) -> bool:
    """Substring of text, element of a list, or key of an object."""
    if value is None:
        return False
    if isinstance(value, str):
        return as_text(needle) in value
    if isinstance(value, Mapping):
        return needle in value
    return needle in as_list(value)


def index_of(value: object, needle: object) -> int:
    """Position of `needle` in text or a list; -1 when absent."""
    if isinstance(value, str):
        return value.find(as_text(needle))
    items = as_list(value)
    return items.index(needle) if needle in items else -1


def split(value: object, separator: object = None, limit: object = -1) -> list[str]:
    """Split text; on runs of whitespace without a separator, into characters with ""."""
    text = as_text(value)
    most = as_int(limit, "the limit")
    if separator is None:
        return text.split(None, most)
    sep = as_text(separator)
    if sep == "":
        return list(text)
    return text.split(sep, most)


def substring(value: object, start: object, end: object = None) -> str:
    """Characters from `start` up to (not including) `end`; negative counts from the end."""
    text = as_text(value)
    stop = None if end is None else as_int(end, "the end")
    return text[as_int(start, "the start") : stop]


def trim_start(value: object, chars: object = None) -> str:
    """Remove leading whitespace (or the given characters)."""
    return as_text(value).lstrip(None if chars is None else as_text(chars))


def trim_end(value: object, chars: object = None) -> str:
    """Remove trailing whitespace (or the given characters)."""
    return as_text(value).rstrip(None if chars is None else as_text(chars))


def strip_tags(value: object) -> str:
    """Remove HTML tags (and script/style content), decode entities, keep whitespace."""
    text = _TAG.sub("", _SCRIPT_OR_STYLE.sub("", as_text(value)))
    return html.unescape(text)


def is_email(value: object) -> bool:
    """Whether the text looks like an e-mail address (a light syntax check)."""
    return isinstance(value, str) and _EMAIL.fullmatch(value) is not None


def is_url(value: object) -> bool:
    """Whether the text is an absolute URL with a scheme and a host."""
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.scheme and parts.netloc)


ENTRIES = (
    Entry("slugify", slugify),
    Entry("camel_case", camel_case),
    Entry("snake_case", snake_case),
    Entry("kebab_case", kebab_case),
    Entry("upper_first", upper_first),
    Entry("remove_accents", remove_accents),
    Entry("pad_start", pad_start),
    Entry("pad_end", pad_end),
    Entry("starts_with", starts_with),
    Entry("ends_with", ends_with),
    Entry("contains", contains),
    Entry("index_of", index_of),
    Entry("split", split),
    Entry("substring", substring),
    Entry("trim_start", trim_start),
    Entry("trim_end", trim_end),
    Entry("strip_tags", strip_tags),
    Entry("is_email", is_email),
    Entry("is_url", is_url),
)
