"""Operator tools of the VAPI channel: `switchboard vapi setup | call`, `simulate vapi`."""
