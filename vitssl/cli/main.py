"""`vitssl` command line: pre-training, evaluation, export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from vitssl.errors import ConfigError, VitsslError

EXAMPLES = """examples:
  vitssl pretrain                                   # SiT on the built-in synthetic images, a few CPU minutes
  vitssl pretrain --config configs/sit_cifar10.yaml data.root=../shared/data/cifar10 train.epochs=10
  vitssl pretrain --config configs/gmml_cifar10.yaml data.root=~/my_images data.limit=2000 device=cuda
  vitssl pretrain --resume runs/sit-20261123-101500 train.epochs=200
  torchrun --nproc_per_node 4 -m vitssl pretrain --config configs/sit_224.yaml data.root=/data/imagenet
  vitssl eval knn --checkpoint runs/sit-20261123-101500
  vitssl eval linear --checkpoint runs/sit-20261123-101500 features.sweep=true
  vitssl eval knn --checkpoint random --like runs/sit-20261123-101500     # its random-init baseline, read alike
  vitssl eval fewshot --checkpoint model.safetensors data.root=~/other_dataset   # transfer
  vitssl export runs/sit-20261123-101500 --out sit_tiny.safetensors
  vitssl report runs/sit-20261123-101500 runs/randsac-20261123-120000 --out report
  vitssl study benchmarks/studies/toy.yaml --dry-run   # the plan and its estimated time; without --dry-run: run it
"""


def _int_list(value: str) -> list[int]:
    try:
        return [int(x) for x in value.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a comma-separated list of integers, e.g. 0,1") from None


def _pretrain_config(args):
    from vitssl.config import load_config

    if args.resume:
        if args.config:
            raise ConfigError("give either --config (a new run) or --resume (an existing run), not both")
        run = Path(args.resume)
        if not (run / "config.yaml").is_file():
            raise ConfigError(f"--resume {run}: no config.yaml there; give the output_dir of an earlier run")
        cfg = load_config(run / "config.yaml", args.overrides + [f"output_dir={run}"])
    else:
        cfg = load_config(args.config or "quickstart", args.overrides)
    return cfg


def cmd_pretrain(args) -> int:
    cfg = _pretrain_config(args)
    if args.print_config:
        from vitssl.config import config_to_dict

        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
        return 0
    from vitssl.training.pretrain import pretrain

    summary = pretrain(cfg, resume=bool(args.resume))
    from vitssl import distributed as dist

    if dist.rank() == 0:
        print(json.dumps(summary, indent=2))
    return 0


def cmd_methods(args) -> int:
    from vitssl.methods import registry

    for name in registry.names():
        print(f"{name:10s} {registry.get(name).summary}")
    return 0


def cmd_eval(args) -> int:
    from vitssl.config.schema import to_dict
    from vitssl.evaluation.run import eval_config, evaluate

    cfg = eval_config(args.checkpoint, args.overrides, args.config, like=args.like)
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    result = evaluate(args.protocol, cfg, resume=args.resume)
    summary = {k: result[k] for k in ("protocol", "dataset", "method", "features", "accuracy", "output_dir")
               if k in result}
    print(json.dumps(summary, indent=2))
    return 0


def cmd_export(args) -> int:
    from vitssl.evaluation.export import export_encoder

    weights, meta = export_encoder(args.checkpoint, args.out)
    print(f"wrote {weights} and {meta}")
    return 0


def cmd_report(args) -> int:
    from vitssl.evaluation.report import report

    result = report(args.runs, args.out, args.images)
    print(f"wrote {args.out}/results.md, results.json and {', '.join(result['plots']) or 'no plots'}")
    return 0


def cmd_study(args) -> int:
    from vitssl.study.runner import StagesFailed, StudyStopped, run_study
    from vitssl.study.spec import read_study

    try:
        run_study(read_study(args.study), dry_run=args.dry_run, progress=not args.quiet, keep_going=args.keep_going,
                  seeds=args.seeds, entries=args.entries, imports_from=args.imports,
                  report=args.report)
    except StudyStopped as e:
        print(f"study stopped during stage {e}; what was done is kept: `vitssl study {args.study}` continues it",
              file=sys.stderr)
        return 130
    except StagesFailed as e:
        print(f"study: {len(e.failed)} stage(s) did not run to the end (listed in results.md): "
              + "; ".join(f"{k}: {v}" for k, v in e.failed.items()), file=sys.stderr)
        return 1
    return 0


def cmd_cache(args) -> int:
    import time

    from vitssl.data import cache

    items = cache.entries()
    if args.action == "list":
        print(f"{cache.cache_dir()} (VITSSL_CACHE), cap {cache.max_bytes() / 2 ** 30 if cache.max_bytes() else 'none'} GB "
              "(VITSSL_CACHE_MAX_GB); least recently used first")
        for e in items:
            print(f"  {e.kind:8s} {e.bytes / 2 ** 20:9.1f} MB  {time.strftime('%Y-%m-%d %H:%M', time.localtime(e.used))}"
                  f"  {e.name}")
        print(f"  {len(items)} entries, {sum(e.bytes for e in items) / 2 ** 20:.1f} MB")
        return 0
    chosen = [e for e in items if not args.names or any(e.name.startswith(n) for n in args.names)]
    for e in chosen:
        cache.remove(e)
    print(f"removed {len(chosen)} of {len(items)} entries ({sum(e.bytes for e in chosen) / 2 ** 20:.1f} MB)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vitssl", description="Self-supervised pre-training of Vision Transformers.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("pretrain", help="pre-train an encoder", epilog=EXAMPLES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    pre.add_argument("--config", help="YAML file or built-in config name (default: quickstart, SiT on built-in "
                                      "synthetic images, a few CPU minutes)")
    pre.add_argument("--resume", metavar="OUTPUT_DIR", help="continue the run in OUTPUT_DIR where it stopped")
    pre.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    pre.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.epochs=10")
    pre.set_defaults(func=cmd_pretrain)
    ev = sub.add_parser("eval", help="evaluate an encoder: k-NN, linear probe, few-shot, fine-tuning", epilog=EXAMPLES,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("protocol", choices=["knn", "linear", "fewshot", "finetune"])
    ev.add_argument("--checkpoint", required=True, metavar="RUN_OR_FILE",
                    help="run folder, checkpoint .pt, exported .safetensors, timm state dict, or 'random'")
    ev.add_argument("--like", metavar="RUN", help="with --checkpoint random: a baseline of RUN's shape, on RUN's data, "
                                              "read (pooling) as RUN's method is read")
    ev.add_argument("--config", help="YAML file of evaluation settings (optional)")
    ev.add_argument("--resume", action="store_true", help="finetune: continue an interrupted fine-tuning in its "
                                                          "output folder (the same command and settings)")
    ev.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    ev.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. data.root=PATH knn.k=10 features.sweep=true")
    ev.set_defaults(func=cmd_eval)
    ex = sub.add_parser("export", help="write a pre-trained encoder as safetensors (timm keys) + JSON")
    ex.add_argument("checkpoint", metavar="RUN_OR_FILE")
    ex.add_argument("--out", required=True, help="output file (.safetensors is added if missing)")
    ex.set_defaults(func=cmd_export)
    rep = sub.add_parser("report", help="one table, plots and attention maps for several runs and their evaluations")
    rep.add_argument("runs", nargs="+", metavar="RUN")
    rep.add_argument("--out", default="report", help="output folder (default: report)")
    rep.add_argument("--images", type=int, default=6, help="images in the attention pictures")
    rep.set_defaults(func=cmd_report)
    st = sub.add_parser("study", help="pre-train entries x datasets x seeds and evaluate them: one table, plots",
                        epilog="The study file's format: python -c 'import vitssl.study.spec as s; help(s)' or the "
                               "README. Rerunning the same command skips finished stages and resumes interrupted ones.")
    st.add_argument("study", metavar="STUDY.yaml")
    st.add_argument("--dry-run", action="store_true", help="print the plan and its estimated time, run nothing")
    st.add_argument("--quiet", action="store_true", help="no per-stage progress bars (the study's own lines stay)")
    st.add_argument("--report", action="store_true", help="write results.json, results.md and the plots of what is "
                                                          "finished (and take the --import files), run nothing")
    st.add_argument("--seeds", type=_int_list, metavar="S[,S...]",
                    help="run only these seeds' stages (e.g. one process per seed side by side, each with "
                         "OMP_NUM_THREADS=1 on a small CPU); the results hold every finished stage")
    st.add_argument("--entries", type=lambda v: [x for x in v.split(",") if x], metavar="E[,E...]",
                    help="run only these entries' stages")
    st.add_argument("--import", dest="imports", type=Path, action="append", metavar="RESULTS.json",
                    help="the results.json of another copy of this study (seeds run on another machine, a study "
                         "folder that was lost): its finished stages with the same configs count as done here and "
                         "are kept in the study folder (imported.json); a pre-training only when all its evaluations "
                         "are imported. Repeatable")
    st.add_argument("--keep-going", action="store_true",
                    help="a stage that fails (e.g. a diverged training) is listed in results.md and the study goes "
                         "on without it and its evaluations (exit status 1 at the end); default: stop there")
    st.set_defaults(func=cmd_study)
    ca = sub.add_parser("cache", help="list or clear the cache of decoded datasets and features")
    ca.add_argument("action", choices=["list", "clear"])
    ca.add_argument("names", nargs="*", metavar="NAME", help="clear: only entries whose name starts with NAME")
    ca.set_defaults(func=cmd_cache)
    met = sub.add_parser("methods", help="list the pre-training methods")
    met.set_defaults(func=cmd_methods)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # key=value may also come after options
    if extra:
        if not hasattr(args, "overrides") or any("=" not in e or e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides += extra
    try:
        return args.func(args)
    except VitsslError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
