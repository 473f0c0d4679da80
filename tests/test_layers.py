"""The package layering (tools/import_graph.py): training and evaluation never import each other,
config never imports a method, a method imports only the layers below it and never another method."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_tool():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_no_import_breaks_the_layers():
    tool = load_tool()
    edges = tool.graph()
    assert ("training", "evaluation") not in edges and ("evaluation", "training") not in edges
    assert not [e for e in edges if e[0] == "config" and e[1].startswith("methods")]
    assert {e: tool.violation(*e) for e in edges if tool.violation(*e)} == {}


def test_the_checker_sees_a_broken_edge():
    tool = load_tool()
    assert tool.violation("training", "evaluation") == "training may not import evaluation"
    assert tool.violation("methods.sit", "methods.mae") == "a method imports another method"
    assert tool.violation("methods.sit", "methods.common") is None
    assert tool.violation("config", "methods") == "config may not import methods"


def test_only_the_methods_name_a_method():
    """Outside vitssl/methods/, the only line naming a method is the default method of a config."""
    named = load_tool().sizes()["method_names_outside_methods"]
    lines = [(ROOT / f).read_text().splitlines()[int(n) - 1] for f, n in (w.split(":") for w in named)]
    assert [w.split(":")[0] for w in named] == ["vitssl/config/load.py"], named
    assert lines[0].startswith("DEFAULT_METHOD = "), lines
