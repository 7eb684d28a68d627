"""SMS through Twilio: signed webhooks, REST delivery, status callbacks, opt-out keywords.

Design: docs/sms.md.
"""
