"""Numbers with their units, as every view prints them (``16.6 kB``, ``4.56 ms``): one spelling
for the tables, the reports, the cost model's assumptions and the interview's answers."""

from __future__ import annotations


def si(value: float, unit: str) -> str:
    """``value`` with an SI prefix: ``16.6 kB``, ``1.2 Mflop``."""
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.1f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def seconds(value: float) -> str:
    """``1.23 s``, ``4.56 ms``, ``78 us``."""
    if abs(value) >= 1:
        return f"{value:.2f} s"
    if abs(value) >= 1e-3:
        return f"{value * 1e3:.2f} ms"
    return f"{value * 1e6:.0f} us"
