"""Imports point downward: review → domain apps → conversations, audit → chatbots → core.

A module may import an app of a lower layer; the domain apps (one per product part) may also
import one another. Anything else — core reaching into an app, chatbots into clustering, a domain
app into the review layer — fails here with the file and line, so the layering is checked, not
a docstring convention.
"""

import ast
from pathlib import Path

APPS_DIR = Path(__file__).resolve().parents[2] / "apps"

LAYERS = {
    "core": 0,
    "chatbots": 1,
    "audit": 2,
    "conversations": 2,
    "risk": 3,
    "ingest": 3,
    "evaluations": 3,
    "feedback": 3,
    "clustering": 3,
    "alerts": 3,
    "privacy": 3,
    "otel": 3,
    "scores": 3,
    "datasets": 3,
    "review": 4,
}
DOMAIN = 3


def _imported_apps(path: Path) -> list[tuple[int, str]]:
    """(line, app) for every `apps.<app>` this module imports, lazily imported ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name.split(".")[1]) for name in names if name.startswith("apps.") and name.count(".")]
    return found


def _violations() -> list[str]:
    problems = []
    for path in sorted(APPS_DIR.rglob("*.py")):
        if "migrations" in path.parts or path.parent == APPS_DIR:
            continue
        app = path.relative_to(APPS_DIR).parts[0]
        if app not in LAYERS:
            problems.append(f"{path.relative_to(APPS_DIR)}: app {app!r} has no layer in LAYERS")
            continue
        for line, target in _imported_apps(path):
            if target == app:
                continue
            if target not in LAYERS:
                problems.append(f"{path.relative_to(APPS_DIR)}:{line} imports unknown app {target!r}")
            elif LAYERS[target] > LAYERS[app] or (LAYERS[target] == LAYERS[app] != DOMAIN):
                problems.append(f"apps/{path.relative_to(APPS_DIR)}:{line}: {app} (layer {LAYERS[app]}) "
                                f"imports {target} (layer {LAYERS[target]})")
    return problems


def test_every_app_has_a_layer():
    on_disk = {p.name for p in APPS_DIR.iterdir() if (p / "apps.py").exists()}
    assert on_disk == set(LAYERS)


def test_imports_point_downward():
    assert _violations() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    # The scanner itself: a core module importing the review app is reported, a chatbots
    # module importing core is not.
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "apps.py").write_text("")
    (tmp_path / "core" / "bad.py").write_text("def f():\n    from apps.review.models import X\n")
    (tmp_path / "chatbots").mkdir()
    (tmp_path / "chatbots" / "apps.py").write_text("")
    (tmp_path / "chatbots" / "good.py").write_text("from apps.core.text import ascii_int\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["APPS_DIR"]), "APPS_DIR", tmp_path)
    assert _violations() == ["apps/core/bad.py:2: core (layer 0) imports review (layer 4)"]
