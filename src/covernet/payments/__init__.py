"""Payments: payment intents, provider adapters, callbacks, refunds, the premium ledger."""
