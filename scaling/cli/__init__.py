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

import os
import sys
from collections.abc import Sequence

from scaling.cli.clusters import cmd_cluster, cmd_jobs, cmd_submit
from scaling.cli.model import cmd_calibrate, cmd_explain, cmd_interview, cmd_predict
from scaling.cli.options import build_parser
from scaling.cli.results import cmd_compare, cmd_results, cmd_timeline
from scaling.cli.runs import cmd_demo, cmd_run, cmd_sweep
from scaling.errors import ScalingError

COMMANDS = {
    "run": cmd_run,
    "sweep": cmd_sweep,
    "results": cmd_results,
    "compare": cmd_compare,
    "explain": cmd_explain,
    "interview": cmd_interview,
    "calibrate": cmd_calibrate,
    "predict": cmd_predict,
    "timeline": cmd_timeline,
    "demo": cmd_demo,
    "submit": cmd_submit,
    "cluster": cmd_cluster,
    "jobs": cmd_jobs,
}


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # to run it again elsewhere
    try:
        return COMMANDS[args.command](args)
    except (ScalingError, ImportError) as e:
        print(f"scaling: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scaling: interrupted; results already written are intact", file=sys.stderr)
        return 130
