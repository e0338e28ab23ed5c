"""Running the rules: the durable_rules adapter (durable.py), the production engine, and the
pure-Python reference evaluator (evaluation.py) that the tests and the authoring tools use
as its differential oracle."""
