#!/usr/bin/env bash
# The GPU measurements issue 5 asks for (one CUDA device; CIFAR-10 at ../shared/data/cifar10 or
# pass ROOT=synthetic). Run from the repository root with the package installed; results land in
# benchmarks/results/ with the device name, then go into benchmarks/RESULTS.md.
set -euo pipefail
ROOT=${ROOT:-../shared/data/cifar10}
python benchmarks/reference_pipeline.py --device cuda --size 224 --images 2048 --batch 256 --workers 8
python benchmarks/reference_step.py --device cuda --precision bf16 --batch 256 --warmup 3 --steps 10 --workers 8 --compile
python benchmarks/pretrain_throughput.py --device cuda --precision bf16 --compile --repeat 10
python benchmarks/pretrain_throughput.py --device cuda --precision bf16 --repeat 10
python benchmarks/data_wait.py --device cuda --precision bf16 --root "$ROOT" --batch 512 --steps 30
python benchmarks/attention_masks.py --device cuda --repeat 20
python benchmarks/encoder_shortcuts.py --device cuda --rounds 20
python benchmarks/scaling.py --device cuda --repeat 5
