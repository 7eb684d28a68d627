"""Operator tools run from the `switchboard` command (dead-letter listing and replay)."""
