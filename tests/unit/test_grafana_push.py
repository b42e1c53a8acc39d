"""`otklik grafana push` against a local HTTP server that plays Grafana and checks every request against
Grafana's published OpenAPI description (shared/reference/grafana-openapi/openapi3.json): the operation
must exist, its path and query parameters must be declared, the JSON body must validate against the
operation's requestBody schema (with unknown top-level keys refused, so a misspelt ``folderUID`` fails),
and the server's own answers are checked against the declared responses. No live Grafana runs here.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from click.testing import CliRunner

from otklik.streams.tools.grafana.blocks import DATASOURCE_UID, FOLDER_TITLE, FOLDER_UID
from otklik.streams.tools.grafana.dashboards import build_dashboards
from otklik.streams.tools.grafana.push import connect, default_target, grafana_command, push
from tests.conftest import REPO, free_port

TOKEN = "glsa_test-token"


def shared_reference() -> Path:
    """shared/reference beside the repository (CI's layout), else the development machine's copy."""
    for base in (REPO.parent / "shared" / "reference", Path("/work/shared/reference")):
        if (base / "grafana-openapi" / "openapi3.json").exists():
            return base
    pytest.fail("shared/reference/grafana-openapi/openapi3.json not found beside the repository")


# ---- a small OpenAPI 3 request/response checker ---------------------------------------------------


class OpenApi:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.base = spec["servers"][0]["url"].rstrip("/")  # "/api"
        self.routes: list[tuple[re.Pattern[str], str, dict[str, Any]]] = []
        for template, item in spec["paths"].items():
            pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
            self.routes.append((re.compile(f"^{re.escape(self.base)}{pattern}$"), template, item))
        # Literal paths before templated ones: /folders/id/{id} is not /folders/{folder_uid}.
        self.routes.sort(key=lambda route: route[1].count("{"))

    def resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            target: Any = self.spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any], dict[str, str]] | None:
        for pattern, template, item in self.routes:
            match = pattern.match(path)
            if match and method.lower() in item:
                return template, item[method.lower()], match.groupdict()
        return None

    def _validate(self, schema: dict[str, Any], value: Any, strict: bool) -> list[str]:
        schema = copy.deepcopy(self.resolve(schema))
        if strict and schema.get("type") == "object" and "properties" in schema:
            schema.setdefault("additionalProperties", False)
        document = {**schema, "components": self.spec["components"]}
        validator = jsonschema.Draft7Validator(document)
        return [f"{'/'.join(map(str, e.path)) or '<body>'}: {e.message}" for e in validator.iter_errors(value)]

    def check_request(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> list[str]:
        found = self.operation(method, path)
        if found is None:
            return [f"{method} {path}: no such operation in Grafana's OpenAPI description"]
        template, op, _ = found
        where = f"{method} {template}"
        problems = []
        declared = {p["name"]: p for p in map(self.resolve, op.get("parameters", []))}
        for name in query:
            if declared.get(name, {}).get("in") != "query":
                problems.append(f"{where}: undeclared query parameter {name!r}")
        for name, param in declared.items():
            if param.get("in") == "query" and param.get("required") and name not in query:
                problems.append(f"{where}: missing required query parameter {name!r}")
        if "Authorization" not in headers:
            problems.append(f"{where}: no Authorization header (api_key security scheme)")
        request_body = self.resolve(op.get("requestBody")) if op.get("requestBody") else None
        if request_body is None:
            if body is not None:
                problems.append(f"{where}: sends a body the operation does not take")
        else:
            schema = request_body.get("content", {}).get("application/json", {}).get("schema")
            if body is None:
                if request_body.get("required"):
                    problems.append(f"{where}: required JSON body missing")
            elif schema is None:
                problems.append(f"{where}: the operation takes no JSON body")
            else:
                problems += [f"{where}: {p}" for p in self._validate(schema, body, strict=True)]
        return problems

    def check_response(self, method: str, path: str, status: int, body: Any) -> list[str]:
        found = self.operation(method, path)
        if found is None:
            return []
        template, op, _ = found
        response = self.resolve(op["responses"].get(str(status)))
        if response is None:
            return [f"{method} {template}: the fake answered {status}, which the operation does not declare"]
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return []
        return [f"{method} {template} → {status}: {p}" for p in self._validate(schema, body, strict=False)]


@pytest.fixture(scope="module")
def openapi() -> OpenApi:
    return OpenApi(json.loads((shared_reference() / "grafana-openapi" / "openapi3.json").read_text(encoding="utf-8")))


# ---- the fake Grafana ----------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    body: Any


@dataclass
class FakeGrafana:
    openapi: OpenApi
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> {"dashboard", "folderUid"}
    requests: list[Request] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    next_id: int = 1
    url: str = ""

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._check])
        app.router.add_get("/api/folders/{uid}", self.get_folder)
        app.router.add_post("/api/folders", self.create_folder)
        app.router.add_put("/api/folders/{uid}", self.update_folder)
        app.router.add_get("/api/datasources/uid/{uid}", self.get_datasource)
        app.router.add_post("/api/datasources", self.create_datasource)
        app.router.add_put("/api/datasources/uid/{uid}", self.update_datasource)
        app.router.add_get("/api/dashboards/uid/{uid}", self.get_dashboard)
        app.router.add_post("/api/dashboards/db", self.save_dashboard)
        return app

    @web.middleware
    async def _check(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.requests.append(Request(request.method, request.path, body))
        self.problems += self.openapi.check_request(
            request.method, request.path, dict(request.query), dict(request.headers), body
        )
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            response: web.StreamResponse = web.json_response({"message": "Unauthorized"}, status=401)
        else:
            try:
                response = await handler(request)
            except web.HTTPNotFound:
                response = web.json_response({"message": "Not found"}, status=404)
        if isinstance(response, web.Response) and response.body is not None:
            self.problems += self.openapi.check_response(
                request.method, request.path, response.status, json.loads(response.body)
            )
        return response

    @staticmethod
    def not_found(what: str) -> web.Response:
        return web.json_response({"message": f"{what} not found"}, status=404)

    async def get_folder(self, request: web.Request) -> web.Response:
        folder = self.folders.get(request.match_info["uid"])
        return web.json_response(folder) if folder else self.not_found("folder")

    async def create_folder(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("uid") in self.folders:
            return web.json_response({"message": "a folder with the same uid already exists"}, status=409)
        folder = {
            "id": self._id(),
            "uid": body["uid"],
            "title": body["title"],
            "version": 1,
            "url": f"/dashboards/f/{body['uid']}/",
        }
        self.folders[folder["uid"]] = folder
        return web.json_response(folder)

    async def update_folder(self, request: web.Request) -> web.Response:
        folder = self.folders.get(request.match_info["uid"])
        if folder is None:
            return self.not_found("folder")
        body = await request.json()
        folder.update(title=body.get("title", folder["title"]), version=folder["version"] + 1)
        return web.json_response(folder)

    async def get_datasource(self, request: web.Request) -> web.Response:
        ds = self.datasources.get(request.match_info["uid"])
        return web.json_response(ds) if ds else self.not_found("data source")

    def _stored_datasource(self, body: dict[str, Any], ident: int) -> dict[str, Any]:
        # What Grafana returns: the fields sent, plus its own.
        return {
            "id": ident,
            "orgId": 1,
            "readOnly": False,
            "basicAuth": False,
            "database": "",
            "user": "",
            "withCredentials": False,
            "secureJsonFields": {},
            "version": 1,
            "typeLogoUrl": "",
            **body,
        }

    async def create_datasource(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body["uid"] in self.datasources or any(d["name"] == body["name"] for d in self.datasources.values()):
            return web.json_response({"message": "data source with the same name already exists"}, status=409)
        ds = self._stored_datasource(body, self._id())
        self.datasources[ds["uid"]] = ds
        return web.json_response({"datasource": ds, "id": ds["id"], "message": "Datasource added", "name": ds["name"]})

    async def update_datasource(self, request: web.Request) -> web.Response:
        old = self.datasources.get(request.match_info["uid"])
        if old is None:
            return self.not_found("data source")
        ds = self._stored_datasource(await request.json(), old["id"])
        ds["version"] = old["version"] + 1
        self.datasources[ds["uid"]] = ds
        return web.json_response(
            {"datasource": ds, "id": ds["id"], "message": "Datasource updated", "name": ds["name"]}
        )

    async def get_dashboard(self, request: web.Request) -> web.Response:
        stored = self.dashboards.get(request.match_info["uid"])
        if stored is None:
            return self.not_found("dashboard")
        folder = self.folders.get(stored["folderUid"], {})
        meta = {
            "folderUid": stored["folderUid"],
            "folderTitle": folder.get("title", "General"),
            "version": stored["dashboard"]["version"],
            "slug": stored["dashboard"]["uid"],
            "url": f"/d/{stored['dashboard']['uid']}",
            "provisioned": False,
        }
        return web.json_response({"dashboard": stored["dashboard"], "meta": meta})

    async def save_dashboard(self, request: web.Request) -> web.Response:
        body = await request.json()
        model = dict(body["dashboard"])
        uid = model.get("uid")
        old = self.dashboards.get(uid)
        if old is not None and not body.get("overwrite"):
            return web.json_response(
                {"message": "The dashboard has been changed by someone else", "status": "version-mismatch"}, status=412
            )
        folder_uid = body.get("folderUid", "")
        if folder_uid and folder_uid not in self.folders:
            return web.json_response({"message": "folder not found"}, status=400)
        model["id"] = old["dashboard"]["id"] if old else self._id()
        model["version"] = old["dashboard"]["version"] + 1 if old else 1
        self.dashboards[uid] = {"dashboard": model, "folderUid": folder_uid}
        return web.json_response(
            {
                "id": model["id"],
                "uid": uid,
                "url": f"/d/{uid}",
                "status": "success",
                "version": model["version"],
                "slug": uid,
                "title": uid,
                "folderUid": folder_uid,
            }
        )


@pytest.fixture
def grafana(openapi: OpenApi) -> Iterator[FakeGrafana]:
    fake = FakeGrafana(openapi)
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(fake.app())
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10), "the fake Grafana did not start"
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def run_push(grafana: FakeGrafana) -> list[Any]:
    return push(connect(grafana.url, TOKEN), default_target("http://127.0.0.1:9090"))


# ---- the tests -------------------------------------------------------------------------------------


def test_first_push_creates_folder_datasource_and_dashboards_then_a_second_changes_nothing(
    grafana: FakeGrafana,
) -> None:
    first = run_push(grafana)
    assert grafana.problems == []
    expected_dashboards = set(build_dashboards())
    assert {(c.kind, c.action) for c in first} == {
        ("folder", "created"),
        ("datasource", "created"),
        ("dashboard", "created"),
    }
    assert {c.uid for c in first if c.kind == "dashboard"} == expected_dashboards
    assert grafana.folders[FOLDER_UID]["title"] == FOLDER_TITLE
    assert grafana.datasources[DATASOURCE_UID]["type"] == "prometheus"
    assert set(grafana.dashboards) == expected_dashboards
    assert {d["folderUid"] for d in grafana.dashboards.values()} == {FOLDER_UID}
    saves = [r.body for r in grafana.writes() if r.path == "/api/dashboards/db"]
    assert len(saves) == len(expected_dashboards)
    assert all(body["overwrite"] is True and body["folderUid"] == FOLDER_UID for body in saves)

    writes_before = len(grafana.writes())
    second = run_push(grafana)
    assert grafana.problems == []
    assert {c.action for c in second} == {"unchanged"}
    assert len(second) == len(first)
    assert len(grafana.writes()) == writes_before, [(r.method, r.path) for r in grafana.writes()[writes_before:]]


def test_push_updates_only_what_differs_and_moves_a_dashboard_back_into_its_folder(grafana: FakeGrafana) -> None:
    run_push(grafana)
    # Someone edits a dashboard in the UI, moves another to "General" and renames the folder.
    grafana.dashboards["otklik-page"]["dashboard"]["title"] = "правка вручную"
    grafana.dashboards["otklik-health"]["folderUid"] = ""
    grafana.folders[FOLDER_UID]["title"] = "Другое"
    grafana.datasources[DATASOURCE_UID]["url"] = "http://elsewhere:9090"
    writes_before = len(grafana.writes())

    changes = run_push(grafana)
    assert grafana.problems == []
    changed = {(c.kind, c.uid) for c in changes if c.action == "updated"}
    assert changed == {
        ("folder", FOLDER_UID),
        ("datasource", DATASOURCE_UID),
        ("dashboard", "otklik-page"),
        ("dashboard", "otklik-health"),
    }
    assert all(c.action == "unchanged" for c in changes if (c.kind, c.uid) not in changed)
    assert grafana.dashboards["otklik-page"]["dashboard"]["title"] == "Отклик: страница"
    assert grafana.dashboards["otklik-health"]["folderUid"] == FOLDER_UID
    assert grafana.folders[FOLDER_UID]["title"] == FOLDER_TITLE
    assert grafana.datasources[DATASOURCE_UID]["url"] == "http://127.0.0.1:9090"
    assert len(grafana.writes()) - writes_before == 4


def test_cli_push_reports_what_it_did_and_refuses_a_bad_token(grafana: FakeGrafana) -> None:
    runner = CliRunner()
    result = runner.invoke(grafana_command, ["push", "--url", grafana.url, "--token", TOKEN])
    assert result.exit_code == 0, result.output
    assert f"folder {FOLDER_UID} ({FOLDER_TITLE}): created" in result.output
    assert "dashboard otklik-region-overview (Отклик: обзор региона): created" in result.output

    again = runner.invoke(grafana_command, ["push", "--url", grafana.url + "/", "--token", TOKEN])
    assert again.exit_code == 0, again.output
    assert not re.search(r": (created|updated)$", again.output, re.M), again.output
    assert f"0 created or updated, {2 + len(build_dashboards())} unchanged" in again.output

    refused = runner.invoke(grafana_command, ["push", "--url", grafana.url, "--token", "wrong"])
    assert refused.exit_code != 0
    assert "401" in refused.output
    assert grafana.problems == []


def test_the_checker_refuses_requests_grafana_would_not_understand(openapi: OpenApi) -> None:
    # Without these refusals the checks above would prove nothing.
    auth = {"Authorization": "Bearer x"}
    assert (
        openapi.check_request(
            "POST", "/api/dashboards/db", {}, auth, {"dashboard": {}, "folderUid": "x", "overwrite": True}
        )
        == []
    )
    assert openapi.check_request(
        "POST", "/api/dashboards/db", {}, auth, {"dashboard": {}, "folderUID": "x"}
    )  # misspelt key
    assert openapi.check_request(
        "POST", "/api/dashboards/db", {}, auth, {"dashboard": {}, "overwrite": "yes"}
    )  # wrong type
    assert openapi.check_request("POST", "/api/dashboards/db", {}, {}, {"dashboard": {}})  # no credentials
    assert openapi.check_request("PUT", "/api/dashboards/db", {}, auth, {"dashboard": {}})  # no such operation
    assert openapi.check_request("GET", "/api/folders/otklik", {"recursive": "1"}, auth, None)  # undeclared parameter
    assert openapi.check_response("GET", "/api/folders/otklik", 404, {"error": "x"})  # `message` is required
