"""Tables of runs: time per iteration, throughput, speedup, efficiency, and where time goes."""

from __future__ import annotations

from collections.abc import Sequence


def speedups(records: Sequence[dict]) -> list[float | None]:
    """S(p) = T(1) / T(p) against the 1-worker run of the same job, engine and data."""
    base = {_key(r): r["timings"]["per_iteration"] for r in records if r["workers"] == 1}
    out = []
    for r in records:
        t1 = base.get(_key(r))
        out.append(t1 / r["timings"]["per_iteration"] if t1 else None)
    return out


def _key(record: dict) -> tuple:
    return (
        record["job"],
        record["engine"],
        record["rows"],
        record["features"],
        record["dtype"],
        record.get("address"),
    )


def table(records: Sequence[dict]) -> str:
    """A plain-text table, one row per run."""
    header = (
        "job",
        "engine",
        "workers",
        "parts",
        "s/iter",
        "rows/s",
        "speedup",
        "effic.",
        "compute",
        "comm.",
        "overhead",
        "iters",
        "quality",
    )
    rows = [header]
    for r, s in zip(records, speedups(records), strict=True):
        t = r["timings"]["per_iteration"]
        split = r["split"]
        quality = next(iter(r["quality"].items()), ("", ""))
        rows.append(
            (
                r["job"],
                r["engine"],
                str(r["workers"]),
                str(r["partitions"]),
                f"{t:.4f}",
                f"{r['throughput']['rows_per_s']:,.0f}",
                "-" if s is None else f"{s:.2f}x",
                "-" if s is None else f"{s / r['workers']:.0%}",
                *(
                    f"{split[p] / t:.0%}" if t else "-"
                    for p in ("compute", "communication", "overhead")
                ),
                str(r["quality"].get("n_iter", "")),
                f"{quality[0]}={quality[1]:.6g}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            c.rjust(w) if i > 1 else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(records: Sequence[dict]) -> None:
    print(table(records))
    print(
        "\ns/iter: median wall time of one iteration; speedup and efficiency against the "
        "1-worker run on the same engine; compute/comm./overhead: share of an iteration "
        "spent computing in tasks, moving data, and in the engine's per-call cost."
    )
