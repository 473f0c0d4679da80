#!/usr/bin/env bash
# The CPU-scale reproduction of issue 17 (benchmarks/RESULTS.md), as it is run: its studies in two
# one-thread processes that share them stage by stage (claims), each starting from the committed
# snapshot of finished stages (benchmarks/results/STUDY/results.json, taken with --import), so that
# a machine that lost its runs/ folder loses only the stages that were running.
#   bash benchmarks/repro.sh start      # two background processes; logs in runs/repro-*.log
#   bash benchmarks/repro.sh stop       # SIGTERM: a running training saves a checkpoint, claims are released
#   bash benchmarks/repro.sh snapshot   # results of what is finished -> benchmarks/results/STUDY/ (commit them)
# Run from the repository root with the package installed.
set -euo pipefail
STUDIES=(repro_claim repro_orderings repro_gmml_blocks repro_orderings_lr)

study() {  # study NAME [args]: one study with its committed snapshot imported
  local name=$1; shift
  local snap=benchmarks/results/$name/results.json
  python -m vitssl study "benchmarks/studies/$name.yaml" --quiet --keep-going \
    $( [ -f "$snap" ] && echo --import "$snap" ) "$@" || true  # a failed stage is listed; go on to the next study
}

stream() {  # stream NAME...: the studies one after another
  for name in "$@"; do study "$name"; done
}

case "${1:-}" in
  start)
    mkdir -p runs
    export OMP_NUM_THREADS=1
    # the same studies in another order: the second process starts where the first is not
    setsid nohup bash "$0" stream "${STUDIES[@]}" >> runs/repro-a.log 2>&1 < /dev/null &
    setsid nohup bash "$0" stream repro_orderings repro_gmml_blocks repro_orderings_lr repro_claim >> runs/repro-b.log 2>&1 < /dev/null &
    echo "started; logs: runs/repro-a.log, runs/repro-b.log";;
  stream)
    shift; stream "$@";;
  stop)
    pkill -TERM -f "repro.sh stream" || true
    pkill -TERM -f "vitssl study benchmarks/studies/repro_" || true;;
  snapshot)
    for name in "${STUDIES[@]}"; do
      study "$name" --report
      out=runs/study-$name
      python -c "import json, sys; sys.exit(not json.load(open(sys.argv[1]))['rows'])" "$out/results.json" \
        || { echo "$name: nothing finished yet, no snapshot"; continue; }
      mkdir -p "benchmarks/results/$name"
      for f in results.json results.md bars.png epochs.png; do
        [ -f "$out/$f" ] && cp "$out/$f" "benchmarks/results/$name/$f"
      done
    done;;
  *)
    echo "usage: bash benchmarks/repro.sh start|stop|snapshot" >&2; exit 2;;
esac
