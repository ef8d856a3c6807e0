"""Neural networks, one per file, in plain torch."""
