"""Underwriting: pure decision rules (eligibility, health answers, accumulation limits)."""
