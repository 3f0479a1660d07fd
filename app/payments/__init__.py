"""Card payments through an external gateway."""
