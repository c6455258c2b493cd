"""ImageNet classes: listing, searching and resolving names (or numbers) to indices.

The names are the ones that come with the model's weights metadata (torchvision's
``categories``, available offline), e.g. ``banana`` (954) or ``anemone fish`` (393).
Nothing here needs torch: pass the model's categories in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .errors import ConfigError, UnknownNameError

__all__ = ["normalize_class_name", "resolve_class", "search_classes", "model_categories"]

_SEPARATORS = re.compile(r"[\s_\-]+")


def normalize_class_name(name: str) -> str:
    """Lower case, with runs of spaces, underscores and hyphens made one space:
    ``Anemone_Fish`` and ``anemone-fish`` both become ``anemone fish``."""
    return _SEPARATORS.sub(" ", name.strip().lower()).strip()


def resolve_class(name: str, categories: Sequence[str]) -> int:
    """The index of a class given by name (case, spaces, ``_`` and ``-`` do not matter) or number.

    Raises ConfigError for an index out of range and UnknownNameError (with the closest
    names and a pointer to `dreamer classes`) for an unknown name; both exit with code 2.
    """
    text = str(name).strip()
    if text.isdigit():
        index = int(text)
        if index >= len(categories):
            raise ConfigError("class", text, f"a class index 0-{len(categories) - 1}")
        return index
    wanted = normalize_class_name(text)
    for index, category in enumerate(categories):
        if normalize_class_name(category) == wanted:
            return index
    raise UnknownNameError("class", text, categories, listing="dreamer classes TEXT")


def search_classes(text: str | None, categories: Sequence[str]) -> list[tuple[int, str]]:
    """(index, name) of the classes whose name contains `text` (as `normalize_class_name`
    compares them), or whose index is `text` when it is a number; all classes for None/empty."""
    if text is None or not text.strip():
        return list(enumerate(categories))
    stripped = text.strip()
    if stripped.isdigit():
        index = int(stripped)
        return [(index, categories[index])] if index < len(categories) else []
    wanted = normalize_class_name(stripped)
    return [(i, c) for i, c in enumerate(categories) if wanted in normalize_class_name(c)]


def model_categories(model: str = "googlenet") -> tuple[str, ...]:
    """The class names of a registry model (empty if it has none)."""
    from .models import get_spec

    return tuple(get_spec(model).categories)
