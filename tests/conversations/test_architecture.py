"""apps/conversations owns the Conversation aggregate: no other app locks a conversation row or
writes its summary (counts, totals, thumbs, risk, judge minimum, flags, activity).

A static scan of apps/ (everything but apps/conversations and migrations), by AST:

1. `select_for_update` on a Conversation queryset: rooted at Conversation (or a proxy), at a
   related manager (`chatbot.conversations`), or at a variable assigned from one; or on
   another model's queryset that joins the conversation (`select_related("conversation")`
   without `of=`, or `of=("conversation",)`), which PostgreSQL locks too.
2. `update()` / `bulk_update()` / `create()`-like calls on a Conversation queryset naming a
   summary field, directly, through a `**dict` built in the same function, or through
   arguments the scan cannot read (those count as writes: be explicit or move the code).
3. `Conversation(...)` built with a summary field.
4. An assignment to `<conversation>.<summary field>` (a name containing "conversation", or
   `x.conversation`), and `<conversation>.save()` without a literal update_fields free of
   summary fields (a full save writes an in-memory summary over concurrent increments).
5. Raw SQL updating the conversation table, or use of `Conversation._meta.db_table`.

The scan is a guard against the easy mistake, not a proof: a conversation held in a variable
called `c` escapes rule 4. The checker is tested on snippets below so it cannot silently go
blind.
"""

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.conversations.models import Conversation
from apps.conversations.services import CONVERSATION_SUMMARY_FIELDS

APPS = Path(__file__).resolve().parents[2] / "apps"
OWNER = APPS / "conversations"
WRITE_METHODS = {"update", "bulk_update", "create", "bulk_create", "get_or_create", "update_or_create"}
RAW_SQL_UPDATE = re.compile(r"update\s+\"?" + re.escape(Conversation._meta.db_table), re.IGNORECASE)


def _model_names() -> set[str]:
    from django.apps import apps

    return {m.__name__ for m in apps.get_models(include_auto_created=False) if issubclass(m, Conversation)}


def _related_managers() -> set[str]:
    return {
        f.remote_field.related_name
        for f in Conversation._meta.get_fields()
        if f.is_relation and f.many_to_one and getattr(f.remote_field, "related_name", None)
    }


def _chain(node: ast.AST) -> tuple[ast.AST, list[str], list[ast.Call]]:
    """For `a.b(…).c(…)`: the root node, the attribute names (outermost last) and the calls."""
    attributes: list[str] = []
    calls: list[ast.Call] = []
    while True:
        if isinstance(node, ast.Call):
            calls.append(node)
            node = node.func
        elif isinstance(node, ast.Attribute):
            attributes.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            return node, attributes[::-1], calls[::-1]


def _method(call: ast.Call) -> str | None:
    return call.func.attr if isinstance(call.func, ast.Attribute) else None


def _strings(node: ast.AST | None) -> set[str] | None:
    """The string constants of a literal list/tuple/set, or None when it is not one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.List | ast.Tuple | ast.Set) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
    ):
        return {e.value for e in node.elts}  # type: ignore[attr-defined]
    return None


def _is_conversation_like(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return "conversation" in node.id.lower()
    return isinstance(node, ast.Attribute) and node.attr == "conversation"


class _Scanner:
    def __init__(self, source: str, path: str) -> None:
        self.tree = ast.parse(source)
        self.path = path
        self.models = _model_names()
        self.managers = _related_managers()
        self.summary = CONVERSATION_SUMMARY_FIELDS
        self.problems: list[str] = []
        self.querysets = self._conversation_variables()
        self.parents = {child: parent for parent in ast.walk(self.tree) for child in ast.iter_child_nodes(parent)}

    def _rooted_at_conversation(self, node: ast.AST, known: set[str] | None = None) -> bool:
        root, attributes, _ = _chain(node)
        known = self.querysets if known is None else known
        if isinstance(root, ast.Name) and (root.id in self.models or root.id in known):
            return True
        return any(a in self.managers for a in attributes)

    def _conversation_variables(self) -> set[str]:
        """Names assigned (anywhere in the module) from a Conversation queryset."""
        found: set[str] = set()
        for _ in range(3):  # a few rounds resolve `a = Conversation.objects…; b = a.filter(…)`
            for node in ast.walk(self.tree):
                if (isinstance(node, ast.Assign) and len(node.targets) == 1
                        and isinstance(node.targets[0], ast.Name) and self._rooted_at_conversation(node.value, found)):
                    found.add(node.targets[0].id)
        return found

    def report(self, node: ast.AST, what: str) -> None:
        self.problems.append(f"{self.path}:{getattr(node, 'lineno', '?')}: {what}")

    def _function_of(self, node: ast.AST) -> ast.AST:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                return node
        return self.tree

    def _dict_keys(self, name: str, scope: ast.AST) -> set[str] | None:
        """Keys of a dict variable built in `scope` from literals; None if any key is not known."""
        keys: set[str] = set()
        assigned = False
        for node in ast.walk(scope):
            target, value = None, None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign):
                target, value = node.target, node.value
            if isinstance(target, ast.Name) and target.id == name:
                if not isinstance(value, ast.Dict) or any(k is None or _strings(k) is None for k in value.keys):
                    return None
                assigned = True
                keys |= {k.value for k in value.keys}  # type: ignore[union-attr]
            elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and target.value.id == name:
                key = _strings(target.slice)
                if key is None:
                    return None
                keys |= key
        return keys if assigned else None

    def _written_fields(self, call: ast.Call) -> set[str] | None:
        """Fields a write call names; None when the scan cannot tell."""
        method = _method(call)
        fields: set[str] = set()
        if method == "bulk_update":
            named = _strings(call.args[1]) if len(call.args) > 1 else next(
                (_strings(k.value) for k in call.keywords if k.arg == "fields"), None)
            return named
        for keyword in call.keywords:
            if keyword.arg is None:
                if not isinstance(keyword.value, ast.Name):
                    return None
                keys = self._dict_keys(keyword.value.id, self._function_of(call))
                if keys is None:
                    return None
                fields |= keys
            elif keyword.arg in ("defaults", "create_defaults"):
                if not isinstance(keyword.value, ast.Dict):
                    return None
                fields |= {k.value for k in keyword.value.keys if isinstance(k, ast.Constant)}
            else:
                fields.add(keyword.arg.split("__")[0])
        return fields

    def scan(self) -> list[str]:
        seen: set[int] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                self._call(node, seen)
            elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for element in target.elts if isinstance(target, ast.Tuple) else [target]:
                        if (isinstance(element, ast.Attribute) and element.attr in self.summary
                                and _is_conversation_like(element.value)):
                            self.report(node, f"assigns the conversation summary field {element.attr!r}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and RAW_SQL_UPDATE.search(node.value):
                self.report(node, "raw SQL updating the conversation table")
            elif (isinstance(node, ast.Attribute) and node.attr == "db_table" and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "_meta" and isinstance(node.value.value, ast.Name)
                    and node.value.value.id in self.models):
                self.report(node, "reads Conversation._meta.db_table (raw SQL on conversations)")
        return self.problems

    def _call(self, call: ast.Call, seen: set[int]) -> None:
        method = _method(call)
        func = call.func
        if isinstance(func, ast.Name) and func.id in self.models:
            named = {k.arg for k in call.keywords if k.arg} & self.summary
            if named or any(k.arg is None for k in call.keywords):
                self.report(call, f"builds a Conversation with summary fields {sorted(named) or '(**kwargs)'}")
            return
        if isinstance(func, ast.Name) and func.id == "setattr" and call.args and _is_conversation_like(call.args[0]):
            self.report(call, "setattr on a conversation")
            return
        if method is None:
            return
        receiver = func.value  # type: ignore[attr-defined]
        if method == "save" and _is_conversation_like(receiver):
            update_fields = next((k.value for k in call.keywords if k.arg == "update_fields"), None)
            named = _strings(update_fields)
            if named is None or named & self.summary:
                self.report(call, f"saves a conversation with update_fields={sorted(named) if named else 'all/unknown'}")
            return
        if method == "select_for_update" and id(call) not in seen:
            seen.add(id(call))
            outer: ast.AST = call
            while (self.parents.get(outer) is not None and isinstance(self.parents[outer], ast.Attribute | ast.Call)
                   and _chain(self.parents[outer])[0] is _chain(call)[0]):
                outer = self.parents[outer]
            _, _, calls = _chain(outer)
            of = next((k.value for k in call.keywords if k.arg == "of"), None)
            of_names = _strings(of) if of is not None else None
            joins_conversation = any(
                _method(c) == "select_related" and any(
                    isinstance(a, ast.Constant) and str(a.value).split("__")[0] == "conversation" for a in c.args)
                for c in calls
            )
            if self._rooted_at_conversation(call):
                self.report(call, "select_for_update on Conversation")
            elif of_names is not None and any(n.split("__")[0] == "conversation" for n in of_names):
                self.report(call, "select_for_update(of=…conversation) locks the conversation")
            elif joins_conversation and of is None:
                self.report(call, "select_for_update with select_related('conversation') locks the conversation")
            return
        if method in WRITE_METHODS and self._rooted_at_conversation(receiver):
            fields = self._written_fields(call)
            if fields is None:
                self.report(call, f"{method}() on Conversation with fields the scan cannot read")
            elif fields & self.summary:
                self.report(call, f"{method}() on Conversation writes summary fields {sorted(fields & self.summary)}")


def violations(source: str, path: str = "<snippet>") -> list[str]:
    return _Scanner(source, path).scan()


def _app_sources() -> Iterator[Path]:
    for path in sorted(APPS.rglob("*.py")):
        if OWNER in path.parents or "migrations" in path.parts:
            continue
        yield path


def test_summary_fields_are_conversation_fields():
    names = {f.name for f in Conversation._meta.get_fields()}
    assert names >= CONVERSATION_SUMMARY_FIELDS


def test_only_apps_conversations_locks_a_conversation_or_writes_its_summary():
    problems = [
        problem
        for path in _app_sources()
        for problem in violations(path.read_text(), str(path.relative_to(APPS.parent)))
    ]
    assert not problems, (
        "Lock conversations and change their summary through apps/conversations/services.py:\n"
        + "\n".join(problems)
    )


BAD = {
    "lock": "Conversation.objects.select_for_update().get(pk=1)",
    "lock after filter": "Conversation.objects.filter(pk=1).select_for_update().first()",
    "lock through a variable": "rows = Conversation.objects.filter(chatbot=c)\nrows.select_for_update().first()",
    "lock through the related manager": "chatbot.conversations.select_for_update().all()",
    "lock a proxy": "FlaggedConversation.objects.select_for_update().get(pk=1)",
    "lock by join": "Turn.objects.select_related('conversation').select_for_update().get(pk=1)",
    "lock by join, sfu first": "Turn.objects.select_for_update().select_related('conversation').get(pk=1)",
    "lock by of": "Turn.objects.select_for_update(of=('self', 'conversation')).get(pk=1)",
    "update a counter": "Conversation.objects.filter(pk=1).update(thumbs_up=F('thumbs_up') + 1)",
    "update through a dict": "def f():\n    changes = {}\n    changes['thumbs_down'] = 1\n"
                             "    Conversation.objects.filter(pk=1).update(**changes)",
    "update through an unknown dict": "def f(changes):\n    Conversation.objects.filter(pk=1).update(**changes)",
    "bulk_update": "Conversation.objects.bulk_update(rows, ['turn_count'])",
    "bulk_update, fields unknown": "Conversation.objects.bulk_update(rows, fields)",
    "build with a counter": "Conversation(chatbot=c, external_id='x', turn_count=3)",
    "assign": "conversation.turn_count += 1",
    "assign through a turn": "turn.conversation.flag_reasons = []",
    "save a summary field": "conversation.save(update_fields=['is_flagged'])",
    "full save": "conversation.save()",
    "raw SQL": "cursor.execute('UPDATE \"conversations_conversation\" SET turn_count = 0')",
    "db_table": "table = Conversation._meta.db_table",
}
GOOD = {
    "read": "Conversation.objects.filter(is_flagged=True).values_list('pk', flat=True)",
    "review fields": "def f():\n    updates = {'review_status': 's'}\n    updates['assignee_id'] = 1\n"
                     "    Conversation.objects.filter(pk=1).update(**updates)",
    "lock a turn": "Turn.objects.select_for_update(of=('self',)).select_related('chatbot').get(pk=1)",
    "lock a turn, join only for reading": "Turn.objects.select_related('conversation').select_for_update(of=('self',))",
    "another model's counter": "run.turn_count = 3\nturn.thumbs_up += 1",
    "save review fields": "conversation.save(update_fields=['review_note'])",
}


@pytest.mark.parametrize("source", BAD.values(), ids=BAD.keys())
def test_the_scan_catches(source):
    assert violations(source)


@pytest.mark.parametrize("source", GOOD.values(), ids=GOOD.keys())
def test_the_scan_lets_through(source):
    assert violations(source) == []
