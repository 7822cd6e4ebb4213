#!/usr/bin/env bash
# Stop a cluster started by cluster/start.sh.
set -euo pipefail
engine=${1:?usage: cluster/stop.sh ray|dask|spark}
here=$(cd "$(dirname "$0")" && pwd)
bin=${VENV:-$here/../.venv}/bin
case $engine in
  ray) "$bin/ray" stop ;;
  dask|spark)
    pids=$here/logs/$engine.pids
    [ -f "$pids" ] && xargs kill <"$pids" && rm "$pids" ;;
  *) echo "unknown engine $engine: use ray, dask or spark" >&2; exit 2 ;;
esac
