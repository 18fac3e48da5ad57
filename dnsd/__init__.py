"""Embedded DNS and service discovery for user-defined container networks (127.0.0.11)."""
