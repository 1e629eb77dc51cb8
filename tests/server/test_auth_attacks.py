"""Attacks on authentication (API.md §5): forged and malformed JWTs, huge tokens, API-key
timing, and the privilege matrix with API keys and on every HTTP route.

tests/server/test_auth.py holds the ordinary accept/reject cases (wrong secret, `alg: none`
lower case, HS384/HS512, missing claims, expiry); this module adds what an attacker tries.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import statistics
import time
from typing import Any

import pytest
import trio

from camsvc.auth import KeyStore, Role
from camsvc.auth import keys as keys_module
from camsvc.auth.session import Authenticator
from camsvc.errors import AuthError
from tests.fixtures.http import http_request

HUGE = 1_000_000  # characters: a 1 MB token still fits the default 1 MiB message limit


def b64(data: bytes | str | dict[str, Any]) -> str:
    """Unpadded base64url of bytes, text or a JSON object."""
    if isinstance(data, dict):
        data = json.dumps(data)
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**over: Any) -> dict[str, Any]:
    """Valid claims (admin, 10 minutes), with overrides; None removes a claim."""
    now = int(time.time())
    out: dict[str, Any] = {"user_id": "mallory", "role": "admin", "iat": now, "exp": now + 600}
    out.update(over)
    return {k: v for k, v in out.items() if v is not None}


def forge(header: dict[str, Any], payload: dict[str, Any] | str, key: bytes | None) -> str:
    """A compact JWS with any header; signed HMAC-SHA256 with `key`, or unsigned when None."""
    body = payload if isinstance(payload, str) else b64(payload)
    signing_input = f"{b64(header)}.{body}"
    if key is None:
        return signing_input + "."
    return signing_input + "." + b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())


async def auth_error(client: Any, token: str) -> dict[str, Any]:
    """The -32001 error of `authenticate` with `token` (within 5 s); the session stays empty."""
    with trio.fail_after(5):
        error = await client.error("authenticate", {"auth_token": token})
        after = await client.error("get_camera_list")
    assert error["code"] == -32001, error
    assert after["code"] == -32001 and after["data"]["reason"] == "auth_required"
    return error


@pytest.fixture
async def svc(start_service):
    """The service with a generous auth-failure limit (each test tries many tokens)."""
    return await start_service(security={"auth_failure_limit": 1000})


class TestForgedJwt:
    """Tokens an attacker can make without the secret, or with a bent one."""

    @pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "", None])
    @pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "hmac_signed"])
    async def test_alg_none_spellings(self, svc, connect, alg, signed):
        """`alg` none in any case, empty or null: rejected, signature or not."""
        header = {"alg": alg, "typ": "JWT"} if alg is not None else {"typ": "JWT"}
        key = svc.secret.encode() if signed else None
        client = await connect(svc)
        error = await auth_error(client, forge(header, claims(), key))
        assert error["data"]["reason"] == "auth_failed"

    @pytest.mark.parametrize(
        "alg", ["RS256", "ES256", "PS256", "EdDSA", "HS256 ", "hs256", "HS256\x00", "HS2560"]
    )
    async def test_algorithm_confusion(self, svc, connect, alg):
        """Asymmetric (or near-HS256) `alg` with an HMAC over the secret as key: rejected."""
        client = await connect(svc)
        error = await auth_error(client, forge({"alg": alg}, claims(), svc.secret.encode()))
        assert error["data"]["reason"] == "auth_failed"

    @pytest.mark.parametrize(
        "extra",
        [
            {"jwk": {"kty": "oct", "k": b64(b"attacker")}},
            {"jku": "http://evil.example/jwks.json"},
            {"kid": "../../../../dev/null"},
            {"x5u": "http://evil.example/cert.pem"},
        ],
        ids=["jwk", "jku", "kid", "x5u"],
    )
    async def test_embedded_key_headers_ignored(self, svc, connect, extra):
        """Header-supplied keys are never used: signed with the attacker's key, rejected."""
        client = await connect(svc)
        error = await auth_error(client, forge({"alg": "HS256", **extra}, claims(), b"attacker"))
        assert error["data"]["reason"] == "auth_failed"

    @pytest.mark.parametrize(
        "key",
        [b"", b"secret", b"test-secret", None],
        ids=["empty", "guess", "prefix", "no_signature"],
    )
    async def test_wrong_or_empty_secret(self, svc, connect, key):
        """HS256 signed with an empty, guessed or prefix secret, or not at all: rejected."""
        if key == b"test-secret":
            key = svc.secret.encode()[:-1]
        client = await connect(svc)
        error = await auth_error(client, forge({"alg": "HS256"}, claims(), key))
        assert error["data"]["reason"] == "auth_failed"

    async def test_signature_of_another_token(self, svc, connect):
        """A valid signature moved onto other claims (role raised) is rejected."""
        viewer = forge({"alg": "HS256"}, claims(role="viewer"), svc.secret.encode())
        admin = forge({"alg": "HS256"}, claims(role="admin"), svc.secret.encode())
        spliced = ".".join([*admin.split(".")[:2], viewer.split(".")[2]])
        client = await connect(svc)
        await auth_error(client, spliced)


class TestClaims:
    """Claims the secret-holder signed, but which must not give a session."""

    @pytest.mark.parametrize(
        ("over", "reason"),
        [
            ({"exp": int(time.time()) - 1}, "token_expired"),
            ({"exp": int(time.time())}, "token_expired"),  # no leeway: exp == now is expired
            ({"nbf": int(time.time()) + 3600}, "auth_failed"),  # not yet valid
            ({"exp": "9999999999"}, "auth_failed"),
            ({"exp": True}, "auth_failed"),
            ({"exp": 10**20}, "auth_failed"),  # past year 9999: no Timestamp can show it
            ({"iat": "now"}, "auth_failed"),
            ({"role": "Admin"}, "auth_failed"),
            ({"role": ["admin"]}, "auth_failed"),
            ({"role": "superuser"}, "auth_failed"),
            ({"user_id": 7}, "auth_failed"),
            ({"user_id": {"id": "x"}}, "auth_failed"),
            ({"user_id": None, "sub": "mallory"}, "auth_failed"),
        ],
        ids=[
            "expired",
            "exp_now",
            "nbf_future",
            "exp_string",
            "exp_bool",
            "exp_huge",
            "iat_string",
            "role_case",
            "role_list",
            "role_unknown",
            "user_int",
            "user_object",
            "sub_not_user_id",
        ],
    )
    async def test_rejected(self, svc, connect, over, reason):
        """Each is -32001 with the right reason, and leaves no session."""
        client = await connect(svc)
        token = forge({"alg": "HS256"}, claims(**over), svc.secret.encode())
        error = await auth_error(client, token)
        assert error["data"]["reason"] == reason

    @pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
    @pytest.mark.parametrize("claim", ["exp", "iat"])
    async def test_non_finite_times(self, svc, connect, claim, value):
        """NaN or infinite `exp`/`iat` (PyJWT's JSON reads them) is auth_failed, not -32603,
        and never a session that cannot expire."""
        now = int(time.time())
        values = {"iat": now, "exp": now + 600, claim: value}
        payload = (
            f'{{"user_id":"mallory","role":"admin","iat":{values["iat"]},"exp":{values["exp"]}}}'
        )
        token = forge({"alg": "HS256"}, b64(payload), svc.secret.encode())
        client = await connect(svc)
        error = await auth_error(client, token)
        assert error["data"]["reason"] == "auth_failed"

    async def test_extra_claims_ignored(self, svc, connect):
        """Other claims (aud, iss, nested objects, a past nbf) do not matter (API.md §5.1)."""
        extra = {
            "aud": "someone-else",
            "iss": "anyone",
            "nbf": int(time.time()) - 10,
            "scope": {"nested": [1, 2, {"deep": True}]},
            "role_override": "admin",
        }
        token = forge(
            {"alg": "HS256", "typ": "JWT"}, claims(role="viewer", **extra), svc.secret.encode()
        )
        client = await connect(svc)
        result = await client.call("authenticate", {"auth_token": token})
        assert result["role"] == "viewer"
        assert (await client.error("get_status"))["code"] == -32002


class TestMalformed:
    """Tokens that are not well-formed JWS at all."""

    @pytest.mark.parametrize(
        "make",
        [
            lambda s: "a.b",
            lambda s: "a.b.c.d",
            lambda s: "..",
            lambda s: "...",
            lambda s: "!!!.###.$$$",
            lambda s: b64({"alg": "HS256"}) + "=.." + "==",
            lambda s: b64({"alg": "HS256"}) + "." + b64("not json") + ".",
            lambda s: b64("[1,2]") + "." + b64(claims()) + ".sig",
            lambda s: b64("null") + "." + b64(claims()) + ".sig",
            lambda s: b64({"alg": "HS256"}) + "." + b64("[]") + "." + b64(b"x" * 32),
            lambda s: forge({"alg": "HS256"}, claims(), s.encode()).replace(".", "\u2024"),
            lambda s: forge({"alg": "HS256"}, claims(), s.encode()) + "\x00",
            lambda s: " " + forge({"alg": "HS256"}, claims(), s.encode()),
            lambda s: "Bearer " + forge({"alg": "HS256"}, claims(), s.encode()),
            lambda s: "\u00e9" * 64,
            lambda s: "csk_",
            lambda s: "csk_" + "A" * 42 + "\u00c9",
        ],
        ids=[
            "two_parts",
            "four_parts",
            "empty_parts",
            "three_dots",
            "bad_alphabet",
            "padding",
            "payload_not_json",
            "header_array",
            "header_null",
            "payload_array",
            "lookalike_dots",
            "trailing_nul",
            "leading_space",
            "scheme_inside",
            "non_ascii",
            "bare_key_prefix",
            "key_non_ascii",
        ],
    )
    async def test_rejected_cleanly(self, svc, connect, make):
        """A clean -32001 auth_failed for every shape, never -32603."""
        client = await connect(svc)
        error = await auth_error(client, make(svc.secret))
        assert error["data"]["reason"] == "auth_failed"

    @pytest.mark.parametrize(
        "make",
        [
            lambda s: "x" * HUGE,
            lambda s: b64({"alg": "HS256"}) + "." + "A" * HUGE + ".sig",
            lambda s: "A" * (HUGE // 2) + "." + b64(claims()) + "." + "A" * (HUGE // 2 - 200),
            lambda s: forge({"alg": "HS256", "pad": "p" * (HUGE * 3 // 4 - 500)}, claims(), b"k"),
            lambda s: "csk_" + "A" * HUGE,
        ],
        ids=["opaque", "huge_payload", "huge_header_segment", "huge_header_json", "huge_key"],
    )
    async def test_huge_tokens(self, svc, connect, make):
        """About 1 MB of token: a clean -32001 within the 5 s bound, and the connection and
        service stay usable."""
        client = await connect(svc)
        error = await auth_error(client, make(svc.secret))
        assert error["data"]["reason"] == "auth_failed"
        with trio.fail_after(5):
            assert await client.call("ping") == "pong"

    async def test_huge_authorization_header(self, svc):
        """A 1 MB Authorization header on a download is refused by the head limit (431 or
        400) and the connection closed; the listener keeps serving."""
        stream = await trio.open_tcp_stream("127.0.0.1", svc.ports.main)
        head = b"GET /files/snapshots/x.jpg HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        data = b""
        with trio.fail_after(5):
            with contextlib.suppress(trio.BrokenResourceError):  # it may close before the end
                await stream.send_all(head + b"A" * HUGE + b"\r\n\r\n")
            try:
                while chunk := await stream.receive_some(65536):
                    data += chunk
            except trio.BrokenResourceError:
                pass
        assert data.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")) or data == b"", data[:80]
        assert (await http_request(svc.ports.main, "/health")).status == 200


class TestApiKeyTiming:
    """API keys are found by their SHA-256, so a key sharing a prefix with a real one is no
    closer to it than any other: nothing to measure byte by byte."""

    def test_lookup_hashes_first(self, tmp_path, monkeypatch):
        """`lookup` hashes the presented key before any comparison, then compares digests
        in constant time: the only data the attacker steers is the hash input."""
        store = KeyStore(tmp_path / "keys.json")
        _, real = store.create(Role.ADMIN)
        hashed: list[str] = []
        compared: list[tuple[str, str]] = []
        real_hash = keys_module._hash
        real_compare = keys_module.hmac.compare_digest

        def spy_hash(key: str) -> str:
            hashed.append(key)
            return real_hash(key)

        def spy_compare(a: str, b: str) -> bool:
            compared.append((a, b))
            return real_compare(a, b)

        monkeypatch.setattr(keys_module, "_hash", spy_hash)
        monkeypatch.setattr(keys_module.hmac, "compare_digest", spy_compare)
        near = real[:-1] + ("A" if real[-1] != "A" else "B")
        assert store.lookup(near) is None
        assert hashed == [near] and compared == []  # unknown digest: no comparison at all
        assert store.lookup(real) is not None
        assert compared == [(real_hash(real), real_hash(real))]

    def test_near_keys_not_faster_to_reject(self, tmp_path):
        """Statistical check, in process and bounded: keys sharing 42 of 43 characters with
        a real key take as long to reject as random ones (median ratio within 0.67-1.5).

        Loose on purpose: a byte-by-byte comparison would differ by nanoseconds, far below
        what a loaded machine can show reliably; the design test above is the real proof,
        this one guards against a gross regression (e.g. a plaintext lookup that
        short-circuits)."""
        store = KeyStore(tmp_path / "keys.json")
        _, real = store.create(Role.ADMIN)
        auth = Authenticator("s" * 32, store)
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        near = [real[:-1] + c for c in alphabet if c != real[-1]][:50]
        far = ["csk_" + "".join(alphabet[(i * 7 + j) % 64] for j in range(43)) for i in range(50)]

        def batch(keys: list[str]) -> float:
            start = time.perf_counter()
            for key in keys:
                with contextlib.suppress(AuthError):
                    auth.authenticate(key)
            return time.perf_counter() - start

        near_times, far_times = [], []
        for _ in range(40):  # interleaved, so drift hits both alike
            near_times.append(batch(near))
            far_times.append(batch(far))
        ratio = statistics.median(near_times) / statistics.median(far_times)
        assert 0.67 < ratio < 1.5, ratio


class TestPrivileges:
    """The registry-driven matrix with API keys, and every HTTP route by role."""

    @pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
    async def test_api_key_matrix(self, svc, connect, role):
        """An API key of `role` passes the gate of exactly the methods at or below it."""
        _, key = KeyStore(svc.app.config.security.api_keys_path).create(Role.parse(role))
        client = await connect(svc)
        await client.call("authenticate", {"auth_token": key})
        have = Role.parse(role)
        for spec in svc.app.registry:
            if spec.name == "authenticate":
                continue  # a failed authenticate clears the session (API.md §5.2)
            reply = await client.request(spec.name, {})
            error = reply.get("error")
            if have < spec.role:
                assert error["code"] == -32002, (spec.name, reply)
                assert error["data"]["required_role"] == spec.role.label
            else:
                assert error is None or error["code"] not in (-32001, -32002), (spec.name, reply)

    async def test_revoked_key_loses_every_method(self, svc, connect):
        """After revocation, every method that needs a session answers -32001."""
        store = KeyStore(svc.app.config.security.api_keys_path)
        record, key = store.create(Role.ADMIN)
        client = await connect(svc)
        await client.call("authenticate", {"auth_token": key})
        store.revoke(record.id)
        for spec in svc.app.registry:
            if spec.role is Role.NONE:
                continue
            error = (await client.request(spec.name, {})).get("error")
            assert error is not None and error["code"] == -32001, spec.name

    @pytest.mark.parametrize(
        "path", ["/health", "/health/live", "/health/ready", "/health/detailed"]
    )
    async def test_health_routes_open(self, svc, path):
        """Health needs no credentials, and bad ones do not turn it into 401."""
        for port in (svc.ports.main, svc.ports.health):
            for headers in (None, {"Authorization": "Bearer garbage"}, {"X-API-Key": "csk_x"}):
                reply = await http_request(port, path, headers=headers)
                assert reply.status in (200, 503), (port, path, headers, reply.status)

    @pytest.mark.parametrize("prefix", ["/files/snapshots/", "/files/recordings/"])
    async def test_download_routes_need_viewer(self, svc, prefix):
        """Downloads: 401 without or with forged credentials; any role ≥ viewer gets past the
        gate (404 for a missing file)."""
        target = prefix + "absent.jpg"
        forged = forge({"alg": "none"}, claims(), None)
        for headers in (
            None,
            {"Authorization": f"Bearer {forged}"},
            {"Authorization": "Basic dXNlcjpwYXNz"},
            {"X-API-Key": svc.token("admin")},  # a JWT is not an API key
        ):
            reply = await http_request(svc.ports.main, target, headers=headers)
            assert reply.status == 401, (headers, reply.status)
            assert reply.headers["www-authenticate"] == 'Bearer realm="camsvc"'
        for role in ("viewer", "operator", "admin"):
            headers = {"Authorization": f"Bearer {svc.token(role)}"}
            assert (await http_request(svc.ports.main, target, headers=headers)).status == 404

    @pytest.mark.parametrize("require_admin", [False, True])
    async def test_metrics_route(self, start_service, require_admin):
        """/metrics: open by default; with require_admin 401 without credentials, 403 below
        admin (JWT or API key), 200 for admin."""
        svc = await start_service(metrics={"require_admin": require_admin})
        port = svc.ports.main
        assert (await http_request(port, "/metrics")).status == (401 if require_admin else 200)
        store = KeyStore(svc.app.config.security.api_keys_path)
        for role in ("viewer", "operator", "admin"):
            _, key = store.create(Role.parse(role))
            expected = 200 if (role == "admin" or not require_admin) else 403
            for headers in ({"Authorization": f"Bearer {svc.token(role)}"}, {"X-API-Key": key}):
                reply = await http_request(port, "/metrics", headers=headers)
                assert reply.status == expected, (role, headers, reply.status)
