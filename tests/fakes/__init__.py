"""Test doubles shared by unit and integration tests."""
