"""Master key, virtual keys (hash-only, scoped, budgeted, rate-limited), raw-path decisions, CORS, exposure."""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import Iterator

import httpx2
import openai
import pytest

from modelyard import errors
from modelyard.config import Settings
from modelyard.providers.fake import FakeReply
from modelyard.server.hosts import MEMO_SIZE, HostAllowList, host_name
from modelyard.server.run import is_loopback, serve
from modelyard.types.usage import Usage
from tests.server.conftest import fake_of, server_settings
from tests.support.live_server import LiveServer

MASTER = "sk-master-test-0123456789"
HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture
def secured(tmp_path: pathlib.Path) -> Iterator[LiveServer]:
    settings = server_settings(tmp_path, master_key=MASTER, prices={"fake/paid": {"input": 1e6, "output": 1e6}})
    server = LiveServer(settings).start()
    yield server
    server.stop()


def sdk(live: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=key, max_retries=0)


def make_key(live: LiveServer, **fields: object) -> dict[str, object]:
    response = httpx2.post(
        f"{live.url}/admin/keys", json={"name": "k", **fields}, headers={"Authorization": f"Bearer {MASTER}"}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_master_key_required(secured: LiveServer) -> None:
    with pytest.raises(openai.AuthenticationError):
        sdk(secured, "wrong").chat.completions.create(model="fake/m", messages=HELLO)  # type: ignore[arg-type]
    assert httpx2.post(f"{secured.url}/v1/chat/completions", json={}).status_code == 401
    ok = sdk(secured, MASTER).chat.completions.create(model="fake/m", messages=HELLO)  # type: ignore[arg-type]
    assert ok.choices[0].message.content == "hi"
    response = httpx2.post(
        f"{secured.url}/v1/chat/completions", headers={"x-api-key": MASTER}, json={"model": "fake/m", "messages": HELLO}
    )
    assert response.status_code == 200
    assert httpx2.get(f"{secured.url}/health").status_code == 200


def test_virtual_key_is_shown_once_and_stored_as_hash(secured: LiveServer, tmp_path: pathlib.Path) -> None:
    created = make_key(secured)
    plaintext = str(created["key"])
    assert plaintext.startswith("sk-my-") and len(plaintext) > 40
    listed = httpx2.get(f"{secured.url}/admin/keys", headers={"Authorization": f"Bearer {MASTER}"}).json()
    assert plaintext not in str(listed)
    dump = "\n".join(sqlite3.connect(tmp_path / "server.db").iterdump())
    assert plaintext not in dump and plaintext[6:20] not in dump
    answer = sdk(secured, plaintext).chat.completions.create(model="fake/m", messages=HELLO)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "hi"


def test_virtual_key_cannot_reach_admin_or_mint_keys(secured: LiveServer) -> None:
    key = str(make_key(secured)["key"])
    for method, path in (("GET", "/admin/keys"), ("POST", "/admin/keys"), ("GET", "/admin/logs"), ("GET", "/metrics")):
        response = httpx2.request(
            method, f"{secured.url}{path}", json={"name": "x"}, headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 403, path


def test_allowed_models(secured: LiveServer) -> None:
    key = str(make_key(secured, allowed_models=["fake/ok*"])["key"])
    sdk(secured, key).chat.completions.create(model="fake/ok-1", messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(openai.PermissionDeniedError):
        sdk(secured, key).chat.completions.create(model="fake/other", messages=HELLO)  # type: ignore[arg-type]


def test_budget_exhaustion_is_insufficient_quota_without_retry(secured: LiveServer) -> None:
    key = str(make_key(secured, budget=0.5)["key"])
    fake_of(secured).queue(FakeReply(text="x", usage=Usage.of(1, 0)))  # 1 token at $1/token = $1
    sdk(secured, key).chat.completions.create(model="fake/paid", messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as info:
        sdk(secured, key).chat.completions.create(model="fake/paid", messages=HELLO)  # type: ignore[arg-type]
    assert info.value.code == "insufficient_quota"
    assert info.value.response.headers["x-should-retry"] == "false"


def test_key_rpm_limit(secured: LiveServer) -> None:
    key = str(make_key(secured, rpm=2)["key"])
    client = sdk(secured, key)
    client.chat.completions.create(model="fake/m", messages=HELLO)  # type: ignore[arg-type]
    client.chat.completions.create(model="fake/m", messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="fake/m", messages=HELLO)  # type: ignore[arg-type]
    assert info.value.code == "rate_limit_exceeded"
    assert int(info.value.response.headers["retry-after"]) >= 1


def test_revoked_key_is_refused(secured: LiveServer) -> None:
    created = make_key(secured)
    revoked = httpx2.delete(f"{secured.url}/admin/keys/{created['id']}", headers={"Authorization": f"Bearer {MASTER}"})
    assert revoked.status_code == 200
    with pytest.raises(openai.AuthenticationError):
        sdk(secured, str(created["key"])).chat.completions.create(model="fake/m", messages=HELLO)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["x/?", "x/#", "x@y", "ünïcode", "..", "127.0.0.1/health"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/admin/keys", "/v1/models", "/metrics"])
def test_host_header_never_bypasses_auth(secured: LiveServer, host: str, path: str) -> None:
    response = httpx2.get(f"{secured.url}{path}", headers={"Host": host.encode("utf-8")})
    assert response.status_code in (400, 401, 405), (host, path, response.status_code)


@pytest.mark.parametrize("path", ["/health/../admin/keys", "/./admin/keys", "//admin/keys", "/ADMIN/keys"])
def test_path_tricks_never_bypass_auth(secured: LiveServer, path: str) -> None:
    with httpx2.Client() as client:
        request = client.build_request("GET", f"{secured.url}/x")
        request.url = request.url.copy_with(raw_path=path.encode())
        response = client.send(request)
    assert response.status_code in (401, 404), (path, response.status_code)


def test_cors_is_off_by_default(secured: LiveServer) -> None:
    response = httpx2.options(
        f"{secured.url}/v1/chat/completions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in response.headers


def test_cors_star_never_allows_credentials(tmp_path: pathlib.Path) -> None:
    server = LiveServer(server_settings(tmp_path, server={"cors_origins": ["*"]})).start()
    try:
        response = httpx2.options(
            f"{server.url}/v1/chat/completions",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert response.headers.get("access-control-allow-origin") == "*"
        assert response.headers.get("access-control-allow-credentials") != "true"
    finally:
        server.stop()


@pytest.mark.parametrize("path", ["/v1/models", "/v1/chat/completions", "/admin/logs", "/", "/health"])
@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:4000", "127.0.0.1.nip.io", "0.0.0.0:4000"])
def test_without_master_key_only_loopback_hosts_are_served(live: LiveServer, host: str, path: str) -> None:
    """DNS rebinding: a web page whose name now points at 127.0.0.1 must not get answers from a keyless server."""
    response = httpx2.post(f"{live.url}{path}", headers={"Host": host}, json={"model": "fake/m", "messages": HELLO})
    assert response.status_code == 403, (host, path, response.status_code)
    error = response.json()["error"]
    assert error["code"] == "host_not_allowed" and error["type"] == "permission_error"
    assert response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "app.localhost", "127.0.0.1", "127.9.9.9", "[::1]"])
def test_loopback_hosts_are_served_without_master_key(live: LiveServer, host: str) -> None:
    port = live.url.rsplit(":", 1)[1]
    for header in (host, f"{host}:{port}"):
        response = httpx2.get(f"{live.url}/v1/models", headers={"Host": header})
        assert response.status_code == 200, (header, response.text)


def test_allowed_hosts_extend_the_loopback_names(tmp_path: pathlib.Path) -> None:
    server = LiveServer(server_settings(tmp_path, server={"allowed_hosts": ["gateway.internal", "*.corp.example"]}))
    server.start()
    try:
        for host, status in [
            ("gateway.internal:4000", 200),
            ("a.corp.example", 200),
            ("localhost", 200),
            ("corp.example", 403),
            ("gateway.internal.evil.example", 403),
        ]:
            assert httpx2.get(f"{server.url}/v1/models", headers={"Host": host}).status_code == status, host
    finally:
        server.stop()


def test_with_master_key_listed_hosts_are_enforced(tmp_path: pathlib.Path) -> None:
    settings = server_settings(tmp_path, master_key=MASTER, server={"allowed_hosts": ["gateway.example.com"]})
    server = LiveServer(settings).start()
    try:
        auth = {"Authorization": f"Bearer {MASTER}"}
        ok = httpx2.get(f"{server.url}/v1/models", headers={"Host": "gateway.example.com", **auth})
        assert ok.status_code == 200
        refused = httpx2.get(f"{server.url}/v1/models", headers={"Host": "localhost", **auth})
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == "Host 'localhost' is not in server.allowed_hosts"
    finally:
        server.stop()


def test_with_master_key_hosts_are_not_checked_unless_listed(secured: LiveServer) -> None:
    """A master key protects every route, so any name may reach the server (behind a proxy, in a container)."""
    response = httpx2.get(
        f"{secured.url}/v1/models", headers={"Host": "gateway.example.com", "Authorization": f"Bearer {MASTER}"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("LocalHost:4000", "localhost"),
        ("[::1]:4000", "::1"),
        ("[::1]", "::1"),
        ("example.com.", "example.com"),
        ("::1", "::1"),
        ("127.0.0.1:80", "127.0.0.1"),
        (" a.b ", "a.b"),
    ],
)
def test_host_name_parsing(header: str, name: str) -> None:
    assert host_name(header) == name


def test_refuses_to_listen_publicly_without_master_key() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    with pytest.raises(errors.ConfigError, match="master key"):
        serve(Settings(), "0.0.0.0", 0)


def test_virtual_keys_cannot_reach_saved_conversations(secured: LiveServer) -> None:
    key = str(make_key(secured)["key"])
    response = httpx2.post(
        f"{secured.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "fake/m", "messages": HELLO, "conversation_id": "conv_someone_else"},
    )
    assert response.status_code == 403 and response.json()["error"]["param"] == "conversation_id"


def test_only_allowed_hosts_are_remembered() -> None:
    hosts = HostAllowList([], loopback=True)
    for _ in range(2):  # the second time from the memo
        assert hosts.allows_raw(b"127.0.0.1:4000") and hosts.allows_raw(b"LOCALHOST.")
        assert not hosts.allows_raw(b"attacker.example") and not hosts.allows_raw(b"127.0.0.1.nip.io")
    for i in range(MEMO_SIZE * 2):  # past its size the memo starts over
        assert hosts.allows_raw(f"127.0.0.{i + 1}".encode())
    assert not hosts.allows_raw(b"attacker.example")
