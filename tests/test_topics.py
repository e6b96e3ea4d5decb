"""Topics: categories map through names and aliases, unknown ones to the fallback."""

from __future__ import annotations

import pytest

from config.defaults import TOPICS
from mailer.topics import normalise_topics, topic_for_categories, topic_name


@pytest.mark.parametrize(("categories", "topic"), [
    (["Intelligenza Artificiale"], "ai"),
    (["intelligenza  artificiale"], "ai"),
    (["LLM"], "ai"),
    (["Sicurezza"], "security"),
    (["Cybersecurity"], "security"),
    (["Smartphone"], "mobile"),
    (["Ricette", "CPU"], "hardware"),
    (["Ricette"], "other"),
    ([], "other"),
])
def test_categories_map_to_topics(categories: list[str], topic: str) -> None:
    assert topic_for_categories(TOPICS, categories, "other") == topic


def test_topic_names_follow_the_language() -> None:
    assert topic_name(TOPICS, "ai", "it") == "Intelligenza artificiale"
    assert topic_name(TOPICS, "ai", "en") == "Artificial intelligence"
    assert topic_name(TOPICS, "other", "it") == "Altro"


def test_a_readers_choice_is_stored_sorted() -> None:
    assert normalise_topics(TOPICS, ["web", "ai", "web"]) == "ai,web"
    assert normalise_topics(TOPICS, []) == ""
    assert normalise_topics(TOPICS, list(TOPICS)) == ""
    with pytest.raises(ValueError, match="unknown topic"):
        normalise_topics(TOPICS, ["ai", "<script>"])
