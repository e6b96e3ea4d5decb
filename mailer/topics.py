"""The topic list readers choose from and feed categories map to.

Configured in ``TOPICS`` (slug -> names per language and aliases); shared by
``subscriptions/`` (readers pick topics) and ``feeds/`` (categories map to
topics), so it lives outside both.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).casefold().split())


def topic_slugs(topics: Mapping[str, Any]) -> list[str]:
    """The slugs, in configured order."""
    return list(topics)


def topic_name(topics: Mapping[str, Any], slug: str, language: str) -> str:
    """The name of a topic in ``language`` (Italian, then the slug, as fallbacks)."""
    entry = topics.get(slug, {})
    return str(entry.get(language) or entry.get("it") or slug)


def topic_for_categories(topics: Mapping[str, Any], categories: Iterable[str], fallback: str) -> str:
    """The first topic whose slug, name or alias matches one of ``categories``."""
    index: dict[str, str] = {}
    for slug, entry in topics.items():
        for name in [slug, *(v for k, v in entry.items() if k != "aliases"), *entry.get("aliases", [])]:
            index.setdefault(_fold(str(name)), slug)
    for category in categories:
        found = index.get(_fold(category))
        if found:
            return found
    return fallback


def normalise_topics(topics: Mapping[str, Any], chosen: Iterable[str]) -> str:
    """The stored form of a reader's choice: sorted known slugs, comma-joined.

    Raise ValueError naming an unknown topic.
    """
    picked = set()
    for slug in chosen:
        if slug not in topics:
            raise ValueError(f"unknown topic: {slug!r}")
        picked.add(slug)
    if picked == set(topics):
        return ""  # every topic: the same segment as choosing none
    return ",".join(sorted(picked))
