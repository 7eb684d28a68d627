"""SMS ingress: Twilio's signed inbound-message and status-callback webhooks."""
