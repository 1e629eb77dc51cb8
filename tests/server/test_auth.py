"""Authentication, sessions, roles and rate limits over a real WebSocket (API.md §5)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
import trio

from camsvc.auth import KeyStore, Role


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _claims(**over) -> dict:
    now = int(time.time())
    claims = {"user_id": "u1", "role": "operator", "iat": now, "exp": now + 600}
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


class TestJwt:
    """Which tokens authenticate and which do not."""

    async def test_valid_token(self, service, connect):
        """A valid token gives the AuthResult of API.md §8.1."""
        client = await connect(service)
        token = jwt.encode(_claims(), service.secret, algorithm="HS256")
        result = await client.call("authenticate", {"auth_token": token})
        assert result["authenticated"] is True
        assert result["role"] == "operator"
        assert result["permissions"] == ["view", "control"]
        assert result["auth_method"] == "jwt"
        assert result["user_id"] == "u1"
        assert result["expires_at"].endswith("Z")
        assert result["session_id"]

    @pytest.mark.parametrize(
        ("token_of", "reason"),
        [
            (
                lambda SECRET: jwt.encode(
                    _claims(), "wrong-secret-wrong-secret-wrong-secret", algorithm="HS256"
                ),
                "auth_failed",
            ),
            (
                lambda SECRET: _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims()) + ".",
                "auth_failed",
            ),
            (lambda SECRET: jwt.encode(_claims(), SECRET, algorithm="HS512"), "auth_failed"),
            (lambda SECRET: jwt.encode(_claims(), SECRET, algorithm="HS384"), "auth_failed"),
            (
                lambda SECRET: jwt.encode(_claims(user_id=None), SECRET, algorithm="HS256"),
                "auth_failed",
            ),
            (
                lambda SECRET: jwt.encode(_claims(user_id=""), SECRET, algorithm="HS256"),
                "auth_failed",
            ),
            (
                lambda SECRET: jwt.encode(_claims(role=None), SECRET, algorithm="HS256"),
                "auth_failed",
            ),
            (
                lambda SECRET: jwt.encode(_claims(role="root"), SECRET, algorithm="HS256"),
                "auth_failed",
            ),
            (
                lambda SECRET: jwt.encode(_claims(iat=None), SECRET, algorithm="HS256"),
                "auth_failed",
            ),
            (
                lambda SECRET: jwt.encode(_claims(exp=None), SECRET, algorithm="HS256"),
                "auth_failed",
            ),
            (
                lambda SECRET: jwt.encode(
                    _claims(exp=int(time.time()) - 1), SECRET, algorithm="HS256"
                ),
                "token_expired",
            ),
            (lambda SECRET: "not.a.jwt", "auth_failed"),
            (lambda SECRET: "garbage", "auth_failed"),
            (lambda SECRET: "x" * 100_000, "auth_failed"),
        ],
        ids=[
            "wrong_secret",
            "alg_none",
            "hs512",
            "hs384",
            "no_user",
            "empty_user",
            "no_role",
            "bad_role",
            "no_iat",
            "no_exp",
            "expired",
            "three_garbage_parts",
            "garbage",
            "huge",
        ],
    )
    @pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
    async def test_rejected(self, service, connect, token_of, reason):
        """A rejected credential is -32001 with the precise reason; never a result."""
        client = await connect(service)
        error = await client.error("authenticate", {"auth_token": token_of(service.secret)})
        assert error["code"] == -32001
        assert error["data"]["reason"] == reason
        assert (
            error["message"]
            == {"auth_failed": "Authentication failed", "token_expired": "Token expired"}[reason]
        )

    async def test_missing_token(self, service, connect):
        """No or empty token is auth_required."""
        client = await connect(service)
        for params in ({}, {"auth_token": ""}):
            error = await client.error("authenticate", params)
            assert error["data"]["reason"] == "auth_required"
            assert error["message"] == "Authentication required"

    async def test_token_alias_and_precedence(self, service, connect):
        """`token` is an alias; `auth_token` wins when both are given."""
        client = await connect(service)
        result = await client.call("authenticate", {"token": service.token("viewer")})
        assert result["role"] == "viewer"
        result = await client.call(
            "authenticate", {"auth_token": service.token("admin"), "token": "garbage"}
        )
        assert result["role"] == "admin"

    async def test_failed_reauth_clears_session(self, service, connect):
        """A failed authenticate ends the previous session."""
        client = await connect(service, "admin")
        await client.error("authenticate", {"auth_token": "garbage"})
        error = await client.error("get_server_info")
        assert error["data"]["reason"] == "auth_required"

    async def test_expiry_rechecked_on_every_call(self, service, connect):
        """A session whose token expires gets token_expired at the next call, then auth_required."""
        client = await connect(service)
        await client.call("authenticate", {"auth_token": service.token("viewer", ttl_s=1)})
        # Wait on the wall clock the token is checked against, not on a guess.
        expiry = jwt.decode(service.token("viewer", ttl_s=1), options={"verify_signature": False})[
            "exp"
        ]
        await trio.sleep(max(0.0, expiry - time.time()) + 0.05)
        error = await client.error("get_server_info")
        assert error["data"]["reason"] == "token_expired"
        error = await client.error("get_server_info")
        assert error["data"]["reason"] == "auth_required"


class TestApiKeys:
    """Keys from the key store authenticate, and revocation takes effect at the next call."""

    async def test_key_lifecycle(self, service, connect):
        """Create, use, revoke (next call fails), rotate (new key works, old does not)."""
        store = KeyStore(service.app.config.security.api_keys_path)
        key, plaintext = store.create(Role.OPERATOR, description="test")
        client = await connect(service)
        result = await client.call("authenticate", {"auth_token": plaintext})
        assert result == {
            **result,
            "role": "operator",
            "auth_method": "api_key",
            "user_id": f"key:{key.id}",
            "expires_at": None,
        }
        assert (await client.call("get_server_info"))["name"] == "camsvc"
        store.revoke(key.id)
        error = await client.error("get_server_info")
        assert error["code"] == -32001
        other = await connect(service)
        error = await other.error("authenticate", {"auth_token": plaintext})
        assert error["data"]["reason"] == "auth_failed"

    async def test_rotate(self, service, connect):
        """Rotation gives a new key with the same role and revokes the old one."""
        store = KeyStore(service.app.config.security.api_keys_path)
        old, old_plain = store.create(Role.VIEWER)
        new, new_plain = store.rotate(old.id)
        assert new.role == "viewer" and new.id != old.id
        client = await connect(service)
        assert (await client.call("authenticate", {"auth_token": new_plain}))["role"] == "viewer"
        assert (await client.error("authenticate", {"auth_token": old_plain}))["code"] == -32001

    async def test_expired_key(self, service, connect):
        """A key past its expires_at is rejected."""
        store = KeyStore(service.app.config.security.api_keys_path)
        _, plaintext = store.create(Role.VIEWER, expires_s=-1)
        client = await connect(service)
        assert (await client.error("authenticate", {"auth_token": plaintext}))["code"] == -32001

    @pytest.mark.parametrize("token", ["csk_short", "csk_" + "A" * 43, "csk_" + "!" * 43])
    async def test_unknown_or_malformed_key(self, service, connect, token):
        """Malformed or unknown keys are auth_failed."""
        client = await connect(service)
        assert (await client.error("authenticate", {"auth_token": token}))["data"][
            "reason"
        ] == "auth_failed"

    async def test_auth_type_forces_kind(self, service, connect):
        """auth_type jwt treats a csk_ key as a JWT (and fails); api_key treats a JWT as a key."""
        store = KeyStore(service.app.config.security.api_keys_path)
        _, plaintext = store.create(Role.VIEWER)
        client = await connect(service)
        assert (await client.error("authenticate", {"auth_token": plaintext, "auth_type": "jwt"}))[
            "code"
        ] == -32001
        error = await client.error(
            "authenticate", {"auth_token": service.token(), "auth_type": "api_key"}
        )
        assert error["code"] == -32001


class TestAuthFailureLimit:
    """API.md §5.4."""

    async def test_closed_with_1008_after_limit(self, start_service, connect):
        """The limit-th failure is answered, then the connection closes with 1008."""
        svc = await start_service(security={"auth_failure_limit": 3})
        client = await connect(svc)
        for _ in range(3):
            error = await client.error("authenticate", {"auth_token": "bad"})
            assert error["code"] == -32001
        with trio.fail_after(5):
            while client.ws.closed is None:
                try:
                    await client.ws.get_message()
                except Exception:
                    break
        assert client.ws.closed.code == 1008


class TestRateLimit:
    """API.md §5.3: token bucket, -32040 with retry_after_ms."""

    async def test_bucket_empties(self, start_service, connect):
        """With burst 3 and a slow refill, the 4th request is rate limited."""
        svc = await start_service(security={"rate_limit_rps": 0.5, "rate_limit_burst": 3})
        client = await connect(svc)
        for _ in range(3):
            await client.call("ping")
        error = await client.error("ping")
        assert error["code"] == -32040
        assert error["message"] == "Rate limited"
        assert 0 < error["data"]["retry_after_ms"] <= 2000

    async def test_each_batch_element_costs_a_token(self, start_service, connect):
        """A batch of 3 with a burst of 2: the third element is rate limited."""
        svc = await start_service(security={"rate_limit_rps": 0.5, "rate_limit_burst": 2})
        client = await connect(svc)
        await client.send([{"jsonrpc": "2.0", "method": "ping", "id": i} for i in range(3)])
        reply = await client.recv()
        assert [("result" in r) for r in reply] == [True, True, False]
        assert reply[2]["error"]["code"] == -32040

    async def test_limit_is_per_connection(self, start_service, connect):
        """Another connection has its own bucket."""
        svc = await start_service(security={"rate_limit_rps": 0.5, "rate_limit_burst": 1})
        first = await connect(svc)
        second = await connect(svc)
        await first.call("ping")
        assert (await first.error("ping"))["code"] == -32040
        assert await second.call("ping") == "pong"
