"""Numbers with their units, as every view prints them (``16.6 kB``, ``4.56 ms``): one spelling
for the tables, the reports, the cost model's assumptions and the interview's answers."""

from __future__ import annotations

from scaling.errors import UsageError


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


LINKS = {"100mbit": 100e6, "1gbit": 1e9, "10gbit": 10e9, "25gbit": 25e9}
"""Named link rates, bits per second (``--link``); a plain number is bits per second too."""


def link_rate(text: str) -> float:
    """Bits per second of ``--link`` (``100mbit``, ``1gbit``, ``10gbit``, ``25gbit`` or a
    number of bits per second)."""
    if text in LINKS:
        return LINKS[text]
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if rate <= 0:
        raise UsageError(
            f"--link takes {', '.join(LINKS)} or a number of bits per second, got {text!r}"
        )
    return rate
