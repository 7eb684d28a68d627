"""The VAPI benchmark's numbers: per-turn timings, the tables, the evidence lines.

Per custom-LLM request (instants on the machine's monotonic clock unless said otherwise):

    first chunk = t_first (first SSE chunk with content read by the bench) - t0 (just before
                  the request was sent)
    model TTFT  = the fake model's first content chunk sent - its first byte in, for the
                  brain's model request of that turn (matched by the last user message)
    overhead    = first chunk - model TTFT

The ops topic (wall-clock `occurred_at`) and the VAPI reply topic (record CreateTime, 1 ms)
split the overhead into stages; each turn's wall and monotonic t0 were read together, which
maps one clock onto the other for that turn.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from bench.harness.report import Section
from bench.harness.sms_common import render_grid
from bench.harness.stats import occurred_s, percentile, percentile_cells, summary_ms
from bench.harness.vapi_calls import GreetingRecord, LlmRecord
from bench.harness.vapi_phases import PhaseResult

GOAL_P50_MS = 15.0
GOAL_P99_MS = 50.0
TURN_STAGES = {
    "ingress": "request sent → ingress `received` (bearer check, body, call record, holder"
    " record in Redis)",
    "ack": "`received` → `published` (Kafka acks=all of the turn)",
    "to_brain": "`published` → brain `llm_start` (Kafka hop, scheduler, lock, memory, heard)",
    "to_model": "`llm_start` → model request in (prompt, openai SDK, HTTP)",
    "model_ttft": "model request in → its first content chunk out (fake server's own time)",
    "to_reply": "first token → first sentence on the VAPI reply topic (rest of the sentence,"
    " sentence cut, lock extend; the record's CreateTime, 1 ms resolution)",
    "egress": "reply record → egress `queued` (Kafka ack and hop, egress poll, holder lookup,"
    " inbox XADD)",
    "to_client": "`queued` → first chunk read by the bench (inbox XREAD wake-up, held stream,"
    " SSE write, client read; `queued` is stamped after the XADD returns, so this can be"
    " slightly negative; with BRAIN_STREAM_DIRECT on, the brain's own copy of the part"
    " usually wins and this is negative by how much sooner it came than egress's)",
}
GREETING_STAGES = {
    "ingress": "request sent → ingress `received` (HMAC check, body, dedupe, caller identity,"
    " call record)",
    "ack": "`received` → `published` (Kafka acks=all of the GREETING)",
    "to_brain": "`published` → brain `llm_start` (Kafka hop, scheduler, lock, memory)",
    "model": "`llm_start` → `llm_end` (prompt, openai SDK, HTTP, fake model)",
    "to_reply": "`llm_end` → the greeting on the VAPI reply topic (its CreateTime)",
    "egress": "reply record → egress `queued` (Kafka hop, egress poll, inbox XADD)",
    "to_client": "`queued` → the answer's last byte at the bench (inbox wake-up, answer built)",
}


@dataclass
class Topics:
    """What the run left on Kafka, indexed for matching."""

    by_message: dict[tuple[str, str], dict[str, Any]]
    """Lifecycle events by (`stage.step`, provider message id)."""
    queued: dict[str, dict[str, Any]]
    """Egress `queued` events by reply id."""
    first_parts: dict[str, tuple[float, str]]
    """By the inbound message answered: (epoch s of the first spoken part's record, its
    reply id)."""
    ops_count: int
    reply_count: int

    def at(self, step: str, message_id: str) -> float | None:
        """Epoch seconds of a lifecycle step of a message, if it was seen."""
        event = self.by_message.get((step, message_id))
        return occurred_s(event) if event is not None else None

    def queued_at(self, reply_id: str) -> float | None:
        event = self.queued.get(reply_id)
        return occurred_s(event) if event is not None else None

    @classmethod
    def read(cls, ops: list[Any], replies: list[Any]) -> Topics:
        by_message: dict[tuple[str, str], dict[str, Any]] = {}
        queued: dict[str, dict[str, Any]] = {}
        for record in ops:
            event = json.loads(record.value)
            if event.get("type") != "lifecycle":
                continue
            step = f"{event['stage']}.{event['step']}"
            if event.get("message_id"):
                by_message.setdefault((step, event["message_id"]), event)
            if step == "egress.queued" and event.get("reply_id"):
                queued.setdefault(event["reply_id"], event)
        parts: dict[str, tuple[float, str]] = {}
        for record in replies:
            reply = json.loads(record.value)
            if reply.get("part") == 0 and reply.get("text"):
                answered = str(reply["in_reply_to"])
                parts.setdefault(answered, (record.timestamp / 1000, str(reply["reply_id"])))
        return cls(by_message, queued, parts, len(ops), len(replies))


def model_by_user(requests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The fake model's first record per last user message (turn texts are unique)."""
    found: dict[str, dict[str, Any]] = {}
    for request in requests:
        found.setdefault(str(request["user"]), request)
    return found


class PhaseNumbers:
    """The timings of one phase, matched to the model's records and the topics."""

    def __init__(
        self, result: PhaseResult, topics: Topics, model: dict[str, dict[str, Any]]
    ) -> None:
        self.result = result
        turns = result.turns
        self.answered = [t for t in turns if t.answered]
        self.first_chunk = [t.first_chunk_ms for t in self.answered]
        self.whole = [(t.t_done - t.t0) * 1000 for t in self.answered if t.t_done is not None]
        self.model_ttft: list[float] = []
        self.overhead: list[float] = []
        self.llm_overhead: list[float] = []
        self.stages: dict[str, list[float]] = {key: [] for key in TURN_STAGES}
        self.greeting_stages: dict[str, list[float]] = {key: [] for key in GREETING_STAGES}
        self.rows: list[dict[str, Any]] = []
        for turn in self.answered:
            self._turn(turn, topics, model.get(turn.text))
        self.fillers = sum(t.filler for t in turns)
        self.apologies = sum(t.apology for t in turns)
        self.failed = [t for t in turns if t.status != 200 or t.t_done is None or t.error]
        greetings = result.greetings
        self.greeting = [g.elapsed_ms for g in greetings if g.status == 200]
        self.greeting_net: list[float] = []
        for greeting in greetings:
            if greeting.status == 200:
                self._greeting(greeting, topics)
        self.fallbacks = sum(g.fallback for g in greetings)
        self.from_brain = sum(g.status == 200 and not g.fallback for g in greetings)

    def _turn(self, turn: LlmRecord, topics: Topics, served: dict[str, Any] | None) -> None:
        first = turn.first_chunk_ms
        row: dict[str, Any] = {"phase": self.result.phase.label, "turn": turn.message_id}
        row["first_chunk"] = first
        self.rows.append(row)
        end = topics.by_message.get(("brain.llm_end", turn.message_id))
        if end is not None and end.get("duration_ms") is not None:
            self.llm_overhead.append(first - end["duration_ms"])
        if served is None or served.get("first_token") is None:
            return
        ttft = (served["first_token"] - served["start"]) * 1000
        self.model_ttft.append(ttft)
        self.overhead.append(first - ttft)
        row |= {"model_ttft": ttft, "overhead": first - ttft}
        assert turn.t_first is not None
        to_wall = turn.t0_wall - turn.t0  # this turn's monotonic → wall offset
        part = topics.first_parts.get(turn.message_id)
        instants = [
            turn.t0_wall,
            topics.at("ingress.received", turn.message_id),
            topics.at("ingress.published", turn.message_id),
            topics.at("brain.llm_start", turn.message_id),
            served["start"] + to_wall,
            served["first_token"] + to_wall,
            part[0] if part is not None else None,
            topics.queued_at(part[1]) if part is not None else None,
            turn.t_first + to_wall,
        ]
        if _split(instants, self.stages):
            row |= {key: values[-1] for key, values in self.stages.items()}

    def _greeting(self, greeting: GreetingRecord, topics: Topics) -> None:
        message_id = f"{greeting.call_id}:greeting"
        end = topics.by_message.get(("brain.llm_end", message_id))
        if end is not None and end.get("duration_ms") is not None:
            self.greeting_net.append(greeting.elapsed_ms - end["duration_ms"])
        reply = topics.first_parts.get(message_id)
        instants = [
            greeting.t0_wall,
            topics.at("ingress.received", message_id),
            topics.at("ingress.published", message_id),
            topics.at("brain.llm_start", message_id),
            topics.at("brain.llm_end", message_id),
            reply[0] if reply is not None else None,
            topics.queued_at(reply[1]) if reply is not None else None,
            greeting.t0_wall + greeting.elapsed_ms / 1000,
        ]
        _split(instants, self.greeting_stages)


def _split(instants: list[float | None], stages: dict[str, list[float]]) -> bool:
    """Append the gaps between consecutive instants (epoch s) to `stages`, in order, when
    every instant is known."""
    known = [at for at in instants if at is not None]
    if len(known) != len(instants):
        return False
    for key, (before, after) in zip(stages, pairwise(known), strict=True):
        stages[key].append((after - before) * 1000)
    return True


def write_rows(path: Path, numbers: list[PhaseNumbers]) -> None:
    """Every answered turn's numbers, one JSON object per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for n in numbers:
            for row in n.rows:
                out.write(json.dumps(row) + "\n")


def goal_table(numbers: list[PhaseNumbers]) -> str:
    header = (
        "calls on the line",
        "turns",
        "turns/s",
        "overhead p50",
        f"p50 ≤ {GOAL_P50_MS:g} ms",
        "overhead p99",
        f"p99 ≤ {GOAL_P99_MS:g} ms",
    )
    rows = []
    for n in numbers:
        rate = len(n.result.turns) / n.result.wall_s if n.result.wall_s else 0.0
        p50, _, p99, _ = percentile_cells(n.overhead)
        rows.append(
            (
                n.result.phase.label,
                str(len(n.overhead)),
                f"{rate:.1f}",
                p50,
                _verdict(n.overhead, 50, GOAL_P50_MS),
                p99,
                _verdict(n.overhead, 99, GOAL_P99_MS),
            )
        )
    return render_grid(header, rows)


def _verdict(values: Sequence[float], q: float, goal_ms: float) -> str:
    if not values:
        return "n/a"
    return "PASS" if percentile(values, q) <= goal_ms else "MISS"


def first_chunk_table(numbers: list[PhaseNumbers]) -> str:
    header = ("calls on the line", "turns", "measure", "p50 ms", "p95 ms", "p99 ms", "max ms")
    rows = []
    for n in numbers:
        label = n.result.phase.label
        rows.append(
            (
                label,
                str(len(n.first_chunk)),
                "request → first chunk",
                *percentile_cells(n.first_chunk),
            )
        )
        rows.append(
            ("", str(len(n.model_ttft)), "model TTFT (fake)", *percentile_cells(n.model_ttft))
        )
        rows.append(
            ("", str(len(n.overhead)), "overhead (difference)", *percentile_cells(n.overhead))
        )
        rows.append(("", str(len(n.whole)), "request → [DONE]", *percentile_cells(n.whole)))
    return render_grid(header, rows)


def answers_table(numbers: list[PhaseNumbers]) -> str:
    header = ("calls on the line", "requests", "answered", "fillers", "apologies", "failed")
    rows = []
    for n in numbers:
        turns = n.result.turns
        rows.append(
            (
                n.result.phase.label,
                str(len(turns)),
                str(len(n.answered)),
                str(n.fillers),
                str(n.apologies),
                str(len(n.failed)),
            )
        )
    return render_grid(header, rows)


def greeting_table(numbers: list[PhaseNumbers]) -> str:
    header = (
        "calls on the line",
        "measure",
        "n",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "from brain",
        "fallback",
    )
    rows = []
    for n in numbers:
        greetings = n.result.greetings
        rows.append(
            (
                n.result.phase.label,
                "assistant-request → answer",
                str(len(n.greeting)),
                *percentile_cells(n.greeting),
                f"{n.from_brain}/{len(greetings)}",
                f"{n.fallbacks}/{len(greetings)}",
            )
        )
        rows.append(
            (
                "",
                "minus the greeting's llm_end",
                str(len(n.greeting_net)),
                *percentile_cells(n.greeting_net),
                "",
                "",
            )
        )
    return render_grid(header, rows)


def stage_table(numbers: list[PhaseNumbers], greeting: bool = False) -> str:
    keys = GREETING_STAGES if greeting else TURN_STAGES
    header = ("calls on the line", "n", *(f"{key} p50 / p99" for key in keys))
    rows = []
    for n in numbers:
        stages = n.greeting_stages if greeting else n.stages
        cells = [
            f"{percentile(v, 50):.1f} / {percentile(v, 99):.1f}" if v else "n/a"
            for v in stages.values()
        ]
        rows.append((n.result.phase.label, str(len(next(iter(stages.values())))), *cells))
    return render_grid(header, rows)


def section(numbers: list[PhaseNumbers], topics: Topics, model_count: int) -> Section:
    """The evidence under the tables, one block of lines per phase."""
    out = Section("VAPI custom LLM evidence")
    out.note(
        "custom-LLM stages: " + "; ".join(f"{key} = {text}" for key, text in TURN_STAGES.items())
    )
    out.note(
        "assistant-request stages: "
        + "; ".join(f"{key} = {text}" for key, text in GREETING_STAGES.items())
    )
    for n in numbers:
        _phase_notes(out, n)
    out.note(
        f"ops topic: {topics.ops_count} records; VAPI reply topic: {topics.reply_count} records;"
        f" fake model served {model_count} requests"
    )
    return out


def _phase_notes(out: Section, n: PhaseNumbers) -> None:
    result, label = n.result, n.result.phase.label
    turns = result.turns
    greetings = result.greetings
    ended = sum(c.ended_status == 200 for c in result.calls)
    updates = [status for c in result.calls for status in c.speech_updates]
    out.note(
        f"{label}: {len(result.calls)} calls in {result.wall_s:.1f} s; {len(greetings)}"
        f" assistant-requests ({sum(g.status == 200 for g in greetings)} answered 200,"
        f" {n.fallbacks} with the fallback greeting); {len(turns)} custom-LLM requests,"
        f" {len(n.answered)} answered with their own text after [DONE]; {n.fillers} fillers,"
        f" {n.apologies} apologies; {len(updates)} speech-updates"
        f" ({sum(status == 200 for status in updates)} answered 200); {ended}"
        " end-of-call-reports answered 200"
    )
    for turn in n.failed[:3]:
        out.note(
            f"{label}: failed request {turn.message_id}: status {turn.status}, error"
            f" {turn.error or '-'}, [DONE] {'yes' if turn.t_done else 'no'}"
        )
    out.note(f"{label}: service counters moved: {_counters(result.counters)}")
    out.note(
        f"{label}: overhead with the brain's llm_end.duration_ms (SDK + HTTP + the whole"
        f" stream) as model time: {summary_ms(n.llm_overhead)}"
    )
    if result.cpu is not None:
        out.note(f"{label}: {result.cpu.describe()}")
    if result.kafka_gc:
        out.note(f"{label}: {result.kafka_gc}")


def _counters(counters: dict[str, float]) -> str:
    if not counters:
        return "none"
    return ", ".join(f"{name} +{value:g}" for name, value in sorted(counters.items()))
