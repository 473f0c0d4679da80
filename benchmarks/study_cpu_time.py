"""Probe accuracy against pre-training CPU time, from a study with epoch snapshots (issue 17, question 3:
the methods at equal CPU time, without a wall-clock budget that the machine's load would change).

Each entry's seconds per pre-training image are measured here with the study's own estimator (full
method steps, augmentation to AdamW, at the configured batch, 10 by default after one warm-up:
`vitssl.study.estimate.Rates`; run this on an otherwise idle machine) and multiplied by the images
each snapshot had seen. The accuracies are the study's (results.json). Writes cpu_time.md, cpu_time.json and cpu_time.png: every snapshot with its
CPU-minutes, and for each budget the accuracy each entry reaches within it (its latest snapshot that
fits; no interpolation).

python benchmarks/study_cpu_time.py benchmarks/studies/repro_claim.yaml [--results DIR] [--out DIR]
    [--budgets 5 10 20] [--steps 10] [--rates cpu_time.json]

`--rates` takes the rates an earlier run measured (its cpu_time.json, which names the machine and
date) instead of measuring them again: a study that is still running keeps the machine busy, so
measure once while it is paused and reuse the rates when its later results come in.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from vitssl.machine import describe  # noqa: E402
from vitssl.study.estimate import Rates  # noqa: E402
from vitssl.study.plan import plan  # noqa: E402
from vitssl.study.spec import read_study  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study")
    ap.add_argument("--results", help="the study's output folder (default: its output_dir)")
    ap.add_argument("--out", help="where to write (default: the results folder)")
    ap.add_argument("--budgets", nargs="+", type=float, help="CPU-minute budgets (default: every snapshot's time)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per entry, at its configured batch (10)")
    ap.add_argument("--rates", type=Path, help="a cpu_time.json whose measured img/s to use (entries it lacks "
                    "are measured)")
    args = ap.parse_args()
    study = read_study(args.study)
    folder = Path(args.results or study.output_dir)
    results = json.loads((folder / "results.json").read_text())
    rates = Rates(calls=args.steps, max_batch=None)  # the configured batch, timed over several steps
    earlier = json.loads(args.rates.read_text()) if args.rates else {}
    if earlier and earlier.get("study") != study.name:
        sys.exit(f"--rates {args.rates} holds the rates of study '{earlier.get('study')}', not '{study.name}'")
    per_image: dict[str, float] = {}  # entry -> measured seconds per pre-training image
    images: dict[str, int] = {}  # entry -> images per epoch
    measured_here = []
    for st in plan(study):
        if st.kind == "pretrain" and st.entry.name not in per_image:
            if st.entry.name in earlier.get("img_per_s", {}):
                per_image[st.entry.name] = 1 / earlier["img_per_s"][st.entry.name]
            else:
                per_image[st.entry.name] = rates.pretrain(st.config)
                measured_here.append(st.entry.name)
            images[st.entry.name] = st.images // st.config["train"]["batch_size"] * st.config["train"]["batch_size"]
            print(f"{st.entry.name}: {1 / per_image[st.entry.name]:.1f} img/s", file=sys.stderr)
    points = []  # (entry, protocol, epoch, minutes, mean, std, n)
    for s in results["summary"]:
        e = s["entry"]
        if e in per_image and s.get("pretrain_epoch"):
            minutes = s["pretrain_epoch"] * images[e] * per_image[e] / 60
            points.append(dict(entry=e, protocol=s["protocol"], epoch=s["pretrain_epoch"],
                               cpu_minutes=round(minutes, 2), mean=s["mean"], std=s["std"], seeds=len(s["seeds"])))
    random = {(s["entry"], s["protocol"]): s["mean"] for s in results["summary"] if s["entry"] not in per_image}
    protocols = sorted({p["protocol"] for p in points} - {"finetune"})
    budgets = sorted(set(args.budgets or [p["cpu_minutes"] for p in points]))
    reach = defaultdict(dict)  # (budget, protocol) -> entry -> point
    for b in budgets:
        for p in points:
            if p["cpu_minutes"] <= b + 1e-9 and p["protocol"] in protocols:
                best = reach[(b, p["protocol"])].get(p["entry"])
                if best is None or p["epoch"] > best["epoch"]:
                    reach[(b, p["protocol"])][p["entry"]] = p

    entries = list(per_image)
    m = describe()
    reused = len(measured_here) < len(per_image)  # some or all rates come from --rates
    timed = earlier.get("rates_machine", earlier.get("machine")) if reused else m  # where the rates were measured
    lines = [f"# {study.name}: probe accuracy against pre-training CPU time", "",
             f"`python benchmarks/study_cpu_time.py {args.study}" + (f" --rates {args.rates}" if args.rates else "")
             + f"`, {m['date']}; rates measured on {timed['cpu']}, {timed['cores']} cores, torch {timed['torch']}, "
             f"{timed['date']}" + (f" (read from {args.rates}; measured now: {', '.join(measured_here) or 'none'})"
                                  if reused else "") + ".", "",
             f"Seconds per pre-training image measured by `vitssl.study.estimate.Rates` ({args.steps} method steps "
             "at each entry's configured batch after one warm-up; run on an idle machine) x the images each snapshot "
             "had seen; accuracy: the study's mean over seeds.", "",
             "| entry | img/s | " + " | ".join(f"epochs (min): {p}" for p in protocols) + " |",
             "|---" * (2 + len(protocols)) + "|"]
    for e in entries:
        cells = []
        for proto in protocols:
            mine = sorted((p for p in points if p["entry"] == e and p["protocol"] == proto), key=lambda p: p["epoch"])
            cells.append(", ".join(f"{p['epoch']:g} ({p['cpu_minutes']:.1f}): {p['mean']:.2f}" for p in mine) or "–")
        lines.append(f"| {e} | {1 / per_image[e]:.1f} | " + " | ".join(cells) + " |")
    lines += ["", "Within each CPU budget, the accuracy of each entry's latest snapshot that fits (–: none fits):",
              "",
              "| budget (CPU-min) | protocol | " + " | ".join(entries) + " |", "|---" * (2 + len(entries)) + "|"]
    for b in budgets:
        for proto in protocols:
            got = reach[(b, proto)]
            lines.append(f"| {b:g} | {proto} | " + " | ".join(
                f"{got[e]['mean']:.2f} (ep {got[e]['epoch']:g})" if e in got else "–" for e in entries) + " |")
    if random:
        lines += ["", "Random init: " + ", ".join(f"{e} {p} {m:.2f}" for (e, p), m in sorted(random.items()))]
    out = Path(args.out or folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu_time.md").write_text("\n".join(lines) + "\n")
    record = {"study": study.name, "machine": m, "rates_machine": timed, "rates_from": str(args.rates or ""),
              "measured_here": measured_here, "timed_steps": args.steps,
              "img_per_s": {e: 1 / v for e, v in per_image.items()}, "points": points,
              "random_init": [{"entry": e, "protocol": p, "mean": acc} for (e, p), acc in sorted(random.items())]}
    (out / "cpu_time.json").write_text(json.dumps(record, indent=2) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(protocols), figsize=(5.5 * len(protocols), 4), squeeze=False)
    for ax, proto in zip(axes[0], protocols):
        for e in entries:
            mine = sorted((p for p in points if p["entry"] == e and p["protocol"] == proto), key=lambda p: p["epoch"])
            if mine:
                ax.errorbar([p["cpu_minutes"] for p in mine], [p["mean"] for p in mine],
                            yerr=[p["std"] for p in mine], marker="o", capsize=3, label=e)
        for (e, p), m in random.items():
            if p == proto:
                ax.axhline(m, ls="--", lw=0.8, color="gray")
        ax.set_xscale("log")
        ax.set_xlabel("pre-training CPU-minutes (measured rate)")
        ax.set_ylabel(f"{proto} accuracy (%)")
        ax.set_title(proto)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "cpu_time.png", dpi=110)
    print(f"wrote {out / 'cpu_time.md'}, cpu_time.json and cpu_time.png")


if __name__ == "__main__":
    main()
