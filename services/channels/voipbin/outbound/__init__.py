"""Voice egress through VoIPBin (providers.md §1.7 pattern A: transcription events in,
Speaking API out). `Reply.address` is the VoIPBin call id.

Per reply kind:
- OPEN: start the call's sessions once: a transcribe (direction `in`, whose id is stored in
  the call registry, which also maps transcribe -> call for ingress) and a speaking session.
- MESSAGE: say the text through the speaking session (created lazily when missing). When the
  session is unusable (VoIPBin refuses to create one, or `say` gets 404/409 because it
  stopped), the call falls back to `POST /calls/{id}/talk` for good. Each said text extends
  an estimate of when the call's speech ends; a reply with `end_call` schedules the hangup
  for then (capped at `hangup_wait_max_s`) in Redis, and each egress instance's
  `run_hangups` loop carries it out (`hangups.py`): nobody's speech waits for it.
  A SYNC reply (an ingress instance holds VoIPBin's `fetch` request) claims the fetch: if
  the claim holds, the answer goes to the holder's inbox as a bare action array (`talk`,
  `hangup` when the call ends); if the holder already answered its fallback, the answer is
  spoken late through the Speaking API. Only part 0 of a turn can answer a fetch (one
  action array per fetch); later parts are always said.
- STOP (barge-in): flush the speaking session, reset the speech estimate.
- CLOSE: mark the call ended, stop both sessions (always handled, even for an ended call).

A call the registry marks ended, or that VoIPBin reports terminating/hung up, gets no more
speech: that is an ops event (`rejected`, `call_ended`), not an error. VoIPBin answers 409
`STATE_INVALID` both before a call is answered and after it ended, so a 409 makes the guard
look at the call: not progressing yet -> retried for up to `state_wait_s`, then parked as
`voipbin_state_invalid`; over -> nothing more is said. Other 4xx park the reply as
`voipbin_<reason>`; 429/5xx/network errors are retried by the client, then by
`process_reliably`, then parked.

Idempotency: `ReplyLedger.check` drops a redelivered reply and refuses a stale brain's
(fence); `done` is recorded after the reply was carried out, and a `spoken` step in between
keeps a retried hangup from repeating the text. VoIPBin has no idempotency key, so a crash
(or a timeout after VoIPBin acted) between a `say` and that record can repeat the `say`:
a rare duplicate sentence, accepted rather than a lost one.

The accesskey rides in the query string of every request; it never reaches logs, exceptions,
ops events or dead letters (the client logs paths only and masks httpx's request lines).
"""

from services.channels.voipbin.outbound.guard import CallGuard, CallOver, SpeakingLost
from services.channels.voipbin.outbound.hangups import HangupSchedule
from services.channels.voipbin.outbound.output import VoiceOutput
from services.channels.voipbin.outbound.policy import VoicePolicy

__all__ = ["CallGuard", "CallOver", "HangupSchedule", "SpeakingLost", "VoiceOutput", "VoicePolicy"]
