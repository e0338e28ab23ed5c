"""Click command groups, one module per group; cli.py assembles them."""
