"""Covernet: an open platform for selling and servicing insurance online."""

__version__ = "0.1.0"
