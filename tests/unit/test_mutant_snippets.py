"""Every mutant's snippet occurs exactly once in its file, checked in a second rather than at the end of
the mutant run: a line rewritten without its mutant fails here, by name."""

from __future__ import annotations

from tests.mutants import MUTANTS, ROOT


def test_every_mutant_snippet_occurs_exactly_once():
    stale = []
    for mutant in MUTANTS:
        for path, original, _ in ((mutant.path, mutant.original, mutant.mutated), *mutant.also):
            count = (ROOT / path).read_text().count(original)
            if count != 1:
                stale.append(f"{mutant.name}: {path} holds its snippet {count} times")
    assert not stale, "\n".join(stale)


def test_mutant_names_are_unique():
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names))
