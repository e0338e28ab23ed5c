"""The clinical knowledge as parsed data: the vocabulary, the fact schema the rules are written
against, the rule base and its condition language, regimens and the evidence library, plus
their cache. It reads rules/ and seeds/ and depends only on the shared plumbing."""
