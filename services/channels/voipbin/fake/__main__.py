"""``python -m services.channels.voipbin.fake [--host H] [--port P] [--access-key K]
[--latency-ms N]``."""

from services.channels.voipbin.fake.server import main

if __name__ == "__main__":
    main()
