"""render.fill_single fills a paragraph exactly as textwrap.fill does with the options the
templates use (no hyphen breaks, no broken words), for any words, widths and indents: it only
skips building a TextWrapper and its chunk stack for each paragraph (issue 17, start-up and the
2,050-rule consult). _tidy is held to what it was before its quicker pattern."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import re

from cno_pathway.consult.render import _UNBREAKABLE, _plain, _tidy, _wrap, fill_single

WORD = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")),
               min_size=1, max_size=30)
LONG = st.text(alphabet="ab-c/é:", min_size=60, max_size=200)


def _reference(text, width, initial, subsequent):
    return textwrap.fill(text, width=width, initial_indent=initial, subsequent_indent=subsequent,
                         break_on_hyphens=False, break_long_words=False)


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


@settings(max_examples=400, deadline=None)
@given(words=st.lists(st.one_of(WORD, LONG), max_size=40), width=st.integers(1, 120),
       first=st.integers(0, 130), indent=st.integers(0, 130))
def test_the_single_pass_fills_as_textwrap(words, width, first, indent):
    """fill_single (what _wrap calls, words already split on single spaces) gives textwrap's
    lines, also for an indent wider than the line and for words longer than it."""
    words = words or [""]
    assert (fill_single(words, width, " " * first, " " * indent)
            == _reference(" ".join(words), width, " " * first, " " * indent))


def test_the_single_pass_edges():
    assert fill_single([""], 10, "  ", "  ") == ""
    assert fill_single([], 10, "  ", "  ") == ""
    assert fill_single(["ab", "cd", "ef"], 5, "", "  ") == "ab cd\n  ef"
    assert fill_single(["abcdefgh", "i"], 4, "    ", "") == "    abcdefgh\ni"
    with pytest.raises(ValueError):
        fill_single(["a"], 0, "", "")


def test_a_wrapped_paragraph_is_kept_by_its_arguments():
    """The same text at another indent or width is filled again, not taken from the cache."""
    text = "one two three four five six seven eight nine ten " * 3
    assert _wrap(text, 4, 2) == _old_wrap(text, 4, 2)
    assert _wrap(text, 6, 4) == _old_wrap(text, 6, 4)
    assert _wrap(text, 6, 4, width=30) == _old_wrap(text, 6, 4, width=30)
    assert _wrap(text, 6, 4) != _wrap(text, 6, 4, width=30)


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.sampled_from(["\n", "\n\n\n", " ", "\t", "a", "\r", "\x0c", "\u2028",
                                      "\x85", "\xa0", "é"]), max_size=60).map("".join))
def test_tidy_as_it_was(text):
    """_tidy's quicker blank-line pattern gives what `\\n{3,}` gave, whatever the line breaks."""
    old = re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in text.splitlines()))
    assert _tidy(text) == old.strip("\n") + "\n"
