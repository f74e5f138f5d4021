"""One serializer per resource (docs/design.md, "Answers"): the response model an operation documents
(``handlers.spec.Out``) is the one that builds its answer. A service holds no ``public_*`` dict
builder beside it, and a handler of an operation with a JSON model answers ``answer(SomeOut...)``,
never a dict of its own through Sanic's ``json``."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import textwrap
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Literal

import orjson
import pytest

import handlers
from handlers.spec import Out, answer, operation_of

ROOT = Path(__file__).resolve().parents[2]


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]


def public_builders(source: str) -> list[str]:
    return [f.name for f in _functions(ast.parse(source)) if f.name.startswith("public_")]


def test_no_service_builds_a_response_dict_of_its_own():
    found = [f"{path.relative_to(ROOT)}: {name}"
             for path in sorted((ROOT / "services").rglob("*.py"))
             for name in public_builders(path.read_text(encoding="utf-8"))]
    assert found == [], "a response is built by its handlers.spec.Out model, not by a dict builder in services"


def test_the_builder_check_sees_one():
    assert public_builders("def public_thing(x):\n    return {'id': x.id}\n") == ["public_thing"]


def _operations() -> list:
    found = []
    for info in pkgutil.walk_packages(handlers.__path__, "handlers."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            op = operation_of(value)
            if op is not None and getattr(value, "__module__", None) == module.__name__:
                found.append((module, value, op))
    return found


def _modelled(op) -> bool:
    return any(r.model is not None for r in op.responses.values())


def raw_answers(module_source: str, handler_name: str) -> list[str]:
    """The ``return`` statements of the handler (and of the module's helpers it returns through) that
    are not ``answer(...)``."""
    tree = ast.parse(module_source)
    helpers = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)}
    bad: list[str] = []

    def check(fn: ast.FunctionDef | ast.AsyncFunctionDef, seen: frozenset[str]) -> None:
        for node in ast.walk(fn):
            if not isinstance(node, ast.Return) or node.value is None:
                continue
            call = node.value
            name = call.func.id if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) else None
            if name == "answer":
                continue
            if name in helpers and name not in seen:
                check(helpers[name], seen | {name})
                continue
            bad.append(f"{fn.name}: return {ast.unparse(call)}")

    check(helpers[handler_name], frozenset({handler_name}))
    return bad


def test_every_operation_with_a_response_model_answers_through_it():
    ops = _operations()
    assert len(ops) > 40  # every handler module was found
    found = []
    for module, handler, op in ops:
        if not _modelled(op):
            continue
        found += [f"{module.__name__}.{line}"
                  for line in raw_answers(inspect.getsource(module), inspect.unwrap(handler).__name__)]
    assert found == [], "build the answer with answer(SomeOut.model_validate(obj)) or SomeOut.of(...)"


def test_the_answer_check_sees_a_raw_dict():
    source = textwrap.dedent("""
        def _helper(x):
            return json({"id": x})

        async def good(request):
            return answer(ThingOut.model_validate(thing))

        async def bad(request):
            if request:
                return _helper(1)
            return json({"id": 1})
    """)
    assert raw_answers(source, "good") == []
    assert sorted(raw_answers(source, "bad")) == ["_helper: return json({'id': x})", "bad: return json({'id': 1})"]


# -- the wire format answer() gives -------------------------------------------------------------------


class Colour(StrEnum):
    RED = "red"


class Thing(Out):
    id: int
    colour: Literal["red", "blue"]
    at: datetime
    note: str | None


class Shown:
    id = 7
    colour = Colour.RED
    at = datetime(2026, 12, 7, 8, 9, 10, 123456, tzinfo=timezone.utc)
    note = None


def test_answer_keeps_the_app_wire_format(monkeypatch):
    from sanic.response.types import BaseHTTPResponse

    monkeypatch.setattr(BaseHTTPResponse, "_dumps", orjson.dumps)  # what Sanic(dumps=orjson.dumps) in app.factory sets
    response = answer(Thing.model_validate(Shown()), status=201)
    assert response.status == 201
    assert orjson.loads(response.body) == {"id": 7, "colour": "red", "at": "2026-12-07T08:09:10.123456+00:00",
                                           "note": None}
    china = Thing.of(Shown(), at=datetime(2026, 12, 7, 16, tzinfo=timezone(timedelta(hours=8))))
    assert b'"at":"2026-12-07T16:00:00+08:00"' in answer(china).body


def test_a_field_the_object_lacks_is_an_error_at_once():
    class Partial:
        id = 1
        colour = "red"
        at = Shown.at

    with pytest.raises(AttributeError):
        Thing.of(Partial())
    assert Thing.of(Partial(), note="given").note == "given"
