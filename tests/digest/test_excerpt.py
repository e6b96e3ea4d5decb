"""Excerpts: short, flat, safe, with links made absolute against the article."""

from __future__ import annotations

from mailer.digest.excerpt import excerpt_html, excerpt_text, text_of

ARTICLE = "https://news.example.it/2026/11/articolo.html"


def test_inline_markup_stays_and_blocks_are_flattened() -> None:
    html = "<h2>Titolo</h2><p>Primo <b>paragrafo</b>.</p><ul><li>uno</li><li>due</li></ul>"
    assert excerpt_html(html, ARTICLE) == "Titolo Primo <b>paragrafo</b>. uno due"


def test_media_and_layout_are_dropped_with_their_content() -> None:
    html = ('<p>Testo <img src="https://x/y.jpg" alt="foto"></p><figure><img src="a.jpg">'
            '<figcaption>Didascalia</figcaption></figure><table><tr><td>cella</td></tr></table>'
            '<iframe src="https://video"></iframe><p>fine</p>')
    out = excerpt_html(html, ARTICLE)
    assert out == "Testo fine"


def test_links_become_absolute_against_the_article_and_lose_other_attributes() -> None:
    html = '<p>Vedi <a href="../altro.html" class="x" style="color:red" onclick="steal()">qui</a></p>'
    assert excerpt_html(html, ARTICLE) == 'Vedi <a href="https://news.example.it/2026/altro.html">qui</a>'


def test_links_to_other_schemes_are_unwrapped() -> None:
    html = '<a href="javascript:alert(1)">uno</a> <a href="data:text/html,x">due</a> <a>tre</a>'
    assert excerpt_html(html, ARTICLE) == "uno due tre"


def test_long_summaries_are_cut_at_a_word_with_an_ellipsis() -> None:
    words = " ".join(f"parola{n}" for n in range(200))
    out = excerpt_html(f"<p><em>Inizio</em> {words}</p><p>altro</p>", ARTICLE, limit=60)
    assert out.startswith("<em>Inizio</em> parola0 parola1")
    assert out.endswith("…")
    assert "altro" not in out and len(out) < 80
    # The cut is at a word boundary, never inside a word.
    assert out[:-1].split()[-1].startswith("parola") and out[:-1].split()[-1][6:].isdigit()


def test_the_cut_can_fall_inside_markup() -> None:
    out = excerpt_html("<p>ab <a href='/x'>" + "link " * 50 + "</a> dopo</p>", ARTICLE, limit=20)
    assert out.startswith('ab <a href="https://news.example.it/x">link link')
    assert out.endswith("…</a>")
    assert "dopo" not in out


def test_text_is_escaped_and_entities_survive() -> None:
    out = excerpt_html("<p>1 &lt; 2 &amp; &lt;script&gt;</p>", ARTICLE)
    assert out == "1 &lt; 2 &amp; &lt;script&gt;"
    assert excerpt_html("   ", ARTICLE) == ""
    assert excerpt_html("solo testo, <b>niente</b> p", ARTICLE) == "solo testo, <b>niente</b> p"


def test_text_excerpts() -> None:
    assert excerpt_text("  uno\n\n due\ttre ") == "uno due tre"
    cut = excerpt_text("parola " * 100, limit=30)
    assert cut.endswith("…") and len(cut) <= 31 and "parol…" not in cut
    assert text_of("<p>uno</p><p>due &amp; <b>t</b>re</p>") == "uno due & tre"
