"""Is a small CPU better used by one training process with every thread, or by several one-thread
processes side by side (e.g. two studies at once)? Times a full pre-training step (augmentation to
AdamW) on a fixed batch, for a study's pre-training configs: first one process alone with torch's
default threads, then N one-thread processes started together; reports images/s of each and the
ratio of their sum to the single process. Run it on an otherwise idle machine.

python benchmarks/threads_vs_processes.py [--study benchmarks/studies/repro_claim.yaml]
    [--entries sit mae] [--processes 2] [--steps 30]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(study: str, entry: str, steps: int) -> None:
    import torch

    from vitssl.config.load import build_config
    from vitssl.study.estimate import pretrain_step
    from vitssl.study.plan import plan
    from vitssl.study.spec import read_study

    stage = next(s for s in plan(read_study(Path(study)), check_data=False)
                 if s.kind == "pretrain" and s.entry.name == entry)
    cfg = build_config(stage.config)
    b = cfg.train.batch_size
    step = pretrain_step(cfg, b, torch.device("cpu"))

    for _ in range(3):  # warm-up
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    print(f"{steps * b / (time.perf_counter() - t):.2f}")


def run(args, entry: str, processes: int, threads: int | None) -> list[float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, __file__, "--child", entry, "--study", args.study, "--steps", str(args.steps)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(processes)]
    rates = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"a timing process failed:\n{err}")
        rates.append(float(out.split()[-1]))
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default=str(ROOT / "benchmarks" / "studies" / "repro_claim.yaml"))
    ap.add_argument("--entries", nargs="+", default=["sit", "mae"])
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.study, args.child, args.steps)
    import torch

    print(f"| entry | 1 process, {torch.get_num_threads()} threads (img/s) | {args.processes} processes x 1 thread "
          "(img/s each) | sum / single |\n|---|---|---|---|")
    for entry in args.entries:
        single = run(args, entry, 1, None)[0]
        many = run(args, entry, args.processes, 1)
        print(f"| {entry} | {single:.1f} | {' + '.join(f'{r:.1f}' for r in many)} | {sum(many) / single:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
