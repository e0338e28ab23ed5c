"""Tools for rule authors: lint (with satisfiability and conflict checks), per-rule tests,
coverage and the gap grid. They use the teaching cases as the rule base's acceptance tests,
so this layer sits above teaching."""
