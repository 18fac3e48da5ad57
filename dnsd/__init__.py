"""Embedded DNS and service discovery for user-defined container networks (127.0.0.11)."""

__version__ = "0.1.0"
