"""Measuring a run: the trace of engine calls and their tasks, the per-iteration timeline, the
kernel's socket byte counters and the facts of the host. Below the engines, which fill the trace
in; nothing here imports a framework."""
