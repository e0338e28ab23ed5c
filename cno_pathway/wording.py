"""How facts and numbers read to a person: one place, so every output writes them alike."""

from __future__ import annotations


def plain_number(value) -> str:
    """12.0 -> '12', 10.5 -> '10.5': a number as a person writes it."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def fact_words(fact: str) -> str:
    """'labs.crp_mg_l' -> 'labs crp mg l': a fact name in words."""
    return fact.replace(".", " ").replace("_", " ")
