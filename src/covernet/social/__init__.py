"""Social features: share links and insurance red envelopes (红包赠险, R12, R13)."""
