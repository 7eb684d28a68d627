"""``python -m services.channels.sms.fake [--host H] [--port P] [--account-sid S] [--auth-token T]
[--latency-ms N]``."""

from services.channels.sms.fake.server import main

if __name__ == "__main__":
    main()
