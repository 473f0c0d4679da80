"""Issue 17's answers from the two reproduction studies' results.json: does each published ordering hold
here, by how much, with what spread?

- SiT's claim (`repro_claim`): each method pre-trained on the subset and fine-tuned on it, against the
  same fine-tuning from random init with the same pooling (like with like); the gain is paired by seed
  (seed s pre-trained and fine-tuned against seed s from random init). Also the probes (k-NN, linear)
  at every pre-training epoch against random init read the same way.
- RandSAC's orderings (`repro_orderings`): each published step (raster < patch random < squares M=2 <
  squares 16->4; blobs; learned skips > vanilla decoder) measured as a paired difference of linear
  probes (and k-NN) at equal steps; the same for the serialisations that `repro_orderings_lr` repeats at
  RandSAC's fastest trial rate (does the ordering depend on the rate?).

A difference "holds" when it has the paper's sign on every seed, is "reversed" when it has the other
sign on every seed, and is "unclear" otherwise. With 10,000 test images one accuracy has a sampling
std of about 0.5 points (sqrt(p(1-p)/n)), a difference of two about 0.7: a step smaller than that is
reported with its sign but called within noise.

python benchmarks/repro_summary.py [--claim benchmarks/results/repro_claim/results.json]
    [--orderings benchmarks/results/repro_orderings/results.json]
    [--orderings-lr benchmarks/results/repro_orderings_lr/results.json] [--out benchmarks/results/repro_summary.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vitssl.study.results import mean_std

ROOT = Path(__file__).resolve().parent
NOISE = 0.7  # points: the sampling std of a difference of two accuracies on 10,000 test images (p ~ 0.5)

# METHODS.md §2, CIFAR-10 ablations (linear probe %), and the paper's ordering claims among our entries
PAPER_LINEAR = {"patch-raster": 55.53, "patch-random": 75.53, "squares-m2": 81.38, "squares-16to4": 82.46,
                "blobs-k7": 82.52}
ORDERINGS = [("patch-raster", "patch-random", "random order beats raster"),
             ("patch-random", "squares-m2", "square segments (M=2) beat single patches"),
             ("squares-m2", "squares-16to4", "the 16->4 hierarchy beats flat squares"),
             ("patch-raster", "squares-16to4", "the 16->4 hierarchy beats raster (the widest step)"),
             ("patch-raster", "blobs-k7", "blobs (K=7) beat raster"),
             ("patch-random", "blobs-k7", "blobs (K=7) beat single patches"),
             ("vanilla-decoder", "squares-16to4", "learned skips beat the vanilla decoder (both 16->4)")]


def load(path: Path) -> list[dict]:
    return json.loads(path.read_text())["rows"]


def by_seed(rows: list[dict], entry: str, protocol: str, epoch=None) -> dict[int, float]:
    """seed -> accuracy of one entry's evaluation (epoch None: the end of pre-training, or random init)."""
    return {r["seed"]: r["accuracy"] for r in rows if r["entry"] == entry and r["protocol"] == protocol
            and (r["final"] if epoch is None else r["pretrain_epoch"] == epoch)}


def cell(values: dict[int, float]) -> str:
    if not values:
        return "–"
    m, s = mean_std(list(values.values()))
    return f"{m:.2f} ± {s:.2f} ({len(values)})" if len(values) > 1 else f"{m:.2f} (1)"


def paired(a: dict[int, float], b: dict[int, float]) -> tuple[str, str]:
    """b - a over the seeds both have: 'mean ± std (n; per seed)' and the verdict for 'b beats a'."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return "–", "not measured yet"
    d = [b[s] - a[s] for s in seeds]
    m, s = mean_std(d)
    if len(d) > 1:
        text = f"{m:+.2f} ± {s:.2f} ({len(d)}; " + ", ".join(f"{x:+.2f}" for x in d) + ")"
    else:  # one seed has no spread to show
        text = f"{m:+.2f} (1)"
    if all(x > 0 for x in d):
        verdict = "holds" if m > NOISE else "holds in sign, within noise"
    elif all(x < 0 for x in d):
        verdict = "reversed" if -m > NOISE else "reversed in sign, within noise"
    else:
        verdict = "unclear (the seeds disagree)"
    if len(d) < 2:
        verdict += ", one seed"
    return text, verdict


def pools(rows: list[dict], entry: str, protocol: str) -> str:
    return next((r.get("pool") or "?" for r in rows if r["entry"] == entry and r["protocol"] == protocol), "?")


def claim(rows: list[dict]) -> list[str]:
    scratch = sorted({r["entry"] for r in rows if r["pretrain"] == "random init"})
    methods = [e for e in dict.fromkeys(r["entry"] for r in rows) if e not in scratch]
    lines = ["## SiT's claim at CPU scale: pre-train on the subset, then fine-tune on it", ""]
    if any(r["protocol"] == "finetune" for r in rows):
        lines += ["Fine-tuning (30 epochs) from each method's pre-training (at its last epoch) against the same "
                  "fine-tuning from random init with the same pooling; gain paired by seed.", "",
                  "| method | pooling | pre-trained, fine-tuned | random init, fine-tuned | gain (mean ± std (seeds; per "
                  "seed)) | verdict |", "|---|---|---|---|---|---|"]
    for e in methods if any(r["protocol"] == "finetune" for r in rows) else []:
        pool = pools(rows, e, "finetune")
        base = next((s for s in scratch if pools(rows, s, "finetune") == pool), None)
        mine = by_seed(rows, e, "finetune")
        ref = by_seed(rows, base, "finetune") if base else {}
        diff, verdict = paired(ref, mine)
        lines.append(f"| {e} | {pool} | {cell(mine)} | {cell(ref)} ({base or 'none'}) | {diff} | {verdict} |")
    for protocol in ("knn", "linear"):
        epochs = sorted({r["pretrain_epoch"] for r in rows if r["protocol"] == protocol and r["pretrain_epoch"]})
        if not epochs:
            continue
        lines += ["", f"{protocol}: each method at each pre-training epoch, and its gain over random init read "
                      "the same way (paired by seed):", "",
                  "| method | pooling | random init | " + " | ".join(f"epoch {x:g} (gain)" for x in epochs) + " |",
                  "|---" * (3 + len(epochs)) + "|"]
        for e in methods:
            pool = pools(rows, e, protocol)
            base = next((s for s in scratch if pools(rows, s, protocol) == pool), None)
            ref = by_seed(rows, base, protocol) if base else {}
            cells = []
            for x in epochs:
                mine = by_seed(rows, e, protocol, x)
                cells.append(f"{cell(mine)} ({paired(ref, mine)[0].split(' (')[0]})" if mine else "–")
            lines.append(f"| {e} | {pool} | {cell(ref)} | " + " | ".join(cells) + " |")
    return lines


def orderings(rows: list[dict], title: str = "RandSAC's serialisations at equal pre-training steps",
              only_measured: bool = False) -> list[str]:
    entries = list(dict.fromkeys(r["entry"] for r in rows))
    raster = by_seed(rows, "patch-raster", "linear")
    lines = [f"## {title}", "",
             "| serialisation | k-NN | linear | linear - raster (paired) | paper linear | paper - raster |",
             "|---|---|---|---|---|---|"]
    for e in entries:
        lin = by_seed(rows, e, "linear")
        paper = PAPER_LINEAR.get(e)
        gain = paired(raster, lin)[0] if e != "patch-raster" else "0"
        published = f"{paper} | {paper - PAPER_LINEAR['patch-raster']:+.2f}" if paper is not None else "– | –"
        lines.append(f"| {e} | {cell(by_seed(rows, e, 'knn'))} | {cell(lin)} | {gain} | {published} |")
    lines += ["", "Each published ordering (b beats a), linear probe and k-NN, paired by seed:", "",
              "| claim | a | b | paper (linear) | linear: b - a | verdict | k-NN: b - a | verdict |",
              "|---|---|---|---|---|---|---|---|"]
    for a, b, what in ORDERINGS:
        if only_measured and not (a in entries and b in entries):
            continue  # a serialisation this study does not have (repro_orderings_lr has two)
        pa, pb = PAPER_LINEAR.get(a), PAPER_LINEAR.get(b)
        paper = f"{pb - pa:+.2f}" if pa is not None and pb is not None else "better (no CIFAR number)"
        lin = paired(by_seed(rows, a, "linear"), by_seed(rows, b, "linear"))
        knn = paired(by_seed(rows, a, "knn"), by_seed(rows, b, "knn"))
        lines.append(f"| {what} | {a} | {b} | {paper} | {lin[0]} | {lin[1]} | {knn[0]} | {knn[1]} |")
    return lines


def _shown(path: Path) -> str:
    """A path as a reader can rerun it: relative to the current folder where it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--claim", type=Path, default=ROOT / "results" / "repro_claim" / "results.json")
    ap.add_argument("--orderings", type=Path, default=ROOT / "results" / "repro_orderings" / "results.json")
    ap.add_argument("--orderings-lr", type=Path, default=ROOT / "results" / "repro_orderings_lr" / "results.json",
                    help="the same orderings at RandSAC's fastest trial rate (repro_orderings_lr.yaml)")
    ap.add_argument("--out", type=Path, help="also write the Markdown here")
    args = ap.parse_args()
    shown = {k: _shown(getattr(args, k)) for k in ("claim", "orderings", "orderings_lr")}
    lines = ["# Issue 17: the published orderings at CPU scale", "",
             f"`python benchmarks/repro_summary.py --claim {shown['claim']} --orderings {shown['orderings']} "
             f"--orderings-lr {shown['orderings_lr']}`; verdicts: "
             f"'holds' when b beats a on every seed by more than {NOISE} points on average (the sampling std of a "
             "difference of two accuracies on 10,000 test images), 'within noise' when smaller.", ""]

    def at_fastest(rows: list[dict]) -> list[str]:
        return orderings(rows, "The same at RandSAC's fastest trial rate, 9.6e-3 (repro_orderings_lr)",
                         only_measured=True)

    for path, part in ((args.claim, claim), (args.orderings, orderings), (args.orderings_lr, at_fastest)):
        if path.is_file():
            lines += part(load(path)) + [""]
        else:
            lines += [f"({_shown(path)} does not exist yet)", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
