"""Per-task timelines: what the driver and each worker did, on one clock.

Every engine call records its tasks' start and end on the workers (:class:`TaskEvent`), and
gang members their own iterations. On one host every process reads the same wall clock;
workers on other hosts are shifted by the offset the engine measured for them at calibration
(:attr:`Trace.clock_offsets`, Cristian's algorithm: their error is at most half a call's round
trip).

:func:`iteration` lays one iteration out as bars on lanes (the driver, then each worker) with
times relative to its start, which run records keep for the report; :func:`chrome_trace`
writes a whole run as Chrome trace-event JSON, which Perfetto (https://ui.perfetto.dev) and
chrome://tracing open.
"""

from __future__ import annotations

from scaling.measure.host import worker_id
from scaling.measure.trace import Call, Span, Trace

KINDS = ("compute", "communication", "overhead", "wait")
"""What a bar's time is: computing (tasks, and driver-side updates), moving data, the engine's
per-call cost, or the driver waiting on a call (its split is in the call's ``args``)."""


def _calls_events(trace: Trace, calls: list[Call], t0: float) -> list[dict]:
    bars = []
    for call in calls:
        bars.append(
            {
                "lane": "driver",
                "name": call.op,
                "kind": "wait",
                "start": call.start - t0,
                "end": call.start + call.wall - t0,
                "args": {
                    "compute": call.compute,
                    "communication": call.communication,
                    "overhead": call.overhead,
                    "bytes": call.bytes_in + call.bytes_out,
                },
            }
        )
        bars += [_task(trace, e, t0) for e in call.events]
    return bars


def _task(trace: Trace, event, t0: float) -> dict:
    shift = trace.clock_offsets.get(event.worker.split("#")[0], 0.0)  # host:pid#rank
    return {
        "lane": event.worker,
        "name": event.name,
        "kind": event.kind,
        "start": event.start - shift - t0,
        "end": event.end - shift - t0,
    }


def iteration(trace: Trace, span: Span) -> dict:
    """One iteration as bars: ``{"wall": seconds, "bars": [{lane, name, kind, start, end}],
    "driver": the driver process's lane id}``, times in seconds from the iteration's start.
    Driver-side work between calls is a ``compute`` bar on the driver's lane; tasks that ran
    in the driver's own process (the local engine's, Spark's last combine) are on the lane
    ``driver`` names."""
    bars = _calls_events(trace, span.calls, span.start)
    bars += [_task(trace, e, span.start) for e in span.events]
    cursor = 0.0  # the driver computes (an update, a line search) between its calls
    for call in sorted(span.calls, key=lambda c: c.start):
        if call.start - span.start > cursor:
            bars.append(_driver_compute(cursor, call.start - span.start))
        cursor = max(cursor, call.start + call.wall - span.start)
    if span.calls and span.wall > cursor:
        bars.append(_driver_compute(cursor, span.wall))
    return {"name": span.name, "wall": span.wall, "bars": bars, "driver": worker_id()}


def _driver_compute(start: float, end: float) -> dict:
    return {"lane": "driver", "name": "driver", "kind": "compute", "start": start, "end": end}


def split_of(timeline: dict) -> dict[str, float]:
    """Compute, communication and overhead of an iteration, read off its bars: the driver's
    own compute, plus per call the busiest worker's task time inside it; the rest of each call
    is communication and overhead, in the call's own proportion (gang iterations: the bars of
    the member that took longest)."""
    bars = timeline["bars"]
    driver = [b for b in bars if b["lane"] == "driver"]
    if not driver:  # a gang iteration: the member whose bars span longest
        lanes: dict[str, list[dict]] = {}
        for b in bars:
            lanes.setdefault(b["lane"], []).append(b)
        slowest = max(lanes.values(), key=lambda bs: sum(b["end"] - b["start"] for b in bs))
        return {k: sum(b["end"] - b["start"] for b in slowest if b["kind"] == k) for k in KINDS[:3]}
    out = dict.fromkeys(KINDS[:3], 0.0)
    for b in driver:
        seconds = b["end"] - b["start"]
        if b["kind"] == "compute":
            out["compute"] += seconds
            continue
        inside = [
            t
            for t in bars
            if t["lane"] != "driver"
            and t["start"] >= b["start"] - 1e-3
            and t["end"] <= b["end"] + 1e-3
        ]
        per_worker: dict[str, float] = {}
        for t in inside:
            per_worker[t["lane"]] = per_worker.get(t["lane"], 0.0) + t["end"] - t["start"]
        busy = min(max(per_worker.values(), default=0.0), seconds)
        out["compute"] += busy
        rest = seconds - busy
        comm, over = b["args"]["communication"], b["args"]["overhead"]
        share = over / (comm + over) if comm + over > 0 else 1.0
        out["overhead"] += rest * share
        out["communication"] += rest * (1 - share)
    return out


def _within(task: dict, call: dict, slack: float = 1e-3) -> bool:
    """Whether a task ran inside a call (``slack``: clock reads on two processes)."""
    return task["start"] >= call["start"] - slack and task["end"] <= call["end"] + slack


def chrome_trace(trace: Trace, iteration_name: str | None = None) -> dict:
    """The whole run as Chrome trace-event JSON: a process per lane (the driver, each worker),
    complete ("X") events in microseconds from the run's first call; iterations named
    ``iteration_name`` are events on the driver's second thread."""
    spans = [s for s in trace.spans if s.calls or s.events]
    t0 = min([c.start for c in trace.calls] + [s.start for s in spans], default=0.0)
    bars = _calls_events(trace, trace.calls, t0)
    for span in spans:
        bars += [_task(trace, e, t0) for e in span.events]
    lanes = ["driver", *sorted({b["lane"] for b in bars} - {"driver"})]
    pid = {lane: i for i, lane in enumerate(lanes)}
    events: list[dict] = [
        {"ph": "M", "name": "process_name", "pid": pid[lane], "tid": 0, "args": {"name": lane}}
        for lane in lanes
    ]
    for b in bars:
        events.append(
            {
                "ph": "X",
                "name": b["name"],
                "cat": b["kind"],
                "pid": pid[b["lane"]],
                "tid": 0,
                "ts": round(b["start"] * 1e6, 3),
                "dur": round((b["end"] - b["start"]) * 1e6, 3),
                "args": b.get("args", {}),
            }
        )
    for i, span in enumerate(s for s in trace.spans if s.name == iteration_name):
        events.append(
            {
                "ph": "X",
                "name": f"{span.name} {i}",
                "cat": "iteration",
                "pid": 0,
                "tid": 1,
                "ts": round((span.start - t0) * 1e6, 3),
                "dur": round(span.wall * 1e6, 3),
                "args": span.summary(),
            }
        )
    return {"traceEvents": events, "displayTimeUnit": "ms"}
