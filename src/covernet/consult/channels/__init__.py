"""The desk's channels: each turns its inbound traffic into conversation messages and
sends the desk's answers back out (``base.ChannelAdapter``)."""

from covernet.consult.channels import base, live, web

__all__ = ["base", "live", "web"]
