"""Runtime plumbing every service uses: Kafka and Redis clients, ops events, health, inboxes."""
