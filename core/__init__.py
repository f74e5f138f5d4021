"""Building blocks that know nothing of the rest of the product (errors, settings, crypto, clock)."""
