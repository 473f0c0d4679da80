#!/usr/bin/env bash
# The CPU speed measurements of benchmarks/RESULTS.md (issue 5), as they were run. Needs a quiet
# machine (nothing else running; about an hour on 2 cores). Run from the repository root with
# the package installed.
set -euo pipefail
python benchmarks/reference_pipeline.py --size 224 --images 512 --batch 64 --rounds 3
python benchmarks/reference_pipeline.py --size 32 --images 4096 --batch 256 --rounds 3
python benchmarks/reference_step.py --batch 128 --warmup 3 --steps 3 --rounds 5
python benchmarks/encoder_shortcuts.py --rounds 7
python benchmarks/pretrain_throughput.py --repeat 2
python benchmarks/data_wait.py --steps 5
python benchmarks/scaling.py --repeat 1
python benchmarks/gmml_corruption.py --repeat 3
python benchmarks/attention_masks.py --repeat 3
