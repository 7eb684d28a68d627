"""Contracts shared by every Switchboard service: events, topic names, settings, logging.

Nothing service-specific lives here. A separate channel service written by an integration
team needs only this package (or the JSON Schemas exported from it) to speak the topics.
"""
