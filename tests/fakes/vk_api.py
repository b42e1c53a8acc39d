"""A fake VK API on a loopback port, strict where VK's official schema is (shared/reference/vk-api-schema).

Every request is checked against ``methods.json`` before it is answered: the method exists, the token is
one the fake knows and of a type the method accepts (``access_token_type``), the required parameters
are there, no parameter is unknown, and each value has its type and stays within its limits (minimum,
maximum, enum, maxItems; array items too). Every answer is validated against ``responses.json`` with
jsonschema before it leaves. A request that breaks a rule gets VK's error (100, 3, 27, 28, 12) AND is
recorded in :attr:`FakeVkApi.violations`; an answer the schema rejects is recorded there too and
answered with HTTP 400 so the test fails at once. Tests assert ``violations == []`` at the end.

Beyond the schema, as VK does: ``access_token`` and ``v`` are accepted on every method (``v`` must be
the schema's version); ``execute`` takes ``code`` (the schema lists no parameter for it); ``count`` is
cut to 100 where VK's description says so; ``groups.getMembers`` with ``filter=managers`` needs a
community or user token.

``execute`` understands exactly the script otklik's client writes
(agents/ingest/vk_api_rules.py, ``execute_code``)::

    return {"r0":API.wall.get({"domain":"club1","count":100}),"r1":API.<method>({<JSON object>}),...};

at most 25 calls; each inner call is checked like a direct one with the execute's token; a failing inner
call gives ``false`` and an entry in ``execute_errors``. Anything else is error 12 (and a violation).

Rate limits: a token bucket per token, VK's 3 requests per second for user and service tokens and 20 for
community tokens unless the test sets others (:attr:`FakeVkApi.rates`); over it, error 6. Faults:
:meth:`FakeVkApi.fail_request` (the Nth HTTP request) and :meth:`FakeVkApi.fail_method` (the next calls of
a method, inner calls of execute included) answer error 6, 9, 10, 29 or an HTTP 5xx; :meth:`deny` answers
15, 203 or 212 for a group; :meth:`revoke` turns a token's calls into error 5.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from aiohttp import web
from jsonschema import Draft7Validator
from referencing import Registry
from referencing.jsonschema import DRAFT7

from tests.conftest import SHARED_REFERENCE

SCHEMA_ROOT = SHARED_REFERENCE / "vk-api-schema"
COMMON_PARAMS = frozenset({"access_token", "v"})
COUNT_CAP = {"wall.get": 100, "wall.getComments": 100}  # VK's descriptions: "(maximum 100)"


# ---- the schema ---------------------------------------------------------------------------------------


def _draft7(node: Any, names: bool = False) -> Any:
    """VK's draft-03 style (``"required": true`` on each property) as draft 7 (a ``required`` list)."""
    if isinstance(node, list):
        return [_draft7(item) for item in node]
    if not isinstance(node, dict):
        return node
    if names:  # a map of names to schemas (properties, definitions)
        return {name: _draft7(value) for name, value in node.items()}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$schema" or (key == "required" and isinstance(value, bool)):
            continue
        out[key] = _draft7(value, names=key in ("properties", "definitions", "patternProperties"))
    properties = node.get("properties")
    if isinstance(properties, dict):
        required = [name for name, p in properties.items() if isinstance(p, dict) and p.get("required") is True]
        if required:
            out["required"] = sorted(set(required) | set(out.get("required") or []))
    return out


class VkSchema:
    """methods.json of every section, and validators for any ``$ref`` into the schema's files."""

    def __init__(self, root: Path = SCHEMA_ROOT) -> None:
        if not (root / "wall" / "methods.json").is_file():
            raise FileNotFoundError(f"VK's API schema is not at {root} (set OTKLIK_SHARED_REFERENCE)")
        self.root = root.resolve()
        self.methods: dict[str, dict[str, Any]] = {}
        self.method_uri: dict[str, str] = {}
        resources = []
        for path in sorted(self.root.glob("*.json")) + sorted(self.root.glob("*/*.json")):
            document = json.loads(path.read_text(encoding="utf-8"))
            uri = path.as_uri()
            if path.name == "methods.json":
                for method in document["methods"]:
                    self.methods[method["name"]] = method
                    self.method_uri[method["name"]] = uri
            resources.append((uri, DRAFT7.create_resource(_draft7(document))))
        self.version = str(json.loads((self.root / "wall" / "methods.json").read_text())["version"])
        self.registry: Registry = Registry().with_resources(resources)
        self._validators: dict[str, Draft7Validator] = {}

    def resolve(self, ref: str, base: str) -> dict[str, Any]:
        """The (draft-7) schema a ``$ref`` of the document at ``base`` names."""
        uri = urljoin(base, ref)
        return self.registry.resolver().lookup(uri).contents

    def validator(self, ref: str, base: str) -> Draft7Validator:
        uri = urljoin(base, ref)
        if uri not in self._validators:
            self._validators[uri] = Draft7Validator({"$ref": uri}, registry=self.registry)
        return self._validators[uri]


@cache
def vk_schema() -> VkSchema:
    return VkSchema()


# ---- the scripted community ---------------------------------------------------------------------------


@dataclass
class FakeComment:
    id: int
    from_id: int
    date: int
    text: str
    replies: list[FakeComment] = field(default_factory=list)  # its thread


@dataclass
class FakePost:
    id: int
    date: int
    text: str
    comments: list[FakeComment] = field(default_factory=list)


@dataclass
class FakeTopic:
    id: int
    title: str
    created: int
    created_by: int
    comments: list[FakeComment] = field(default_factory=list)  # no replies on boards


@dataclass
class FakeMessage:
    id: int
    from_id: int
    date: int
    text: str
    out: bool


@dataclass
class FakeMedia:
    """A photo, video or market item of the community, with its comments (threads on videos only)."""

    id: int
    date: int
    comments: list[FakeComment] = field(default_factory=list)


@dataclass
class FakeCommunity:
    group_id: int
    name: str
    posts: list[FakePost] = field(default_factory=list)
    topics: list[FakeTopic] = field(default_factory=list)
    dialogs: dict[int, list[FakeMessage]] = field(default_factory=dict)  # peer (user id) → messages, oldest first
    managers: dict[int, str] = field(default_factory=dict)  # user id → role
    addresses: list[dict[str, Any]] = field(default_factory=list)  # VK's groups_address objects
    photos: list[FakeMedia] = field(default_factory=list)
    videos: list[FakeMedia] = field(default_factory=list)
    market: list[FakeMedia] = field(default_factory=list)

    def post(self, post_id: int) -> FakePost | None:
        return next((p for p in self.posts if p.id == post_id), None)

    def topic(self, topic_id: int) -> FakeTopic | None:
        return next((t for t in self.topics if t.id == topic_id), None)


def scripted_community(
    group_id: int,
    *,
    seed: int = 0,
    posts: int = 3,
    comments: int = 12,
    replies: int = 3,
    topics: int = 2,
    topic_comments: int = 5,
    dialogs: int = 4,
    messages: int = 6,
    start: int = 1_796_371_200,  # 2026-12-04 09:00 MSK
) -> FakeCommunity:
    """A community with posts, comments with threads (the manager 900000+group answers some), board
    topics, dialogs, two managers and one address with a timetable; the same for the same arguments."""
    rng = random.Random(seed * 1_000_003 + group_id)
    manager = 900_000 + group_id
    community = FakeCommunity(
        group_id,
        f"Сообщество {group_id}",
        managers={manager: "editor", manager + 1: "administrator"},
        addresses=[
            {
                "id": group_id * 10 + 1,
                "title": "Приёмная",
                "address": "ул. Ленина, 1",
                "work_info_status": "timetable",
                "timetable": {
                    day: {"open_time": 540, "close_time": 1080, "break_open_time": 780, "break_close_time": 840}
                    for day in ("mon", "tue", "wed", "thu", "fri")
                },
            }
        ],
    )
    ids = iter(range(1, 10**9))
    clock = start
    for _ in range(posts):
        clock += rng.randint(60, 3600)
        post = FakePost(next(ids), clock, f"Пост {clock}")
        for _ in range(comments):
            clock += rng.randint(5, 600)
            top = FakeComment(next(ids), rng.randint(1, 10**6), clock, f"Вопрос {clock}")
            for r in range(rng.randint(0, replies)):
                clock += rng.randint(5, 600)
                author = manager if r == 0 and rng.random() < 0.6 else rng.randint(1, 10**6)
                top.replies.append(FakeComment(next(ids), author, clock, f"Ответ {clock}"))
            post.comments.append(top)
        community.posts.append(post)
    for t in range(topics):
        clock += rng.randint(60, 3600)
        topic = FakeTopic(next(ids), f"Тема {t}", clock, rng.randint(1, 10**6))
        for _ in range(topic_comments):
            clock += rng.randint(5, 600)
            author = manager if rng.random() < 0.3 else rng.randint(1, 10**6)
            topic.comments.append(FakeComment(next(ids), author, clock, f"Сообщение {clock}"))
        community.topics.append(topic)
    message_ids = iter(range(1, 10**9))
    for _ in range(dialogs):
        peer = rng.randint(1, 10**6)
        history = []
        for m in range(messages):
            clock += rng.randint(5, 600)
            out = m % 2 == 1 and rng.random() < 0.8
            history.append(FakeMessage(next(message_ids), -group_id if out else peer, clock, f"Сообщение {m}", out))
        community.dialogs[peer] = history
    return community


@dataclass
class FakeClock:
    """Seconds that pass only when someone sleeps: give it to the client (``clock``, ``sleep``) and to
    the fake (``clock``), and rate limits and backoff run without real waiting."""

    now: float = 1000.0
    pauses: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


# ---- the server ---------------------------------------------------------------------------------------


class VkError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class HttpFault(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


ERROR_TEXT = {
    3: "Unknown method passed",
    5: "User authorization failed",
    6: "Too many requests per second",
    9: "Flood control",
    10: "Internal server error",
    12: "Unable to compile code",
    13: "Runtime error occurred during code invocation",
    15: "Access denied",
    27: "Group authorization failed: method is unavailable with group auth.",
    28: "Application authorization failed: method is unavailable with service token.",
    29: "Rate limit reached",
    100: "One of the parameters specified was missing or invalid",
    203: "Access to group denied",
    212: "Access to post comments denied",
}


@dataclass(frozen=True)
class KnownToken:
    kind: str  # user, group, service
    group_id: int | None = None  # a community token's community


@dataclass
class Logged:
    """One HTTP request as the fake saw it (the token only as its type)."""

    method: str
    kind: str | None
    params: dict[str, str]
    inner: list[str] = field(default_factory=list)  # an execute's calls
    answer: str = ""  # "ok", "error N", "http N"


_SCRIPT = re.compile(r'"(r\d+)":API\.([A-Za-z]+\.[A-Za-z]+)\(')


@dataclass
class FakeVkApi:
    communities: Mapping[int, FakeCommunity]
    tokens: Mapping[str, KnownToken]
    rates: dict[str, float] = field(default_factory=lambda: {"user": 3.0, "service": 3.0, "group": 20.0})
    clock: Callable[[], float] = time.monotonic
    schema: VkSchema = field(default_factory=vk_schema)
    violations: list[str] = field(default_factory=list)
    log: list[Logged] = field(default_factory=list)
    url: str = ""
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # token → (tokens, when)
    _request_faults: dict[int, int] = field(default_factory=dict)
    _method_faults: dict[str, list[int]] = field(default_factory=dict)
    _denied: dict[tuple[int, str | None], int] = field(default_factory=dict)
    _revoked: set[str] = field(default_factory=set)

    # -- what tests script ----------------------------------------------------------------------------

    def fail_request(self, number: int, fault: int) -> None:
        """The ``number``-th HTTP request (1 = the first since start) fails with VK error ``fault`` (6, 9,
        10, 29) or, for 500 and above, that HTTP status."""
        self._request_faults[number] = fault

    def fail_method(self, method: str, fault: int, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` (direct or inside execute) fail with ``fault``; an HTTP
        status inside execute is VK error 10, as VK reports an inner server failure."""
        self._method_faults.setdefault(method, []).extend([fault] * times)

    def deny(self, group_id: int, code: int, method: str | None = None) -> None:
        """Calls about ``group_id`` (of ``method``, or every method) answer error ``code`` (15, 203, 212)."""
        self._denied[(group_id, method)] = code

    def revoke(self, token: str) -> None:
        self._revoked.add(token)

    def requests_of(self, method: str) -> int:
        """HTTP requests of ``method`` (an execute counts as one request of ``execute``)."""
        return sum(1 for entry in self.log if entry.method == method)

    def calls_of(self, method: str) -> int:
        """Calls of ``method`` received, directly or inside an execute, whatever their answer."""
        return sum((entry.method == method) + entry.inner.count(method) for entry in self.log)

    def answers(self) -> Counter[str]:
        return Counter(entry.answer for entry in self.log)

    # -- serving --------------------------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakeVkApi]:
        app = web.Application()
        app.router.add_route("*", "/method/{name}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/method"
        try:
            yield self
        finally:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["name"]
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        token = params.get("access_token")
        known = self.tokens.get(token) if token else None
        entry = Logged(method, known.kind if known else None, {k: v for k, v in params.items() if k != "access_token"})
        self.log.append(entry)
        try:
            fault = self._request_faults.pop(len(self.log), None)
            if fault is not None:
                raise HttpFault(fault) if fault >= 500 else VkError(fault, ERROR_TEXT[fault])
            response, execute_errors = self._answer(method, params, token, entry)
        except HttpFault as exc:
            entry.answer = f"http {exc.status}"
            return web.Response(status=exc.status, text="Bad gateway" if exc.status == 502 else "Server error")
        except VkError as exc:
            entry.answer = f"error {exc.code}"
            shown = [{"key": k, "value": v} for k, v in entry.params.items() if k != "code"]
            shown.insert(0, {"key": "method", "value": method})
            error = {"error_code": exc.code, "error_msg": f"{ERROR_TEXT.get(exc.code, 'Error')}: {exc.message}"}
            return web.json_response({"error": error | {"request_params": shown}})
        body: dict[str, Any] = {"response": response}
        if execute_errors:
            body["execute_errors"] = execute_errors
        problem = self._invalid(method, params, body)
        if problem:
            self.violations.append(f"answer of {method}: {problem}")
            entry.answer = "http 400"
            return web.Response(status=400, text=f"fake VK: the answer breaks responses.json: {problem}")
        entry.answer = "ok"
        return web.json_response(body)

    def _violation(self, code: int, text: str) -> VkError:
        self.violations.append(text)
        return VkError(code, text)

    def _answer(self, method: str, params: dict[str, str], token: str | None, entry: Logged) -> tuple[Any, list]:
        spec = self.schema.methods.get(method)
        if spec is None:
            raise self._violation(3, f"{method}: no such method")
        if token is None:
            raise VkError(5, "no access_token passed.")
        known = self.tokens.get(token)
        if known is None or token in self._revoked:
            raise VkError(5, "invalid access_token (4).")
        if known.kind not in spec.get("access_token_type", []):
            raise self._violation(
                27 if known.kind == "group" else 28 if known.kind == "service" else 5,
                f"{method}: a {known.kind} token is not accepted (methods.json: {spec.get('access_token_type')})",
            )
        if params.get("v") != self.schema.version:
            raise self._violation(100, f"{method}: v={params.get('v')!r}, the schema is version {self.schema.version}")
        self._take(token, known.kind)
        if method == "execute":
            return self._execute(params, known, entry)
        given = {k: v for k, v in params.items() if k not in COMMON_PARAMS}
        return self._call(method, given, known, http=True), []

    def _take(self, token: str, kind: str) -> None:
        rate = self.rates[kind]
        now = self.clock()
        tokens, when = self._buckets.get(token, (rate, now))
        tokens = min(rate, tokens + (now - when) * rate)
        if tokens < 1:
            self._buckets[token] = (tokens, now)
            raise VkError(6, "Too many requests per second")
        self._buckets[token] = (tokens - 1, now)

    def _call(self, method: str, params: dict[str, str], known: KnownToken, http: bool) -> Any:
        """One call's response (direct or inside execute); raises VkError."""
        faults = self._method_faults.get(method)
        if faults:
            fault = faults.pop(0)
            if fault >= 500:
                if http:
                    raise HttpFault(fault)
                fault = 10
            raise VkError(fault, ERROR_TEXT[fault])
        self._check_params(method, params)
        return self._respond(method, params, known)

    # -- parameters -----------------------------------------------------------------------------------

    def _check_params(self, method: str, params: dict[str, str]) -> None:
        spec = self.schema.methods[method]
        declared = {p["name"]: p for p in spec.get("parameters", [])}
        for name in params:
            if name not in declared:
                raise self._violation(100, f"{method}: unknown parameter {name!r}")
        for name, p in declared.items():
            if name not in params:
                if p.get("required") is True:
                    raise self._violation(100, f"{method}: {name} is required")
                continue
            problem = self._bad_value(p, params[name], self.schema.method_uri[method])
            if problem:
                raise self._violation(100, f"{method}: {name}={params[name]!r}: {problem}")

    def _bad_value(self, spec: dict[str, Any], value: str, base: str) -> str | None:
        if "$ref" in spec:
            spec = {**self.schema.resolve(spec["$ref"], base), **{k: v for k, v in spec.items() if k != "$ref"}}
        types = spec.get("type", "string")
        types = types if isinstance(types, list) else [types]
        if "array" in types:
            items = value.split(",") if value != "" else []
            if "maxItems" in spec and len(items) > spec["maxItems"]:
                return f"more than {spec['maxItems']} items"
            for item in items:
                problem = self._bad_value(spec.get("items", {}), item, base)
                if problem:
                    return f"item {item!r}: {problem}"
            return None
        parsed: Any = value
        if types == ["integer"]:
            if not re.fullmatch(r"-?\d+", value):
                return "not an integer"
            parsed = int(value)
        elif types == ["number"]:
            try:
                parsed = float(value)
            except ValueError:
                return "not a number"
        elif types == ["boolean"]:
            if value not in ("0", "1"):
                return "not a boolean (0 or 1)"
            return None
        elif "integer" in types and re.fullmatch(r"-?\d+", value):
            parsed = int(value)
        if "enum" in spec and parsed not in spec["enum"]:
            return f"not one of {spec['enum']}"
        if isinstance(parsed, int | float):
            if "minimum" in spec and parsed < spec["minimum"]:
                return f"below the minimum {spec['minimum']}"
            if "maximum" in spec and parsed > spec["maximum"]:
                return f"above the maximum {spec['maximum']}"
        return None

    # -- execute --------------------------------------------------------------------------------------

    def _parse_script(self, code: str) -> list[tuple[str, dict[str, Any]]]:
        if not (code.startswith("return {") and code.endswith("};")):
            raise self._violation(12, f"execute: not a script otklik writes: {code[:80]!r}")
        decoder = json.JSONDecoder()
        calls = []
        at = len("return {")
        end = len(code) - 2
        while at < end:
            match = _SCRIPT.match(code, at)
            if match is None or match.group(1) != f"r{len(calls)}":
                raise self._violation(12, f"execute: cannot read the script at {code[at : at + 60]!r}")
            try:
                args, at = decoder.raw_decode(code, match.end())
            except json.JSONDecodeError:
                raise self._violation(
                    12, f"execute: bad arguments at {code[match.end() : match.end() + 60]!r}"
                ) from None
            if not isinstance(args, dict) or code[at] != ")":
                raise self._violation(12, "execute: arguments are not one object")
            at += 1
            if code[at] == ",":
                at += 1
            elif at != end:
                raise self._violation(12, f"execute: unexpected {code[at : at + 20]!r}")
            calls.append((match.group(2), args))
        if not calls:
            raise self._violation(12, "execute: no calls")
        if len(calls) > 25:
            raise self._violation(13, f"execute: {len(calls)} API calls, VK allows 25")
        return calls

    def _execute(self, params: dict[str, str], known: KnownToken, entry: Logged) -> tuple[Any, list]:
        extra = set(params) - COMMON_PARAMS - {"code"}
        if extra or "code" not in params:
            raise self._violation(100, f"execute: takes code only, got {sorted(extra) or 'no code'}")
        calls = self._parse_script(params["code"])
        entry.inner = [method for method, _ in calls]
        response: dict[str, Any] = {}
        errors = []
        for index, (method, args) in enumerate(calls):
            spec = self.schema.methods.get(method)
            try:
                if spec is None:
                    raise self._violation(3, f"execute: {method}: no such method")
                if known.kind not in spec.get("access_token_type", []):
                    raise self._violation(
                        27 if known.kind == "group" else 28, f"execute: {method}: a {known.kind} token is not accepted"
                    )
                given = {k: _script_text(v) for k, v in args.items()}
                value = self._call(method, given, known, http=False)
                problem = self._invalid(method, given, {"response": value})
                if problem:
                    self.violations.append(f"answer of {method} in execute: {problem}")
                    raise HttpFault(400)
                response[f"r{index}"] = value
            except VkError as exc:
                response[f"r{index}"] = False
                errors.append(
                    {
                        "method": method,
                        "error_code": exc.code,
                        "error_msg": f"{ERROR_TEXT.get(exc.code, 'Error')}: {exc.message}",
                    }
                )
        return response, errors

    # -- answers --------------------------------------------------------------------------------------

    def _invalid(self, method: str, params: Mapping[str, str], body: dict[str, Any]) -> str | None:
        responses = self.schema.methods[method]["responses"]
        key = "response"
        if method == "groups.getMembers" and "filter" in params:
            key = "filterResponse"
        validator = self.schema.validator(responses[key]["$ref"], self.schema.method_uri[method])
        error = next(iter(validator.iter_errors(body)), None)
        if error is None:
            return None
        return f"{'/'.join(map(str, error.absolute_path))}: {error.message}"[:400]

    def _community(self, group_id: int, method: str, known: KnownToken) -> FakeCommunity:
        denied = self._denied.get((group_id, method), self._denied.get((group_id, None)))
        if denied is not None:
            raise VkError(denied, f"group {group_id}")
        if known.kind == "group" and known.group_id != group_id:
            raise VkError(15, "this community token is of another community")
        community = self.communities.get(group_id)
        if community is None:
            raise VkError(100, f"group {group_id} does not exist")
        return community

    def _respond(self, method: str, p: dict[str, str], known: KnownToken) -> Any:
        if p.get("extended") == "1" or ("fields" in p and method not in ("groups.getAddresses",)):
            raise self._violation(100, f"{method}: extended answers and fields are not scripted in the fake")
        count = min(int(p.get("count", 20)), COUNT_CAP.get(method, 10**9))
        offset = int(p.get("offset", 0))
        if method == "wall.get":
            domain = p.get("domain", "")
            match = re.fullmatch(r"(?:club|public)(\d+)|-(\d+)", domain)
            if match is None:
                raise VkError(100, f"domain {domain!r} is not a community the fake knows")
            community = self._community(int(match.group(1) or match.group(2)), method, known)
            posts = sorted(community.posts, key=lambda post: -post.date)
            return {"count": len(posts), "items": [_post(community, x) for x in posts[offset : offset + count]]}
        if method == "wall.getComments":
            community = self._community(-int(p.get("owner_id", "0")), method, known)
            post = community.post(int(p.get("post_id", "0")))
            if post is None:
                raise VkError(100, "post_id: no such post")
            level, parents = _level(post.comments, p)
            ordered = sorted(level, key=lambda c: c.id, reverse=p.get("sort") == "desc")
            start = 0
            if "start_comment_id" in p:
                wanted = int(p["start_comment_id"])
                start = next(
                    (
                        i
                        for i, c in enumerate(ordered)
                        if (c.id >= wanted if p.get("sort") != "desc" else c.id <= wanted)
                    ),
                    len(ordered),
                )
            page = ordered[start + offset : start + offset + count]
            thread = int(p.get("thread_items_count", 0))
            return {
                "count": len(level),
                "current_level_count": len(level),
                "can_post": True,
                "groups_can_post": True,
                "show_reply_button": True,
                "items": [_comment(community, post, c, parents, thread) for c in page],
            }
        if method == "board.getTopics":
            community = self._community(int(p["group_id"]), method, known)
            order = int(p.get("order", 0))
            topics = list(community.topics)
            if order in (1, -1):
                topics.sort(key=lambda t: _updated(t), reverse=order == 1)
            elif order in (2, -2):
                topics.sort(key=lambda t: t.created, reverse=order == 2)
            return {
                "count": len(topics),
                "items": [_topic(t) for t in topics[offset : offset + count]],
                "default_order": 1,
                "can_add_topics": 0,
            }
        if method == "board.getComments":
            community = self._community(int(p["group_id"]), method, known)
            topic = community.topic(int(p["topic_id"]))
            if topic is None:
                raise VkError(100, "topic_id: no such topic")
            ordered = sorted(topic.comments, key=lambda c: c.id, reverse=p.get("sort") == "desc")
            start = 0
            if "start_comment_id" in p:
                wanted = int(p["start_comment_id"])
                start = next((i for i, c in enumerate(ordered) if c.id == wanted), len(ordered))
            return {
                "count": len(ordered),
                "items": [
                    {"id": c.id, "from_id": c.from_id, "date": c.date, "text": c.text}
                    for c in ordered[start + offset : start + offset + count]
                ],
            }
        if method in ("messages.getConversations", "messages.getHistory"):
            group_id = int(p.get("group_id", known.group_id or 0))
            community = self._community(group_id, method, known)
            if method == "messages.getConversations":
                wanted = p.get("filter", "all")
                if wanted not in ("all", "unanswered", "unread"):
                    raise self._violation(100, f"filter={wanted} is not scripted in the fake")
                dialogs = [
                    (peer, history)
                    for peer, history in community.dialogs.items()
                    if history and (wanted == "all" or not history[-1].out)
                ]
                dialogs.sort(key=lambda d: -d[1][-1].id)
                return {
                    "count": len(dialogs),
                    "items": [
                        {
                            "conversation": _conversation(peer, history),
                            "last_message": _message(peer, history[-1], history),
                        }
                        for peer, history in dialogs[offset : offset + count]
                    ],
                }
            peer = int(p.get("peer_id", p.get("user_id", "0")))
            history = community.dialogs.get(peer)
            if history is None:
                raise VkError(100, "peer_id: no such conversation")
            ordered = sorted(history, key=lambda m: m.id, reverse=p.get("rev", "0") != "1")
            start = 0
            if "start_message_id" in p:
                wanted_id = int(p["start_message_id"])
                start = next((i for i, m in enumerate(ordered) if m.id == wanted_id), len(ordered))
            return {
                "count": len(history),
                "items": [_message(peer, m, history) for m in ordered[start + offset : start + offset + count]],
            }
        if method == "groups.getMembers":
            community = self._community(int(p.get("group_id", "0")), method, known)
            if p.get("filter") != "managers":
                raise self._violation(100, "groups.getMembers: only filter=managers is scripted in the fake")
            if known.kind == "service":
                raise VkError(15, "you should be group manager")
            managers = sorted(community.managers.items())
            return {
                "count": len(managers),
                "items": [{"id": u, "role": r} for u, r in managers[offset : offset + count]],
            }
        if method == "groups.getAddresses":
            community = self._community(int(p["group_id"]), method, known)
            count = int(p.get("count", 10))
            return {"count": len(community.addresses), "items": community.addresses[offset : offset + count]}
        if method == "groups.getById":
            ids = p.get("group_ids", p.get("group_id", "")).split(",")
            groups = []
            for raw in ids:
                if not raw.isdigit() or int(raw) not in self.communities:
                    raise VkError(100, f"group_ids: {raw!r} is not a community the fake knows")
                c = self.communities[int(raw)]
                groups.append(
                    {
                        "id": c.group_id,
                        "name": c.name,
                        "screen_name": f"club{c.group_id}",
                        "is_closed": 0,
                        "type": "page",
                    }
                )
            return {"groups": groups}
        if method in MEDIA_METHODS:
            return self._media(method, p, known, offset, count)
        raise self._violation(100, f"{method}: not scripted in the fake")

    def _media(self, method: str, p: dict[str, str], known: KnownToken, offset: int, count: int) -> Any:
        """Photo, video and market comments (user tokens only, as methods.json says), newest object first."""
        community = self._community(-int(p.get("owner_id", "0")), method, known)
        if method == "photos.getAllComments":
            if "album_id" in p:
                raise self._violation(100, "photos.getAllComments: album_id is not scripted in the fake")
            every = [(photo, c) for photo in community.photos for c in photo.comments]
            every.sort(key=lambda pc: -pc[1].id)  # newest first
            page = every[offset : offset + count]
            return {"count": len(every), "items": [_media_comment(c, [], 0) | {"pid": ph.id} for ph, c in page]}
        if method in ("video.get", "market.get"):
            objects = sorted(community.videos if method == "video.get" else community.market, key=lambda m: -m.date)
            make = _video if method == "video.get" else _market_item
            return {"count": len(objects), "items": [make(community, m) for m in objects[offset : offset + count]]}
        key = "video_id" if method == "video.getComments" else "item_id"
        objects = community.videos if method == "video.getComments" else community.market
        media = next((m for m in objects if m.id == int(p.get(key, "0"))), None)
        if media is None:
            raise VkError(100, f"{key}: no such object")
        level, parents = _level(media.comments, p)
        ordered = sorted(level, key=lambda c: c.id, reverse=p.get("sort") == "desc")
        thread = int(p.get("thread_items_count", 0))
        items = [_media_comment(c, parents, thread) for c in ordered[offset : offset + count]]
        if method == "market.getComments":
            return {"count": len(level), "items": items}
        return {"count": len(level), "current_level_count": len(level), "items": items}


def _level(comments: list[FakeComment], p: Mapping[str, str]) -> tuple[list[FakeComment], list[int]]:
    """The comments a getComments call asks for, with their parents stack: the top level, or the
    replies of ``comment_id``."""
    if "comment_id" not in p:
        return comments, []
    top = next((c for c in comments if c.id == int(p["comment_id"])), None)
    if top is None:
        raise VkError(100, "comment_id: no such comment")
    return top.replies, [top.id]


MEDIA_METHODS = frozenset(
    {"photos.getAllComments", "video.get", "video.getComments", "market.get", "market.getComments"}
)


def _media_comment(c: FakeComment, parents: list[int], thread: int) -> dict[str, Any]:
    item: dict[str, Any] = {"id": c.id, "from_id": c.from_id, "date": c.date, "text": c.text}
    if parents:
        item["parents_stack"] = parents
        item["reply_to_comment"] = parents[-1]
    elif thread:
        item["thread"] = {
            "count": len(c.replies),
            "items": [_media_comment(r, [c.id], 0) for r in c.replies[:thread]],
            "can_post": True,
            "show_reply_button": True,
            "groups_can_post": True,
        }
    return item


def _video(community: FakeCommunity, m: FakeMedia) -> dict[str, Any]:
    return {
        "id": m.id,
        "owner_id": -community.group_id,
        "title": f"Видео {m.id}",
        "date": m.date,
        "adding_date": m.date,
        "comments": sum(1 + len(c.replies) for c in m.comments),
    }


def _market_item(community: FakeCommunity, m: FakeMedia) -> dict[str, Any]:
    return {
        "id": m.id,
        "owner_id": -community.group_id,
        "title": f"Услуга {m.id}",
        "description": "Запись на приём",
        "date": m.date,
        "availability": 0,
        "category": {"inner_type": "market_market_category_nested", "id": 1, "name": "Услуги"},
        "price": {"amount": "0", "currency": {"id": 643, "name": "RUB", "title": "Российский рубль"}, "text": "0 ₽"},
    }


def _script_text(value: Any) -> str:
    """An execute argument as the form value it stands for (VKScript numbers and strings)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _post(community: FakeCommunity, post: FakePost) -> dict[str, Any]:
    return {
        "inner_type": "wall_wallpost",
        "id": post.id,
        "owner_id": -community.group_id,
        "from_id": -community.group_id,
        "date": post.date,
        "text": post.text,
        "comments": {"count": sum(1 + len(c.replies) for c in post.comments), "can_post": 1, "groups_can_post": True},
    }


def _comment(
    community: FakeCommunity, post: FakePost, c: FakeComment, parents: list[int], thread: int
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": c.id,
        "from_id": c.from_id,
        "date": c.date,
        "text": c.text,
        "post_id": post.id,
        "owner_id": -community.group_id,
        "parents_stack": parents,
    }
    if parents:
        item["reply_to_comment"] = parents[-1]
    else:
        item["thread"] = {
            "count": len(c.replies),
            "items": [_comment(community, post, r, [c.id], 0) for r in c.replies[:thread]],
            "can_post": True,
            "show_reply_button": True,
            "groups_can_post": True,
        }
    return item


def _updated(topic: FakeTopic) -> int:
    return topic.comments[-1].date if topic.comments else topic.created


def _topic(topic: FakeTopic) -> dict[str, Any]:
    last = topic.comments[-1] if topic.comments else None
    return {
        "id": topic.id,
        "title": topic.title,
        "created": topic.created,
        "created_by": topic.created_by,
        "updated": _updated(topic),
        "updated_by": last.from_id if last else topic.created_by,
        "comments": len(topic.comments),
        "is_closed": 0,
        "is_fixed": 0,
    }


def _conversation(peer: int, history: list[FakeMessage]) -> dict[str, Any]:
    last = history[-1]
    last_in = max((m.id for m in history if not m.out), default=0)
    last_out = max((m.id for m in history if m.out), default=0)
    return {
        "peer": {"id": peer, "type": "user", "local_id": peer},
        "last_message_id": last.id,
        "last_conversation_message_id": history.index(last) + 1,
        "in_read": last_in,
        "out_read": last_out,
        "version": last.id,
        "unanswered": not last.out,
        "can_write": {"allowed": True},
    }


def _message(peer: int, m: FakeMessage, history: list[FakeMessage]) -> dict[str, Any]:
    return {
        "id": m.id,
        "date": m.date,
        "peer_id": peer,
        "from_id": m.from_id,
        "text": m.text,
        "out": int(m.out),
        "conversation_message_id": history.index(m) + 1,
        "version": m.id,
        "fwd_messages": [],
        "attachments": [],
        "important": False,
        "is_hidden": False,
    }


@dataclass
class FakeSession:
    """A fake VK API serving one community, a client of it, and a token of each kind."""

    fake: FakeVkApi
    client: Any  # otklik.streams.edge.vk_api.VkApiClient
    secrets: dict[str, str]


@asynccontextmanager
async def fake_session(group_id: int, community: FakeCommunity) -> AsyncIterator[FakeSession]:
    """The fake running, with a client on its clock (no real waits) and a service, community and user
    token; on leaving, no request may have broken VK's schema."""
    import aiohttp

    from otklik.streams.edge.vk_api import VkApiClient
    from otklik.streams.settings import VkApiSettings

    clock = FakeClock()
    secrets = {kind: f"vk1.a.{kind}-{uuid.uuid4().hex}" for kind in ("service", "group", "user")}
    fake = FakeVkApi(
        {group_id: community},
        {
            secrets["service"]: KnownToken("service"),
            secrets["group"]: KnownToken("group", group_id),
            secrets["user"]: KnownToken("user"),
        },
        clock=clock,
    )
    async with fake.running(), aiohttp.ClientSession() as session:
        client = VkApiClient(
            VkApiSettings.from_env({}, api_url=fake.url), session, clock=clock, sleep=clock.sleep, draw=lambda: 0.5
        )
        yield FakeSession(fake, client, secrets)
    assert fake.violations == []


@contextmanager
def served_in_thread(fake: FakeVkApi) -> Iterator[FakeVkApi]:
    """The fake serving from a thread of its own, for a command run as a subprocess; stopped on leaving."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def serve() -> None:
        async with fake.running():
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30), "the fake VK API did not start"
    try:
        yield fake
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
