"""Tools for educators: the teaching-case library (cases.py), the step-by-step demo, the
pathway diagram drawn from the rules, what-if comparisons and the consult differences they
show (changes.py)."""
