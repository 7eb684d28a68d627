"""``python -m services.channels.vapi.fake [--host H] [--port P] [--public-url U]
[--private-key K] [--public-key K] [--latency-ms N]``."""

from services.channels.vapi.fake.server import main

if __name__ == "__main__":
    main()
