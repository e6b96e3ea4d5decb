"""Feed categories -> one of the configured topics readers choose from.

The matching itself (names, aliases, accents and case folded) lives in
``mailer/topics.py``, shared with ``subscriptions/``; this module decides
what counts as a category: feeds write "Tech > AI", "web, css" or
"Mobile/Android" in a single category.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from mailer.topics import topic_for_categories

_SEPARATORS = re.compile(r"\s*(?:[,;|>/»]|::)\s*")
MAX_CATEGORIES = 20
MAX_CATEGORY_LENGTH = 100


def tidy_categories(raw: Iterable[str]) -> list[str]:
    """Categories without duplicates (ignoring case), each short, at most MAX_CATEGORIES."""
    seen: set[str] = set()
    tidy: list[str] = []
    for category in raw:
        name = " ".join(category.split())[:MAX_CATEGORY_LENGTH]
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            tidy.append(name)
    return tidy[:MAX_CATEGORIES]


def topic_for(categories: Iterable[str], config: Mapping[str, Any]) -> str:
    """The topic of an article: the first category (or part of one) that matches a topic.

    A whole category is tried before its parts, so an alias such as
    "web development" wins over "web" in "Web development/CSS".
    """
    fallback = str(config["FALLBACK_TOPIC"])
    candidates: list[str] = []
    for category in categories:
        candidates.append(category)
        candidates.extend(part for part in _SEPARATORS.split(category) if part and part != category)
    return topic_for_categories(config["TOPICS"], candidates, fallback)


class TopicMapper:
    """``topic_for`` with a memory: a feed repeats the same few categories on every item."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.known: dict[tuple[str, ...], str] = {}

    def __call__(self, categories: Iterable[str]) -> str:
        """The topic for ``categories``."""
        key = tuple(categories)
        if key not in self.known:
            self.known[key] = topic_for(key, self.config)
        return self.known[key]
