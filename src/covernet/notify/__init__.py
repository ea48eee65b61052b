"""Notifications: stored with the action that causes them, sent after it commits."""
