"""``python -m services.fakes.voipbin [--host H] [--port P] [--access-key K] [--latency-ms N]``."""

from services.fakes.voipbin.server import main

if __name__ == "__main__":
    main()
