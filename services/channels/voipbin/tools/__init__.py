"""VoIPBin operator tools run from the `switchboard` command: setup and the call simulator."""
