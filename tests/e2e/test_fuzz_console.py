"""A fuzzer for the staff console (issue #23): its server-rendered forms are outside the OpenAPI document,
so schemathesis (``tests/e2e/test_fuzz_api.py``) never sees them. This one finds them itself, so a page
added later is covered without a list to keep up to date:

1. One staff member per role logs in over HTTP, and from ``/admin/`` (and every registered ``/admin/`` GET
   route without a path parameter) the crawler follows every same-origin ``/admin/`` link breadth-first,
   bounded (``MAX_PAGES`` a role, ``MAX_PER_TEMPLATE`` pages of one shape: ``/admin/customers/12`` and
   ``/admin/customers/13`` are one), and collects every ``<form>``: action, method, enctype, fields
   (input, select, textarea, named buttons), hidden values and options. Forms are grouped by method and
   action shape.
2. Each POST form gets hypothesis-generated bodies (unicode, control characters, very long strings, empty
   values, numbers at and beyond int64, wrong types, missing and duplicated fields), as each role that sees
   it, with a fresh CSRF token from the page it was found on. Every answer must be < 500; the same body
   without the token must be 403; a form a viewer is not shown, posted with the viewer's session and
   token, must be 403. A GET form (a filter) gets its bodies as query strings.
3. Every registered ``/admin/`` route (read from the live app's router, so routes no link reaches are
   covered too) gets its path parameters at the bounds (0, -1, 2**63, a hundred digits, non-digits, ...)
   and fuzzed query strings, as each role and as nobody; a POST without the token is 403 there too.
4. Then: no server error in the server's log, and ``services.audit.verify`` passes.

Bounded by ``CONSOLE_FUZZ_SECONDS`` (default 40 s; every form gets ``MIN_EXAMPLES`` whatever the budget);
``FUZZ_SEED`` picks the seed (fixed by default, as for the API fuzzer). The fuzzing runs in a thread with
a blocking client, so hypothesis drives it; the in-process test server answers on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import quote, urlencode, urljoin, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings, strategies as st

from models.enums import StaffRole
from tests.staff_helpers import Clock, new_staff

pytestmark = pytest.mark.slow

FUZZ_SECONDS = float(os.environ.get("CONSOLE_FUZZ_SECONDS", "40"))
_SEED = os.environ.get("FUZZ_SEED", "20261129")
FUZZ_SEED = int(_SEED) if _SEED.isdigit() else zlib.crc32(_SEED.encode())
CRAWL_SHARE = 0.2  # of the budget, at most; of what is left the forms get FORMS_SHARE, the routes the rest
FORMS_SHARE = 0.7
MAX_PAGES = 150  # a role's crawl
MAX_PER_TEMPLATE = 2  # pages of one shape (path with its ids as {id}, and its query's keys)
MIN_EXAMPLES = 5  # every form found gets at least this many bodies, whatever the budget
MAX_EXAMPLES = 400  # and at most this many
VIEWER_EXAMPLES = 3  # bodies a viewer posts to each action form they are not shown
UA = {"user-agent": "console-fuzzer/1.0"}
ROLES = [str(r.value) for r in StaffRole]

INT_BOUNDS = [0, -1, 1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**30]
PATH_VALUES = ["0", "-1", "1", str(2**31), str(2**63 - 1), str(2**63), str(-(2**63) - 1), "9" * 100, "abc", "1.5",
               "1e3", " 1", "测试", "..", "%2e%2e%2fetc", "x" * 300, "null", "%00", "console.css"]
QUERY_KEYS = ["page", "cursor", "limit", "offset", "q", "format", "status", "sort", "order", "id", "from", "to",
              "date", "kind", "flash", "error", "role", "state", "next"]


# -- values --

def _text(max_size: int = 40) -> st.SearchStrategy[str]:
    # any character that UTF-8 can carry (no lone surrogates), control characters included
    return st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=max_size)


def _nasty(longest: int) -> st.SearchStrategy[str]:
    return st.one_of(
        _text(),
        st.sampled_from(["", " ", "\t\n", "\x00", "\u202e", "'\"<>&", "<script>x</script>", "' OR 1=1 --", "%s%n",
                         "null", "None", "true", "[]", "{}", "NaN", "inf", "-0", "1e309", "0x10", "1,000", "12.345",
                         "-0.01", "2026-13-45", "2026-02-30T25:61", "😀" * 8, "\ufeff", "\r\n\r\n", "ℌ𝔢𝔩𝔩𝔬"]),
        st.sampled_from(INT_BOUNDS).map(str),
        st.integers().map(str),
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        st.integers(200, longest).flatmap(lambda n: st.sampled_from(["A" * n, "长" * n, "9" * n, "\x00" * n])),
    )


NASTY = _nasty(5000)  # in a body
IN_QUERY = _nasty(300)  # in a URL: short enough for the request head (Sanic: 8 KiB) to reach the page


@dataclass
class Field:
    name: str
    kind: str  # input type, "select", "textarea", "button"
    values: list[str] = field(default_factory=list)  # hidden/default value, options, button values
    maxlength: int | None = None


@dataclass
class FormSeen:
    """One ``<form>`` as a role saw it on a page."""
    role: str
    page: str  # the page it was on (fetched again for a fresh token before each body)
    method: str
    action: str  # the path (and query) it posts to
    enctype: str
    fields: list[Field]

    @property
    def key(self) -> tuple[str, str]:
        return self.method, template(self.action)


SHAPES: list[tuple[re.Pattern, str]] = []  # each console route's path as a pattern, and the route (set by the test)


def template(path: str) -> str:
    """A path's shape: the route it reaches (``/admin/partners/<app_id:str>``; else its numeric segments as
    ``{id}``), and its query's keys sorted."""
    parts = urlsplit(path)
    shape = next((route for pattern, route in SHAPES if pattern.fullmatch(parts.path)), None) or re.sub(
        r"/-?\d+(?=/|$)", "/{id}", parts.path)
    keys = sorted({kv.split("=", 1)[0] for kv in parts.query.split("&") if kv})
    return shape + ("?" + "&".join(keys) if keys else "")


def field_values(f: Field, nasty: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    real = [v for v in f.values if v is not None]
    choices = [nasty]
    if real:  # the page's own values (hidden ids, options, button values) reach deeper code: often
        choices = [st.sampled_from(real)] * 3 + choices
    if f.maxlength:
        choices.append(st.sampled_from(["x" * f.maxlength, "x" * (f.maxlength + 1), "长" * (f.maxlength + 1)]))
    return st.one_of(*choices)


def bodies(fields: list[Field], nasty: st.SearchStrategy[str] = NASTY) -> st.SearchStrategy[list[tuple[str, str]]]:
    """A form body (pairs, in order, duplicates allowed) from a form's fields, without its CSRF token: each
    field missing, once or several times; sometimes an unknown field too."""
    per_field = [st.lists(field_values(f, nasty), min_size=0, max_size=3).map(lambda vs, n=f.name: [(n, v) for v in vs])
                 | st.just([(f.name, f.values[0] if f.values else "")])
                 for f in fields if f.name != "csrf_token"]
    extra = st.lists(st.tuples(st.sampled_from(["x", "id", "amount", "reason", "csrf_token", ""]) | _text(8), nasty),
                     max_size=2)
    return st.tuples(st.tuples(*per_field) if per_field else st.just(()), extra, st.booleans()).map(
        lambda t: [pair for group in t[0] for pair in group] + t[1] if not t[2] else
        [pair for group in t[0] for pair in group][::-1] + t[1])


def edges(fields: list[Field], *, long: int) -> list[list[tuple[str, str]]]:
    """The bodies every form gets first: the page's own values; every field one past its ``maxlength``
    (or ``long`` characters); every field empty; no field at all."""
    named = [f for f in fields if f.name != "csrf_token"]
    return [[(f.name, f.values[0] if f.values else "") for f in named],
            [(f.name, "长" * ((f.maxlength or long) + 1)) for f in named],
            [(f.name, "") for f in named],
            []]


# -- the crawl --

class PageParser(HTMLParser):
    """Links and forms of one page (the standard library's parser: no new dependency)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._select: Field | None = None
        self._textarea: Field | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        elif tag == "form":
            self._form = {"action": a.get("action", ""), "method": (a.get("method") or "get").upper(),
                          "enctype": a.get("enctype", ""), "fields": {}}
            self.forms.append(self._form)
        elif self._form is None or not a.get("name"):
            return
        elif tag == "input":
            kind = a.get("type", "text").lower()
            f = self._field(a["name"], kind, a)
            if kind in ("checkbox", "radio", "submit", "hidden") or a.get("value"):
                f.values.append(a.get("value", "on" if kind in ("checkbox", "radio") else ""))
        elif tag == "button":
            self._field(a["name"], "button", a).values.append(a.get("value", ""))
        elif tag == "select":
            self._select = self._field(a["name"], "select", a)
        elif tag == "option" and self._select is not None:
            self._select.values.append(a.get("value", ""))
        elif tag == "textarea":
            self._textarea = self._field(a["name"], "textarea", a)

    def _field(self, name: str, kind: str, a: dict) -> Field:
        fields = self._form["fields"]
        if name not in fields:
            maxlength = int(a["maxlength"]) if a.get("maxlength", "").isdigit() else None
            fields[name] = Field(name, kind, maxlength=maxlength)
        return fields[name]

    def handle_data(self, data: str) -> None:
        if self._textarea is not None and data.strip():
            self._textarea.values.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def same_origin_admin(base: str, href: str, origin: str) -> str | None:
    """``href`` as a path (with query) when it is a console page of this server, else None."""
    url = urljoin(base, href.split("#", 1)[0])
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or f"{parts.scheme}://{parts.netloc}" != origin:
        return None
    if not (parts.path == "/admin" or parts.path.startswith("/admin/")):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def parse(resp: httpx.Response) -> PageParser | None:
    if "text/html" not in resp.headers.get("content-type", ""):
        return None
    parser = PageParser()
    parser.feed(resp.text)
    return parser


def forms_on(role: str, page: str, parser: PageParser, origin: str) -> list[FormSeen]:
    found = []
    for f in parser.forms:
        action = same_origin_admin(origin + page, f["action"] or page, origin)
        if action is not None:
            found.append(FormSeen(role, page, f["method"], action, f["enctype"], list(f["fields"].values())))
    return found


# -- the routes --

@dataclass
class Route:
    path: str  # with Sanic's <name:type> parameters
    methods: frozenset[str]
    params: list[tuple[str, re.Pattern]]


def console_routes(app) -> list[Route]:
    """Every route registered under ``/admin/`` in the live app (the in-process test server's router)."""
    found = []
    for r in app.router.routes:
        path = "/" + r.path.lstrip("/")
        if path == "/admin" or path.startswith("/admin/"):
            found.append(Route(path, frozenset(r.methods) - {"HEAD", "OPTIONS"},
                               [(p.name, p.pattern) for p in r.params.values()]))
    return sorted(found, key=lambda r: r.path)


def fill(route: Route, values: dict[str, str]) -> str:
    path = route.path
    for name, _ in route.params:
        path = re.sub(rf"<{name}(:[^>]*)?>", quote(values[name], safe=""), path)
    return path


# -- the run --

@dataclass
class Tally:
    requests: int = 0
    accepted: int = 0  # POSTs with the token a member's form got done (each checked for its audit event)
    problems: list[str] = field(default_factory=list)
    examples: dict = field(default_factory=dict)  # form key -> bodies sent with the token

    def bad(self, what: str, resp: httpx.Response, sent=None) -> None:
        if len(self.problems) < 200:
            self.problems.append(f"{what}: {resp.status_code} {resp.request.method} {resp.request.url} "
                                 f"{str(sent)[:300] if sent is not None else ''} -> {resp.text[:300]!r}")


class Console:
    """One blocking client per role, logged in, logging in again when its session has ended."""

    def __init__(self, url: str, staff: dict, clock: Clock, tally: Tally, audit_seq=None) -> None:
        self.url, self.staff, self.clock, self.tally = url, staff, clock, tally
        # (actor) -> the newest audit seq with that actor (read on the server's loop): an accepted action
        # must have moved it
        self.audit_seq = audit_seq
        self.clients = {role: httpx.Client(base_url=url, timeout=30, trust_env=False, headers=UA,
                                           follow_redirects=False) for role in [*staff, "nobody"]}
        self.logins = 0

    def close(self) -> None:
        for c in self.clients.values():
            c.close()

    def send(self, role: str, method: str, path: str, **kw) -> httpx.Response:
        self.tally.requests += 1
        return self.clients[role].request(method, path, **kw)

    def log_in(self, role: str) -> None:
        creds = self.staff[role]
        self.clock.move(seconds=31)  # a TOTP code is accepted once: the next step's
        form = self.send(role, "GET", "/admin/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        resp = self.send(role, "POST", "/admin/login", data={
            "csrf_token": token, "username": creds.username, "password": creds.password,
            "totp": creds.code(self.clock.now)})
        assert resp.status_code == 303 and resp.headers["location"] == "/admin/", resp.text[:500]
        self.logins += 1

    def get_page(self, role: str, path: str) -> httpx.Response:
        """``path`` as ``role``, logging in again once when the session had ended."""
        resp = self.send(role, "GET", path)
        if role != "nobody" and resp.status_code == 303 and resp.headers.get("location") == "/admin/login":
            self.log_in(role)
            resp = self.send(role, "GET", path)
        return resp

    def crawl(self, role: str, seeds: list[str], deadline: float) -> tuple[list[FormSeen], set[str], bool]:
        origin = self.url
        queue, seen, per_template, pages, forms = deque(seeds), set(), {}, set(), []
        while queue and len(pages) < MAX_PAGES and time.monotonic() < deadline:
            path = queue.popleft()
            if path in seen or per_template.get(template(path), 0) >= MAX_PER_TEMPLATE:
                continue
            seen.add(path)
            per_template[template(path)] = per_template.get(template(path), 0) + 1
            resp = self.get_page(role, path)
            if resp.status_code >= 500:
                self.tally.bad(f"crawl as {role}", resp)
            pages.add(path)
            parser = parse(resp)
            if parser is None:
                continue
            forms += forms_on(role, path, parser, origin)
            for href in parser.links:
                target = same_origin_admin(origin + path, href, origin)
                if target is not None and target not in seen:
                    queue.append(target)
        return forms, pages, bool(queue) and len(pages) >= MAX_PAGES

    def fresh(self, seen: FormSeen) -> tuple[FormSeen, str | None]:
        """The form as its page shows it now (its CSRF token and ids), or as last seen when it is gone."""
        resp = self.get_page(seen.role, seen.page)
        parser = parse(resp)
        for now in forms_on(seen.role, seen.page, parser, self.url) if parser else []:
            if now.key == seen.key:
                token = next((f.values[0] for f in now.fields if f.name == "csrf_token" and f.values), None)
                return now, token
        return seen, None


def not_a_page(resp: httpx.Response) -> bool:
    """A console answer that is neither a redirect nor a page (or a CSV export): the JSON API's error, so
    some bad input the console did not answer with its own 4xx page."""
    if 300 <= resp.status_code < 400 or resp.status_code in (413, 414, 431):  # redirects; Sanic's framing limits
        return False
    return not resp.headers.get("content-type", "").startswith(("text/html", "text/csv"))


def encode(form: FormSeen, pairs: list[tuple[str, str]]) -> dict:
    if "multipart" in form.enctype.lower():
        files = [(n, (("upload.bin", v.encode("utf-8", "replace")) if any(f.name == n and f.kind == "file"
                                                                         for f in form.fields) else (None, v)))
                 for n, v in pairs]
        return {"files": files or [("x", (None, ""))]}
    return {"content": urlencode(pairs).encode(), "headers": {"content-type": "application/x-www-form-urlencoded"}}


def fuzz_forms(console: Console, groups: dict, viewer_sees: set, tally: Tally, budget: float) -> None:
    began, keys = time.monotonic(), sorted(groups)
    for n, key in enumerate(keys):
        seen_by = groups[key]
        method, _ = key
        share = (budget - (time.monotonic() - began)) / (len(keys) - n)
        until = time.monotonic() + max(share, 0)
        count = [0]
        viewer_bodies: list = []
        fields = {f.name: f for s in seen_by for f in s.fields}  # every variant's fields

        @seed(FUZZ_SEED + zlib.crc32(repr(key).encode()))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, phases=(Phase.generate,),
                  suppress_health_check=list(HealthCheck))
        @given(body=bodies(list(fields.values()), NASTY if method == "POST" else IN_QUERY))
        def one(body):
            if count[0] >= MIN_EXAMPLES and time.monotonic() > until:
                return
            send(body)

        def send(body):
            seen = seen_by[count[0] % len(seen_by)]  # each role that sees it, in turn
            count[0] += 1
            if method != "POST":
                resp = console.send(seen.role, "GET", urlsplit(seen.action).path, params=body)
                if resp.status_code >= 500 or not_a_page(resp):
                    tally.bad(f"GET form as {seen.role}", resp, body)
                return
            now, token = console.fresh(seen)
            bare = [(k, v) for k, v in body if k != "csrf_token"]
            resp = console.send(now.role, "POST", now.action, **encode(now, bare))
            if resp.status_code != 403 or not_a_page(resp):
                tally.bad(f"POST without the CSRF token as {now.role}", resp, bare)
            sent = [("csrf_token", token or "")] + body
            actor = f"staff:{console.staff[now.role].id}" if now.role in console.staff else None
            before = console.audit_seq(actor) if actor and console.audit_seq else None
            resp = console.send(now.role, "POST", now.action, **encode(now, sent))
            if resp.status_code >= 500 or not_a_page(resp):
                tally.bad(f"POST as {now.role}", resp, sent)
            elif resp.status_code < 400 and actor and console.audit_seq:
                # every action a member's form got done is in the audit chain under the member's id
                tally.accepted += 1
                if console.audit_seq(actor) == before:
                    tally.bad(f"an accepted POST as {now.role} left no audit event of {actor}", resp, sent)
            if len(viewer_bodies) < VIEWER_EXAMPLES:
                viewer_bodies.append(body)

        for body in edges(list(fields.values()), long=5000 if method == "POST" else 300):
            send(body)
        one()
        tally.examples[key] = count[0]
        # an action form a viewer is not shown: their session, with their own token, is refused
        if method == "POST" and key not in viewer_sees and "viewer" in console.staff:
            real = [(f.name, f.values[0] if f.values else "") for f in seen_by[0].fields if f.name != "csrf_token"]
            token = re.search(r'name="csrf_token" value="([^"]+)"', console.get_page("viewer", "/admin/").text)
            for body in [real, *viewer_bodies]:
                sent = [("csrf_token", token.group(1) if token else "")] + body
                resp = console.send("viewer", "POST", seen_by[0].action, **encode(seen_by[0], sent))
                if resp.status_code != 403:
                    tally.bad("an action form a viewer is not shown, as the viewer", resp, sent)


def fuzz_routes(console: Console, routes: list[Route], known: set[str], tally: Tally, budget: float) -> int:
    """Each route's path parameters at the bounds, as each role and nobody; then fuzzed query strings."""
    began, covered = time.monotonic(), 0
    roles = [*console.staff, "nobody"]
    for n, route in enumerate(routes):
        until = time.monotonic() + max((budget - (time.monotonic() - began)) / (len(routes) - n), 0)
        covered += 1
        real = {name: "1" for name, _ in route.params}  # what the crawl saw there, for the other parameters
        shape = re.sub(r"<(\w+)(:[^>]*)?>", r"(?P<\1>[^/]+)", route.path)
        for path in sorted(known):
            if route.params and (m := re.fullmatch(shape, urlsplit(path).path)):
                real = m.groupdict()
                break
        cases = [dict(real, **{name: v}) for name, _ in route.params for v in PATH_VALUES] or [{}]
        for i, values in enumerate(cases):
            path = fill(route, values)
            role = roles[i % len(roles)]
            for method in sorted(route.methods):
                if method == "GET":
                    resp = console.get_page(role, path)
                    if resp.status_code >= 500:
                        tally.bad(f"route as {role}", resp)
                    continue
                source = "/admin/login" if route.path == "/admin/login" else "/admin/"
                token = re.search(r'name="csrf_token" value="([^"]+)"', console.get_page(role, source).text)
                bare = console.send(role, method, path, data={"x": "1"})
                plain = all(pat.match(values[name]) and re.fullmatch(r"[0-9A-Za-z._-]+", values[name])
                            and set(values[name]) != {"."} for name, pat in route.params)
                if bare.status_code >= 500 or (role != "nobody" and plain and bare.status_code != 403) or (
                        role == "nobody" and bare.status_code not in (303, 403, 404, 405)):
                    tally.bad(f"route {method} without the CSRF token as {role}", bare)
                if route.path != "/admin/logout":  # a session that ends is the logout's own fuzzing
                    resp = console.send(role, method, path,
                                        data={"csrf_token": token.group(1) if token else "", "x": "1"})
                    if resp.status_code >= 500:
                        tally.bad(f"route {method} as {role}", resp)
        if "GET" not in route.methods:
            continue
        count = [0]
        target = fill(route, real)

        @seed(FUZZ_SEED + zlib.crc32(route.path.encode()))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, phases=(Phase.generate,),
                  suppress_health_check=list(HealthCheck))
        @given(query=st.lists(st.tuples(st.sampled_from(QUERY_KEYS) | _text(8), IN_QUERY), max_size=4))
        def one(query):
            if count[0] >= MIN_EXAMPLES and time.monotonic() > until:
                return
            role = roles[count[0] % len(roles)]
            count[0] += 1
            resp = console.get_page(role, target + "?" + urlencode(query))
            if resp.status_code >= 500:
                tally.bad(f"query string as {role}", resp, query)

        one()
    return covered


class ErrorRecords(logging.Handler):
    """Every ERROR (or traceback) the in-process server logs while the fuzzer runs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.levelno >= logging.ERROR or record.exc_info or "Traceback" in text:
            self.found.append(f"{record.name} {record.levelname}: {text[:500]} "
                              f"{getattr(record, 'route', '')} {record.exc_info[1]!r}" if record.exc_info else
                              f"{record.name} {record.levelname}: {text[:500]}")


def probes(routes: list[Route], ids: list[int]) -> list[str]:
    """Pages behind an id no link may reach (an empty list shows none): each GET route whose parameters are
    all ids, at ``ids``."""
    found = []
    for r in routes:
        if "GET" in r.methods and r.params and all(pat.match("1") for _, pat in r.params):
            found += [fill(r, {name: str(i) for name, _ in r.params}) for i in ids]
    return found


async def test_fuzz_every_console_form_and_route_as_every_role(server, ctx, client, sandbox, clock):
    from models.audit import AuditEvent
    from models.risk import RiskListEntry, RiskRuleSet
    from services import audit
    from tests.account_helpers import open_account
    from tests.helpers import rules_in_force

    began = time.monotonic()
    # what the risk pages may change, for the tests after this one (the suite's one database)
    newest_rules = await RiskRuleSet.all().order_by("-version").first()
    newest_entry = await RiskListEntry.all().order_by("-id").first()
    # something for the pages to show: an open, funded account (its page has the account's forms)
    _, _, account = await open_account(client, sandbox, card_balance_fen=10_000)
    staff = {role: await new_staff(ctx, role) for role in ROLES}
    tally = Tally()
    records = ErrorRecords()
    loggers = [logging.getLogger(n) for n in ("", "sanic.root", "sanic.error", "sanic.server", "app.errors")]
    for lg in loggers:
        lg.addHandler(records)
    routes = console_routes(server.app)
    # fixed segments first: /admin/proposals/new is not /admin/proposals/<proposal_id:int>
    SHAPES[:] = sorted(((re.compile(re.sub(r"<(\w+)(:[^>]*)?>", "[^/]+", re.escape(r.path).replace(r"\<", "<")
                                           .replace(r"\>", ">").replace(r"\:", ":"))), r.path) for r in routes),
                       key=lambda shape: shape[1].count("<"))
    assert any(r.path == "/admin/login" for r in routes), [r.path for r in routes]

    loop = asyncio.get_running_loop()

    async def newest_seq(actor: str) -> int:
        row = await AuditEvent.filter(actor=actor).order_by("-seq").first()
        return row.seq if row else 0

    def audit_seq(actor: str) -> int:
        return asyncio.run_coroutine_threadsafe(newest_seq(actor), loop).result(timeout=30)

    def run() -> dict:
        console = Console(server.url, staff, clock, tally, audit_seq)
        try:
            for role in staff:
                console.log_in(role)
            seeds = (["/admin/"] + [r.path for r in routes if "GET" in r.methods and not r.params]
                     + probes(routes, [account["id"], 1, 2]))
            groups: dict = {}
            viewer_sees: set = set()
            phases: dict[str, float] = {}
            pages: set[str] = set()
            crawl_began = time.monotonic()
            crawl_until = crawl_began + FUZZ_SECONDS * CRAWL_SHARE
            truncated = []
            for n, role in enumerate(staff):  # the crawl's time shared by the roles
                role_until = time.monotonic() + (crawl_until - time.monotonic()) / (len(staff) - n)
                forms, seen, cut = console.crawl(role, seeds, role_until)
                pages |= seen
                truncated += [role] if cut else []
                for f in forms:
                    groups.setdefault(f.key, [])
                    if all(s.role != f.role for s in groups[f.key]):  # a role's first sight of it
                        groups[f.key].append(f)
                    if role == "viewer":
                        viewer_sees.add(f.key)
            fuzz_started = time.monotonic()
            left = FUZZ_SECONDS - (fuzz_started - crawl_began)
            fuzz_forms(console, groups, viewer_sees, tally, left * FORMS_SHARE)
            routes_started = time.monotonic()
            covered = fuzz_routes(console, routes, pages, tally, max(1.0, left - (routes_started - fuzz_started)))
            phases["crawl"], phases["forms"] = fuzz_started - crawl_began, routes_started - fuzz_started
            phases["routes"] = time.monotonic() - routes_started
            return {"groups": groups, "pages": pages, "covered": covered, "truncated": truncated, "phases": phases,
                    "logins": console.logins}
        finally:
            console.close()

    try:
        done = await asyncio.to_thread(run)
    finally:
        for lg in loggers:
            lg.removeHandler(records)
        # the tests after this one start as every test does: an empty rule set in force, no list entry of ours
        now_rules = await RiskRuleSet.all().order_by("-version").first()
        if (now_rules and now_rules.version) != (newest_rules and newest_rules.version):
            await rules_in_force([])
        await RiskListEntry.filter(id__gt=newest_entry.id if newest_entry else 0).delete()
    groups = done["groups"]
    print(f"\nconsole fuzz: {len(done['pages'])} page(s) crawled, {len(groups)} form(s) "
          f"({sum(k[0] == 'POST' for k in groups)} POST), {done['covered']} of {len(routes)} route(s), "
          f"{tally.requests} request(s) ({tally.accepted} accepted action(s), each audited), {done['logins']} login(s), {time.monotonic() - began:.0f} s ("
          + ", ".join(f"{k} {v:.0f} s" for k, v in done["phases"].items()) + ")"
          + (f"; crawl cut short for {done['truncated']}" if done["truncated"] else ""))
    for key in sorted(groups):
        print(f"  {key[0]} {key[1]}: {tally.examples.get(key, 0)} bodies, seen by "
              f"{', '.join(s.role for s in groups[key])}")
    assert not tally.problems, f"{len(tally.problems)} bad answer(s):\n" + "\n".join(tally.problems[:40])
    assert not records.found, "server errors:\n" + "\n".join(records.found[:20])
    assert tally.accepted > 0, "no member's action was accepted: the audit check saw nothing"
    # what exists today at least: the login and logout forms; and every form found got its bodies
    assert {("POST", "/admin/login"), ("POST", "/admin/logout")} <= set(groups), sorted(groups)
    assert all(tally.examples.get(key, 0) >= MIN_EXAMPLES for key in groups), tally.examples
    assert done["covered"] == len(routes)
    report = await audit.verify()
    assert report.ok, report
