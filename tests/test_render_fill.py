"""render.fill_words fills a paragraph exactly as textwrap.fill does with the options the
templates use (no hyphen breaks, no broken words), for any words, widths and indents: it only
skips building a TextWrapper for each paragraph (issue 17, start-up)."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cno_pathway.consult.render import _UNBREAKABLE, _plain, _wrap, fill_words

WORD = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")),
               min_size=1, max_size=30)
LONG = st.text(alphabet="ab-c/é:", min_size=60, max_size=200)


def _reference(text, width, initial, subsequent):
    return textwrap.fill(text, width=width, initial_indent=initial, subsequent_indent=subsequent,
                         break_on_hyphens=False, break_long_words=False)


@settings(max_examples=400, deadline=None)
@given(words=st.lists(st.one_of(WORD, LONG), max_size=40), width=st.integers(1, 120),
       first=st.integers(0, 130), indent=st.integers(0, 130),
       spaces=st.lists(st.integers(1, 3), max_size=40))
def test_the_same_lines_as_textwrap(words, width, first, indent, spaces):
    text = "".join(w + " " * (spaces[i] if i < len(spaces) else 1) for i, w in enumerate(words))
    for candidate in (text, text.strip(), " " + text):
        assert (fill_words(candidate, width, " " * first, " " * indent)
                == _reference(candidate, width, " " * first, " " * indent))


def test_the_edges():
    for text in ("", " ", "a", "  a  b  ", "x" * 200, "word " * 50):
        for width in (1, 2, 10, 80):
            for first, indent in ((0, 0), (4, 2), (80, 80), (90, 0)):
                assert (fill_words(text, width, " " * first, " " * indent)
                        == _reference(text, width, " " * first, " " * indent)), (text, width)
    with pytest.raises(ValueError):
        fill_words("a", 0, "", "")


def _old_wrap(text, indent=0, first=None, width=80):
    """render._wrap as it was, with textwrap.fill."""
    room = width - max(indent, indent if first is None else first)
    words = []
    for word in _plain(" ".join(str(text).split())).split(" "):
        if len(word) > room > 0 and not _UNBREAKABLE.match(word):
            words.extend(word[i:i + room] for i in range(0, len(word), room))
        else:
            words.append(word)
    return _reference(" ".join(words), width, " " * (indent if first is None else first),
                      " " * indent)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=400) | st.lists(st.one_of(WORD, LONG, st.just("https://example.org/" + "x" * 90)),
                                              max_size=30).map(" ".join),
       indent=st.integers(0, 90), first=st.none() | st.integers(0, 90), width=st.integers(1, 100))
def test_wrap_as_the_templates_call_it(text, indent, first, width):
    assert _wrap(text, indent=indent, first=first, width=width) == _old_wrap(text, indent, first, width)
