"""scaling: run jobs on local, Ray, Dask or Spark workers and see how they scale.

Commands: ``run`` (one job, one engine, some worker counts), ``sweep`` (engines x workers x
sizes, strong or weak scaling, with a report), ``results`` (the sweeps in the store),
``compare`` (one report over several sweeps), ``explain`` (one iteration's steps),
``calibrate`` and ``predict`` (the cost model), ``timeline`` (a run's tasks for Perfetto),
``demo``; ``cluster start|status|stop`` (a local cluster that keeps running), ``submit`` (a run
on it, detached) and ``jobs`` (list, status, logs, stop, wait). Errors a user can fix print
one line, ``scaling: error: ...``, and exit with status 2.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from scaling.cli.options import COMMANDS, build_parser
from scaling.errors import ScalingError


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(only=command or "").parse_args(argv)
    args.argv = argv  # to run it again elsewhere
    try:
        module = importlib.import_module(f"scaling.cli.{COMMANDS[args.command].module}")
        return getattr(module, f"cmd_{args.command}")(args)
    except (ScalingError, ImportError) as e:
        print(f"scaling: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scaling: interrupted; results already written are intact", file=sys.stderr)
        return 130
