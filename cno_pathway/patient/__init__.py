"""The patient: the profile contract (declared in contract.py, validated by profile.py), the
routes a profile comes in by (intake.py) and the flat facts the rules match on (facts.py). Used by
the consult, the teaching and authoring tools and every edge (CLI, server); it knows nothing of
the engine or of rendering."""
