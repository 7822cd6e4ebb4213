#!/usr/bin/env bash
# Start a real local cluster of N single-core workers that `scaling run --address` connects to.
#   cluster/start.sh ray 2     -> --engine ray   --address 127.0.0.1:6379
#   cluster/start.sh dask 2    -> --engine dask  --address tcp://127.0.0.1:8786
#   cluster/start.sh spark 2   -> --engine spark --address spark://127.0.0.1:7077
# Stop it with cluster/stop.sh ENGINE. Logs go to cluster/logs/.
set -euo pipefail
engine=${1:?usage: cluster/start.sh ray|dask|spark [workers]}
workers=${2:-2}
here=$(cd "$(dirname "$0")" && pwd)
bin=${VENV:-$here/../.venv}/bin
mkdir -p "$here/logs"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 SPARK_LOCAL_IP=127.0.0.1
case $engine in
  ray)
    "$bin/ray" start --head --node-ip-address=127.0.0.1 --port=6379 --num-cpus="$workers" \
      --include-dashboard=false --disable-usage-stats
    echo "--engine ray --address 127.0.0.1:6379" ;;
  dask)
    nohup "$bin/dask" scheduler --host 127.0.0.1 --port 8786 --no-dashboard \
      >"$here/logs/dask-scheduler.log" 2>&1 &
    echo $! >"$here/logs/dask.pids"
    sleep 2
    nohup "$bin/dask" worker tcp://127.0.0.1:8786 --nworkers "$workers" --nthreads 1 \
      --host 127.0.0.1 --no-dashboard >"$here/logs/dask-workers.log" 2>&1 &
    echo $! >>"$here/logs/dask.pids"
    echo "--engine dask --address tcp://127.0.0.1:8786" ;;
  spark)
    home=$("$bin/python" -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))')
    export SPARK_HOME=$home PYSPARK_PYTHON=$bin/python
    nohup "$home/bin/spark-class" org.apache.spark.deploy.master.Master --host 127.0.0.1 \
      --port 7077 --webui-port 8080 >"$here/logs/spark-master.log" 2>&1 &
    echo $! >"$here/logs/spark.pids"
    # The master's JVM takes seconds to listen (longer on a loaded machine): wait for its port.
    for _ in $(seq 60); do
      (echo >/dev/tcp/127.0.0.1/7077) 2>/dev/null && break
      sleep 1
    done
    for i in $(seq "$workers"); do
      nohup "$home/bin/spark-class" org.apache.spark.deploy.worker.Worker --host 127.0.0.1 \
        --cores 1 --memory 1g --webui-port 0 spark://127.0.0.1:7077 \
        >"$here/logs/spark-worker-$i.log" 2>&1 &
      echo $! >>"$here/logs/spark.pids"
    done
    echo "--engine spark --address spark://127.0.0.1:7077" ;;
  *) echo "unknown engine $engine: use ray, dask or spark" >&2; exit 2 ;;
esac
