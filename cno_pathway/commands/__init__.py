"""Click command groups, one module per group; cli.py assembles them."""

# Registers the FHIR Bundle reader with patient intake, so every command that reads a profile
# reads a Bundle too (cheap: the FHIR models are imported only when a Bundle is read).
from .. import interop  # noqa: E402,F401
