"""The caller's side of a simulated call: dial, be greeted, speak each turn, hear the answer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from services.channels.voipbin.fake import DEV_CUSTOMER_ID, transcript_data
from services.channels.voipbin.tools.setup import TOOL_RETRY
from services.channels.voipbin.tools.sim_flow import FlowRunner
from services.channels.voipbin.tools.sim_support import KEYS, TurnOutcome, speech_lines, turn_state

ReadLine = Callable[[str], Awaitable[str | None]]


class SimulatedCall(FlowRunner):
    """One call from dial to hangup: runs the flow, sends the caller's turns, shows the agent."""

    async def drain_speech(self) -> None:
        """Show what egress said into the call since the last look."""
        entries = await self._controls.speech(self.call_id)
        new, self._speech_seen = entries[self._speech_seen :], len(entries)
        for line in speech_lines(new):
            self.heard(line)

    async def agent_hung_up(self) -> bool:
        """Whether egress hung up through the API; then show it and send `call_hangup`, as
        VoIPBin would."""
        call = await self._client.get_call(self.call_id, retry=TOOL_RETRY)
        if call.get("status") != "hangup":
            return False
        await self.drain_speech()  # words said just before the hangup
        await self.end("[agent hung up]")
        return True

    async def wait_transcribe(self) -> str | None:
        """The transcription egress opened for the call (bounded wait), or None."""
        deadline = time.monotonic() + self._sim.session_timeout_s
        while time.monotonic() < deadline and not self.ended:
            params = {"reference_type": "call", "reference_id": self.call_id}
            page = await self._client.request("GET", "/transcribes", params=params)
            for transcribe in page.get("result") or []:
                if transcribe.get("status") != "done":
                    return str(transcribe["id"])
            await asyncio.sleep(self._sim.poll_s)
        return None

    async def wait_answer(self) -> TurnOutcome:
        """Show the agent's answer until it looks complete, times out, or the agent hangs up."""
        started = time.monotonic()
        while True:
            await asyncio.sleep(self._sim.poll_s)
            await self.drain_speech()
            if self.ended:
                return "hung_up"
            if await self.agent_hung_up():
                return "hung_up"
            state = turn_state(
                time.monotonic(),
                started_at=started,
                last_heard_at=self.last_heard_at,
                quiet_s=self._sim.quiet_s,
                timeout_s=self._sim.turn_timeout_s,
            )
            if state != "waiting":
                return state

    async def turn(self, transcribe_id: str, text: str) -> TurnOutcome:
        """The caller says `text` (VoIPBin's transcript event) or presses `/keys`, then the
        agent's answer."""
        if text.startswith("/keys"):
            keys = text.removeprefix("/keys").strip()
            if not KEYS.match(keys):
                self.show("[/keys takes 0-9, * and #, e.g. /keys 1]")
                return "answered"
            self.press(keys)
            return await self._answered()
        customer_id = self._customer_id or DEV_CUSTOMER_ID
        data = transcript_data(transcribe_id, text, direction="in", customer_id=customer_id)
        delivery = await self._controls.emit("transcript_created", data)
        status = delivery.get("status_code")
        if status != 200:
            hint = " (is VOIPBIN_WEBHOOK_SECRET the fake's secret?)" if status == 401 else ""
            self.problem(f"ingress answered the transcript with {status or 'no answer'}{hint}")
        return await self._answered()

    async def _answered(self) -> TurnOutcome:
        outcome = await self.wait_answer()
        if outcome == "timed_out":
            self.problem(f"no answer within {self._sim.turn_timeout_s:.0f} s")
        return outcome

    async def converse(
        self, uri: str, flow: list[dict[str, Any]], lines: list[str] | None, read_line: ReadLine
    ) -> int:
        """Dial, be greeted, say each line, hang up; 0 when every step got its answer."""
        self.call = await self._controls.dial(uri, self._sim.caller)
        self.show(f"[{self._sim.caller} dials {uri}: call {self.call_id}]")
        engine = asyncio.create_task(self.run_flow(flow))
        try:
            await self._greeting()
            transcribe_id = None if self.ended else await self.wait_transcribe()
            if transcribe_id is None and not self.ended:
                self.problem(
                    f"no transcription opened for the call within {self._sim.session_timeout_s:.0f}"
                    " s (egress opens one on call_progressing): see the egress log"
                )
            queue = deque(lines) if lines is not None else None
            while transcribe_id and not self.ended:
                text = await self._next_line(queue, read_line)
                if text is None:
                    break
                if text.strip():
                    await self.turn(transcribe_id, text.strip())
            await self.listen_to_the_end()
            if not self.ended:
                await self.end("[you hang up]")
        finally:
            engine.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await engine
        return 1 if self.problems else 0

    async def listen_to_the_end(self) -> None:
        """Before hanging up, hear the last answer out (its estimated playback, then a quiet
        moment): an agent that says goodbye hangs up once it has been heard."""
        give_up_at = time.monotonic() + self._sim.listen_max_s
        while not self.ended and time.monotonic() < give_up_at:
            if time.monotonic() >= self.audible_until + self._sim.quiet_s:
                return
            await asyncio.sleep(self._sim.poll_s)
            await self.drain_speech()
            await self.agent_hung_up()

    async def _greeting(self) -> None:
        try:
            await asyncio.wait_for(self.greeted.wait(), self._sim.turn_timeout_s)
        except TimeoutError:
            self.problem(f"no greeting within {self._sim.turn_timeout_s:.0f} s")
        await self.drain_speech()

    async def _next_line(self, queue: deque[str] | None, read_line: ReadLine) -> str | None:
        if queue is None:
            return await read_line("you> ")
        if not queue:
            return None
        text = queue.popleft()
        self.show(f"you> {text}")
        return text
