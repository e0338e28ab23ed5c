"""cno-pathway: a rule-based treatment-pathway decision aid for chronic nonbacterial osteomyelitis.

The pipeline, a subpackage each: patient (profile, facts) -> knowledge (rules, evidence) ->
engine -> consult (suggestions, rendering); the users' tools (teaching, authoring) beside it and
the CLI (cli.py, commands/) at the edge. Imports point one way, down that list; the clinical
knowledge itself is data in rules/ and seeds/. tests/test_layout.py holds the direction.
"""

__version__ = "0.1.0"
