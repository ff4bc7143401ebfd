"""debate."""
