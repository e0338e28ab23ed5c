"""cno-pathway: a rule-based treatment-pathway decision aid for chronic nonbacterial osteomyelitis.

The pipeline, one module each: profile -> facts -> rulebook/conditions -> engine -> consult ->
render, with the clinical knowledge kept as data in rules/ and seeds/.
"""

__version__ = "0.1.0"
