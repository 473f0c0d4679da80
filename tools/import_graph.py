"""The package -> package import graph of vitssl, its layering rules, and a few size numbers.

    python tools/import_graph.py            # edges, rule violations, longest function, largest file
    python tools/import_graph.py --check    # exit 1 when a layering rule is broken

Read from the source with `ast` (every `import` and `from ... import`, at any depth, including late
imports inside functions), so nothing is imported or run. A package is the first name under
`vitssl/` (`vitssl/errors.py` is `errors`); `vitssl/methods/<name>/` counts as `methods.<name>`, so
that one method importing another shows.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "vitssl"
BASE = {"errors", "distributed", "hostmem", "machine", "__init__", "__main__"}  # modules every layer may use
# what each layer may import, besides BASE and itself; methods.<name> may import methods.common and
# methods itself (the contract and registry), never another methods.<name>
ALLOWED = {
    "models": set(),
    "data": set(),
    "config": {"models"},
    "engine": {"models", "data", "config"},
    "methods": {"models", "data", "config", "engine"},
    "training": {"models", "data", "config", "engine", "methods"},
    "evaluation": {"models", "data", "config", "engine", "methods"},
    "study": {"models", "data", "config", "engine", "methods", "training", "evaluation"},
    "cli": {"models", "data", "config", "engine", "methods", "training", "evaluation", "study"},
    "__main__": {"cli"},
    "__init__": {"methods"},  # the composition root: importing vitssl registers the built-in methods
}
# a method's name in quotes, or a parameter only some methods have
METHOD_NAMES = re.compile(r"""["'](sit|gmml|mae|randsac|dino|mocov3|mask_token|query_token|skip_weights)["']|"""
                          r"""\b(check_decoder|CLS_METHODS|MAE_RECIPE)\b""")


def package_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[0] == "methods" and len(parts) > 2:
        return f"methods.{parts[1]}"
    return parts[0]


def target_package(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "vitssl" or len(parts) < 2:
        return None
    if parts[1] == "methods" and len(parts) > 2 and parts[2] not in ("base", "registry"):
        return f"methods.{parts[2]}"
    return parts[1]


def imports(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            if node.module == "vitssl":  # `from vitssl import distributed` names a module; `__version__` is __init__'s
                out += [f"vitssl.{a.name}" if (ROOT / a.name).is_dir() or (ROOT / f"{a.name}.py").is_file()
                        else "vitssl.__init__" for a in node.names]
            elif node.module == "vitssl.methods":
                out += [f"vitssl.methods.{a.name}" for a in node.names]
    return out


def layer(pkg: str) -> str:
    return pkg.split(".")[0]


def violation(src: str, dst: str) -> str | None:
    if src == dst or dst in BASE or layer(dst) == layer(src) == "methods" and (
            dst in ("methods", "methods.common") or src == "methods"):
        return None
    if layer(src) == layer(dst) == "methods":
        return "a method imports another method"
    if layer(src) in BASE - set(ALLOWED):
        return None if dst in BASE else f"{src} is a base module and may import only base modules"
    allowed = ALLOWED.get(layer(src))
    if allowed is None:
        return f"{src} is not a known layer (add it to ALLOWED in tools/import_graph.py)"
    return None if layer(dst) in allowed else f"{layer(src)} may not import {layer(dst)}"


def graph() -> dict[tuple[str, str], int]:
    edges: Counter = Counter()
    for path in sorted(ROOT.rglob("*.py")):
        src = package_of(path)
        for mod in imports(ast.parse(path.read_text(), str(path))):
            dst = target_package(mod)
            if dst is not None and dst != src:
                edges[(src, dst)] += 1
    return dict(edges)


def sizes() -> dict:
    """Longest function, largest file, and the places outside methods/ that name a method."""
    longest, largest, named = ("", 0), ("", 0), []
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text()
        rel = str(path.relative_to(ROOT.parent))
        n = len(text.splitlines())
        largest = max(largest, (rel, n), key=lambda t: t[1])
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > longest[1]:
                    longest = (f"{rel}:{node.lineno} {node.name}", length)
        if not rel.startswith("vitssl/methods/"):
            named += [f"{rel}:{i}" for i, line in enumerate(text.splitlines(), 1) if METHOD_NAMES.search(line)]
    return {"longest_function": longest, "largest_file": largest, "method_names_outside_methods": named}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when a layering rule is broken")
    args = ap.parse_args(argv)
    edges = graph()
    bad = {e: violation(*e) for e in edges if violation(*e)}
    by_src = defaultdict(list)
    for (src, dst), n in sorted(edges.items()):
        by_src[src].append(f"{dst} ({n})" + (" !" if (src, dst) in bad else ""))
    for src, dsts in sorted(by_src.items()):
        print(f"{src} -> {', '.join(dsts)}")
    for (src, dst), why in sorted(bad.items()):
        print(f"BROKEN {src} -> {dst}: {why}")
    if not args.check:
        s = sizes()
        print(f"longest function: {s['longest_function'][0]} ({s['longest_function'][1]} lines)")
        print(f"largest file: {s['largest_file'][0]} ({s['largest_file'][1]} lines)")
        print(f"lines naming a method outside vitssl/methods/: {len(s['method_names_outside_methods'])}")
        for where in s["method_names_outside_methods"]:
            print(f"  {where}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
