"""Consultation: channels, conversations, the desk, routing and satisfaction surveys."""
