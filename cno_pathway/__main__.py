"""`python -m cno_pathway` runs the command line."""

from .cli import run

run()
