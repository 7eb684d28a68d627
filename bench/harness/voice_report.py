"""The voice benchmark's numbers: per-turn timings, the three tables, the evidence lines.

Per turn (all instants on the machine's monotonic clock unless said otherwise):

    event → say = t_say (the fake VoIPBin's `at` of the first `say`) - t0 (just before POST)
    model       = the fake model's own time for the request (first byte in → last byte out)
    overhead    = event → say - model

The ops topic (wall-clock `occurred_at`) splits the part before the model: ingress
`published` (after Kafka's ack) and brain `llm_start`. Each turn's wall and monotonic t0
were read together, which maps one clock onto the other for that turn.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness.report import Section
from bench.harness.sms_common import render_grid
from bench.harness.stats import occurred_s, percentile, percentile_cells, summary_ms
from bench.harness.voice_calls import TurnRecord
from bench.harness.voice_phases import PhaseResult

Ops = dict[tuple[str, str], dict[str, Any]]
STAGES = {
    "ingress": "POST → ingress `published` (signature, dedupe, call lookup, Kafka ack)",
    "to_brain": "`published` → brain `llm_start` (Kafka hop, scheduler, lock, memory)",
    "to_model": "`llm_start` → model request in (prompt, openai SDK, HTTP)",
    "model": "model (fake server's own time)",
    "brain_out": "model done → answer on the reply topic (stream end, lock extend; the"
    " record's CreateTime, taken when the brain sends it, 1 ms resolution)",
    "egress": "reply record → `say` at VoIPBin (Kafka ack and hop, egress poll, ledger, say)",
}


SLOW_EGRESS_MS = 20.0
"""An egress stage above this waited for egress's next poll (see docs/benchmarks.md)."""


class PhaseNumbers:
    """The timings of one phase, matched to the model's records and the ops topic."""

    def __init__(
        self,
        result: PhaseResult,
        ops: Ops,
        model: dict[str, dict[str, Any]],
        parts: dict[str, float],
    ) -> None:
        self.result = result
        self.answered = [t for t in result.turns if t.answered]
        self.e2e = [t.e2e_ms for t in self.answered]
        self.model: list[float] = []
        self.overhead: list[float] = []
        self.llm_overhead: list[float] = []
        self.llm: list[float] = []
        self.ack = [(t.t_ack - t.t0) * 1000 for t in result.turns if t.t_ack is not None]
        self.stages: dict[str, list[float]] = {key: [] for key in STAGES}
        self.rows: list[dict[str, Any]] = []
        """Per answered turn: its numbers (ms), for the run's jsonl file."""
        for turn in self.answered:
            self._turn(turn, ops, model.get(turn.text), parts.get(turn.message_id))
        greetings = result.fetches("greeting")
        self.greeting = [f.elapsed_ms for f in greetings]
        self.greeting_net = [
            f.elapsed_ms - end["duration_ms"]
            for f in greetings
            if (end := ops.get(("brain.llm_end", f"{f.call_id}:greeting"))) is not None
        ]
        self.hold = [f.elapsed_ms for f in result.fetches("hold")]

    def _turn(
        self, turn: TurnRecord, ops: Ops, served: dict[str, Any] | None, part: float | None
    ) -> None:
        assert turn.t_say is not None
        e2e = turn.e2e_ms
        row: dict[str, Any] = {"phase": self.result.phase.label, "turn": turn.message_id}
        row["e2e"] = e2e
        self.rows.append(row)
        end = ops.get(("brain.llm_end", turn.message_id))
        if end is not None and end.get("duration_ms") is not None:
            self.llm.append(end["duration_ms"])
            self.llm_overhead.append(e2e - end["duration_ms"])
        if served is None:
            return
        model_ms = (served["end"] - served["start"]) * 1000
        self.model.append(model_ms)
        self.overhead.append(e2e - model_ms)
        row |= {"model": model_ms, "overhead": e2e - model_ms}
        published = ops.get(("ingress.published", turn.message_id))
        start = ops.get(("brain.llm_start", turn.message_id))
        if published is None or start is None or part is None:
            return
        to_wall = turn.t0_wall - turn.t0  # this turn's monotonic → wall offset
        self.stages["ingress"].append((occurred_s(published) - turn.t0_wall) * 1000)
        self.stages["to_brain"].append((occurred_s(start) - occurred_s(published)) * 1000)
        self.stages["to_model"].append((served["start"] + to_wall - occurred_s(start)) * 1000)
        self.stages["model"].append(model_ms)
        self.stages["brain_out"].append((part - to_wall - served["end"]) * 1000)
        self.stages["egress"].append((turn.t_say + to_wall - part) * 1000)
        row |= {key: values[-1] for key, values in self.stages.items()}


def ops_by_message(records: list[Any]) -> Ops:
    """Lifecycle events of the ops topic keyed by (`stage.step`, message_id)."""
    events: Ops = {}
    for record in records:
        event = json.loads(record.value)
        if event.get("type") == "lifecycle" and event.get("message_id"):
            events[(f"{event['stage']}.{event['step']}", event["message_id"])] = event
    return events


def write_rows(path: Path, numbers: list[PhaseNumbers]) -> None:
    """Every answered turn's numbers, one JSON object per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for n in numbers:
            for row in n.rows:
                out.write(json.dumps(row) + "\n")


def first_parts(records: list[Any]) -> dict[str, float]:
    """When each answer's first spoken part was sent to the voice reply topic (epoch s),
    by the inbound message it answers."""
    found: dict[str, float] = {}
    for record in records:
        reply = json.loads(record.value)
        if reply.get("part") == 0 and reply.get("text"):
            found.setdefault(str(reply["in_reply_to"]), record.timestamp / 1000)
    return found


def model_by_user(requests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The fake model's first record per last user message (turn texts are unique)."""
    found: dict[str, dict[str, Any]] = {}
    for request in requests:
        found.setdefault(str(request["user"]), request)
    return found


def turn_table(numbers: list[PhaseNumbers]) -> str:
    header = ("model", "calls at once", "turns", "measure", "p50 ms", "p95 ms", "p99 ms", "max ms")
    rows = []
    for n in numbers:
        phase = n.result.phase
        head = (f"{phase.model_ms} ms", str(phase.concurrency))
        rows.append((*head, str(len(n.e2e)), "transcript in → `say` out", *percentile_cells(n.e2e)))
        rows.append(("", "", str(len(n.model)), "model (fake server)", *percentile_cells(n.model)))
        rows.append(
            ("", "", str(len(n.overhead)), "overhead (difference)", *percentile_cells(n.overhead))
        )
    return render_grid(header, rows)


def fetch_table(numbers: list[PhaseNumbers]) -> str:
    header = (
        "model",
        "calls at once",
        "fetch",
        "n",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "fallbacks",
    )
    rows = []
    for n in numbers:
        phase = n.result.phase
        head = (f"{phase.model_ms} ms", str(phase.concurrency))
        fallbacks = str(sum(f.fallback for f in n.result.fetches("greeting")))
        rows.append(
            (
                *head,
                "greeting (held)",
                str(len(n.greeting)),
                *percentile_cells(n.greeting),
                fallbacks,
            )
        )
        rows.append(
            (
                "",
                "",
                "greeting - model (llm_end)",
                str(len(n.greeting_net)),
                *percentile_cells(n.greeting_net),
                "",
            )
        )
        rows.append(("", "", "hold (no digits)", str(len(n.hold)), *percentile_cells(n.hold), "-"))
    return render_grid(header, rows)


def stage_table(numbers: list[PhaseNumbers]) -> str:
    header = ("model", "calls at once", "turns", *(f"{key} p50 / p99" for key in STAGES))
    rows = []
    for n in numbers:
        phase = n.result.phase
        cells = [f"{percentile(v, 50):.1f} / {percentile(v, 99):.1f}" for v in n.stages.values()]
        rows.append(
            (f"{phase.model_ms} ms", str(phase.concurrency), str(len(n.stages["model"])), *cells)
        )
    return render_grid(header, rows)


def section(numbers: list[PhaseNumbers], ops_count: int, model_count: int) -> Section:
    """The evidence under the tables, one block of lines per phase."""
    out = Section("voice channel evidence")
    out.note("stages: " + "; ".join(f"{key} = {label}" for key, label in STAGES.items()))
    for n in numbers:
        _phase_notes(out, n)
    out.note(f"ops topic: {ops_count} records; fake model served {model_count} requests")
    return out


def _phase_notes(out: Section, n: PhaseNumbers) -> None:
    result, label = n.result, n.result.phase.label
    turns = result.turns
    ok = sum(t.status == 200 for t in turns)
    missing = sum(t.t_say is None for t in turns)
    other = sum(t.t_say is not None and not t.answered for t in turns)
    says, duplicates, stray, talks = _speech_counts(result)
    out.note(
        f"{label}: {len(result.calls)} calls in {result.wall_s:.1f} s"
        f" ({sum(c.opened for c in result.calls)} opened, {sum(c.closed for c in result.calls)}"
        f" closed by egress); {len(turns)} transcripts posted, {ok} answered 200,"
        f" {len(n.answered)} answered by a `say` with their text, {missing} with no `say`"
        f" within 30 s, {other} whose first `say` was another text"
    )
    out.note(
        f"{label}: `say`s at the fake {says} for {len(turns)} turns; duplicate says {duplicates},"
        f" says matching no turn {stray}, `talk` (egress fallback) {talks}"
    )
    greetings = result.fetches("greeting")
    invalid = sum(bool(f.errors) for f in result.fetches("greeting") + result.fetches("hold"))
    out.note(
        f"{label}: fetches: {len(greetings)} greetings, {sum(f.fallback for f in greetings)}"
        f" answered with the fallback greeting; {len(result.fetches('hold'))} holds;"
        f" {invalid} answers VoIPBin would reject"
    )
    out.note(f"{label}: service counters moved: {_counters(result.counters)}")
    out.note(f"{label}: POST transcript → 200 (ingress, Kafka acks=all): {summary_ms(n.ack)}")
    out.note(
        f"{label}: brain llm_end.duration_ms (SDK + HTTP + fake): {summary_ms(n.llm)};"
        f" overhead with that as model time: {summary_ms(n.llm_overhead)}"
    )
    slow = [ms for ms in n.stages["egress"] if ms > SLOW_EGRESS_MS]
    out.note(
        f"{label}: turns whose egress stage took over {SLOW_EGRESS_MS:g} ms: {len(slow)} of"
        f" {len(n.stages['egress'])}; those: {summary_ms(slow)}"
    )
    if result.cpu is not None:
        out.note(f"{label}: {result.cpu.describe()}")


def _speech_counts(result: PhaseResult) -> tuple[int, int, int, int]:
    """(says, duplicated answers, says answering no turn, talks) over the phase's calls."""
    texts_by_call: dict[str, list[str]] = {}
    for call in result.calls:
        texts_by_call[call.call_id] = [t.text for t in call.turns]
    says = duplicates = stray = talks = 0
    for call_id, entries in result.speech.items():
        texts = texts_by_call.get(call_id, [])
        heard: Counter[str] = Counter()
        for entry in entries:
            if entry["op"] == "talk":
                talks += 1
            if entry["op"] != "say":
                continue
            says += 1
            matched = [text for text in texts if text in str(entry.get("text", ""))]
            if matched:
                heard[matched[0]] += 1
            else:
                stray += 1
        duplicates += sum(count - 1 for count in heard.values() if count > 1)
    return says, duplicates, stray, talks


def _counters(counters: dict[str, float]) -> str:
    if not counters:
        return "none"
    return ", ".join(f"{name} +{value:g}" for name, value in sorted(counters.items()))
