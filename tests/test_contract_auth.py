"""The server's bearer-token check, on its own: a one-route app with the real dependency and error
handlers, driven through Starlette's TestClient (no model needed; the full server is test_server.py)."""

from __future__ import annotations

import hmac
import secrets

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edge.app.server import ServerSettings
from edge.app.server import errors as server_errors
from edge.app.server.deps import Authorized, EngineDep

TOKEN = "s3cret-Token-0123"


def make_client(settings: ServerSettings) -> TestClient:
    app = FastAPI()
    app.state.settings = settings.check()
    server_errors.install(app)

    @app.get("/v1/guarded", dependencies=[Authorized])
    def guarded() -> dict:
        return {"ok": True}

    @app.get("/v1/engine", dependencies=[Authorized])
    def engine(engine: EngineDep) -> dict:
        return {"engine": str(engine)}

    return TestClient(app)


@pytest.fixture(scope="module")
def client() -> TestClient:
    return make_client(ServerSettings(token=TOKEN))


def test_right_token_passes(client):
    r = client.get("/v1/guarded", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.json() == {"ok": True}


@pytest.mark.parametrize(
    "header",
    [
        None,  # missing
        f"Bearer {TOKEN[:-1]}",  # one character short
        f"Bearer {TOKEN}x",  # one character more
        f"Bearer {TOKEN.upper()}",  # other case
        f"Bearer {TOKEN.lower()}",
        f"Bearer {TOKEN[:6]} {TOKEN[6:]}",  # whitespace inside it
        f"Bearer {TOKEN}\tx",
        "Bearer ",
        f"Basic {TOKEN}",  # another scheme
        TOKEN,  # no scheme
        "Bearer wrong-token-0123",
    ],
)
def test_wrong_or_missing_token_is_401(client, header):
    r = client.get("/v1/guarded", headers={"Authorization": header} if header is not None else {})
    assert r.status_code == 401
    assert r.headers.get("www-authenticate") == "Bearer"
    assert r.json() == {"error": {"code": "unauthorized", "message": "missing or wrong bearer token"}}


def test_whitespace_around_the_token_is_not_part_of_it(client):
    # HTTP drops optional whitespace around a field value, and RFC 7235 allows 1*SP after the scheme
    for header in (f"Bearer  {TOKEN}", f"Bearer {TOKEN} "):
        assert client.get("/v1/guarded", headers={"Authorization": header}).status_code == 200, header


def test_scheme_name_is_case_insensitive(client):
    # RFC 7235: the auth scheme is case-insensitive; the token itself is not
    assert client.get("/v1/guarded", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200


def test_no_auth_lets_everyone_in_on_loopback():
    c = make_client(ServerSettings(no_auth=True))
    assert c.get("/v1/guarded").status_code == 200
    assert c.get("/v1/guarded", headers={"Authorization": "Bearer anything"}).status_code == 200


def test_comparison_is_constant_time_over_equal_lengths(client, monkeypatch):
    """The token is compared with hmac.compare_digest on equal-length inputs (digests), so the time
    taken reveals neither the token's content nor its length."""
    seen: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a, b):
        seen.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    monkeypatch.setattr(secrets, "compare_digest", spy)
    assert client.get("/v1/guarded", headers={"Authorization": "Bearer x"}).status_code == 401
    assert client.get("/v1/guarded", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert len(seen) == 2
    assert all(a == b for a, b in seen), seen


def test_a_server_without_its_engine_yet_says_not_ready(client):
    # auth first, then readiness: a wrong token learns nothing about the model's state
    assert client.get("/v1/engine").status_code == 401
    r = client.get("/v1/engine", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 503
    assert r.json() == {"error": {"code": "not_ready", "message": "the model is still loading"}}


def test_the_engine_in_the_app_state_is_the_one_routes_get():
    c = make_client(ServerSettings(token=TOKEN))

    class Ready:  # stands for the loaded Engine: get_engine only hands over what the lifespan stored
        def __str__(self) -> str:
            return "engine-7"

    c.app.state.engine = Ready()
    r = c.get("/v1/engine", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.json() == {"engine": "engine-7"}
