"""Integration: the outbox and insurer sync (R19), outbound webhooks."""
