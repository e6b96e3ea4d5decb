"""Line folding: long HTML lines break where a break changes nothing; text wraps at 78."""

from __future__ import annotations

from lxml import html as lxml_html

from mailer.digest.lines import MAX_LINE_OCTETS, fold_html, hard_split, longest_line, wrap_text


def _text(html: str) -> str:
    return str(lxml_html.document_fromstring(html).text_content())


def _pre(html: str) -> list[str]:
    return [str(e.text_content()) for e in lxml_html.document_fromstring(html).iter("pre")]


def _attributes(html: str) -> list[tuple[str, dict[str, str]]]:
    return [(str(e.tag), dict(e.attrib)) for e in lxml_html.document_fromstring(html).iter()
            if isinstance(e.tag, str)]


def test_long_lines_break_at_spaces_and_between_attributes() -> None:
    cell = '<td class="c" style="padding:0 32px; color:#1d2433; font-family:Arial, sans-serif" valign="top">'
    html = "<html><body><table><tr>" + (cell + "parola " * 30 + "</td>") * 20 + "</tr></table></body></html>"
    folded = fold_html(html, limit=120)
    assert longest_line(folded) <= 140
    assert " ".join(_text(folded).split()) == " ".join(_text(html).split())
    # Attribute values are never broken.
    assert _attributes(folded) == _attributes(html)


def test_a_long_word_gets_an_invisible_break_not_a_space() -> None:
    html = "<html><body><p>" + "x" * 2000 + "&amp;" + "é" * 900 + "</p></body></html>"
    folded = fold_html(html)
    assert longest_line(folded) < MAX_LINE_OCTETS
    assert _text(folded) == _text(html)  # exactly: no space added, the entity intact
    assert "<!--\n-->" in folded


def test_pre_keeps_its_spaces_and_raw_text_is_left_alone() -> None:
    pre = "<pre>" + "a b " * 400 + "</pre>"
    style = "<style>" + ".a { color: red } " * 80 + "</style>"
    html = f"<html><head>{style}</head><body>{pre}</body></html>"
    folded = fold_html(html)
    assert _text(folded) == _text(html)
    # Nothing was inserted into the style sheet (a comment there would be CSS text).
    assert style in folded
    assert longest_line(folded.replace(style, "")) < MAX_LINE_OCTETS


def test_state_carries_across_lines() -> None:
    # A quoted value that spans lines: its spaces are never break points.
    html = '<html><body><p title="a\n' + "b " * 400 + '">x</p></body></html>'
    assert _attributes(fold_html(html, limit=100)) == _attributes(html)


def test_text_wraps_at_78_columns_and_keeps_urls_whole() -> None:
    url = "https://www.example.it/" + "a" * 120
    wrapped = wrap_text("Un testo abbastanza lungo da andare a capo " * 5 + url, indent="  ", first="* ")
    lines = wrapped.split("\n")
    assert lines[0].startswith("* ") and all(line.startswith("  ") for line in lines[1:])
    assert all(len(line) <= 78 for line in lines if url not in line)
    assert f"  {url}" in lines


def test_only_a_word_beyond_the_legal_limit_is_cut() -> None:
    word = "é" * 1500  # 3000 octets
    lines = wrap_text(word).split("\n")
    assert all(len(line.encode()) <= MAX_LINE_OCTETS for line in lines)
    assert "".join(lines) == word
    assert hard_split("abc", 2) == ["ab", "c"]


def test_folding_random_documents_changes_nothing_a_reader_sees() -> None:
    import random

    rng = random.Random(5)
    bits = ["parola", " ", "  ", "&amp;", "&#8217;", "è", "«ciao»", "x" * 120, '<b class="k">', "</b>",
            '<a href="https://e.it/a?b=1&amp;c=2" title="un titolo lungo">', "</a>", "<br>", "\n", "<i>", "</i>"]
    for _ in range(30):
        body = "".join(rng.choice(bits) for _ in range(rng.randint(50, 400)))
        html = f"<html><body><div><p>{body}</p><pre>{body}</pre></div></body></html>"
        folded = fold_html(html, limit=rng.choice([40, 80, 300]))
        # White space outside <pre> collapses; inside it, every character counts.
        assert " ".join(_text(folded).split()) == " ".join(_text(html).split())
        assert _pre(folded) == _pre(html)
        assert _attributes(folded) == _attributes(html)
        assert longest_line(folded) <= 300 + 130
