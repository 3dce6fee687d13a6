"""The edge every endpoint shares: ids, headers, errors, limits, idempotency, metrics, health."""

from __future__ import annotations

import re

import httpx
import structlog

from tests._services import free_port
from tests.api._support import register
from tests.api.conftest import ApiFactory


class TestRequestIds:
    async def test_every_response_has_a_request_id(self, client: httpx.AsyncClient):
        """Generated when absent, on successes and problems alike."""
        for path in ("/health/live", "/nope", "/api/v1/users/me"):
            response = await client.get(path)
            assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"]), path

    async def test_a_sane_incoming_id_is_kept_and_an_insane_one_replaced(
        self, client: httpx.AsyncClient
    ):
        """Up to 128 of [A-Za-z0-9._-] is echoed; anything else is not."""
        kept = await client.get("/health/live", headers={"X-Request-ID": "abc.DEF_1-2"})
        assert kept.headers["x-request-id"] == "abc.DEF_1-2"
        for bad in ("a" * 129, "has space", "<script>"):
            response = await client.get("/health/live", headers={"X-Request-ID": bad})
            assert response.headers["x-request-id"] != bad

    async def test_the_request_id_is_on_the_log_lines(self, client: httpx.AsyncClient):
        """The access log line carries the id, route template and status."""
        merge = structlog.contextvars.merge_contextvars
        with structlog.testing.capture_logs(processors=[merge]) as logs:
            await client.get("/api/v1/users/me", headers={"X-Request-ID": "trace-me-1"})
        line = next(entry for entry in logs if entry["event"] == "request")
        assert line["request_id"] == "trace-me-1"
        assert (line["route"], line["status"]) == ("/api/v1/users/me", 401)


class TestSecurityHeaders:
    async def test_api_responses_carry_nosniff_frame_deny_and_a_strict_csp(
        self, client: httpx.AsyncClient
    ):
        """And no HSTS over plain HTTP."""
        response = await client.get("/health/live")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert "strict-transport-security" not in response.headers

    async def test_the_docs_page_gets_a_csp_that_lets_it_load(self, client: httpx.AsyncClient):
        """/docs is HTML: its CSP allows the Swagger UI bundle."""
        response = await client.get("/docs")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "cdn.jsdelivr.net" in response.headers["content-security-policy"]

    async def test_hsts_over_tls_from_a_trusted_proxy_only(self, make_api: ApiFactory):
        """X-Forwarded-Proto: https counts only when the proxy is trusted."""
        trusting = await make_api(trusted_proxies="127.0.0.1")
        behind = await trusting.client.get("/health/live", headers={"X-Forwarded-Proto": "https"})
        assert behind.headers["strict-transport-security"].startswith("max-age=")
        untrusting = await make_api()
        spoofed = await untrusting.client.get(
            "/health/live", headers={"X-Forwarded-Proto": "https"}
        )
        assert "strict-transport-security" not in spoofed.headers

    async def test_cors_answers_allowed_origins_only(self, make_api: ApiFactory):
        """A preflight from a listed origin is allowed; another origin gets no grant."""
        api = await make_api(cors_origins="https://app.example.com")
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,idempotency-key",
        }
        allowed = await api.client.options(
            "/api/v1/workspaces", headers={"Origin": "https://app.example.com", **preflight}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
        other = await api.client.options(
            "/api/v1/workspaces", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in other.headers


class TestProblems:
    async def test_unknown_routes_and_methods_are_problems(self, client: httpx.AsyncClient):
        """404 not_found and 405 method_not_allowed, as problem+json."""
        missing = await client.get("/api/v1/nothing-here")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["code"] == "not_found"
        wrong = await client.delete("/api/v1/auth/login")
        assert wrong.status_code == 405
        assert wrong.json()["code"] == "method_not_allowed"

    async def test_malformed_json_is_400_with_a_reason(self, client: httpx.AsyncClient):
        """Not JSON at all: 400 malformed_json, never a 500."""
        response = await client.post(
            "/api/v1/auth/login",
            content=b'{"email": ',
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400
        problem = response.json()
        assert problem["code"] == "malformed_json"
        assert set(problem) >= {"type", "title", "status", "detail", "code", "errors"}

    async def test_bad_query_parameters_are_422(self, client: httpx.AsyncClient):
        """limit=0 names query.limit."""
        account = await register(client)
        response = await client.get(
            "/api/v1/workspaces", params={"limit": 0}, headers=account.headers
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "query.limit"


class TestBodyLimit:
    async def test_a_declared_large_body_is_413(self, make_api: ApiFactory):
        """Content-Length over the limit: 413 payload_too_large before any parsing."""
        api = await make_api(max_body_bytes=1024)
        response = await api.client.post(
            "/api/v1/auth/login", content=b"x" * 2048, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"

    async def test_a_chunked_large_body_is_413(self, make_api: ApiFactory):
        """No Content-Length (chunked): counted while read, 413 past the limit."""
        api = await make_api(max_body_bytes=1024)

        async def chunks():
            for _ in range(4):
                yield b"y" * 512

        response = await api.client.post(
            "/api/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413

    async def test_a_small_chunked_body_gets_through(self, make_api: ApiFactory):
        """Under the limit, a chunked body reaches the endpoint intact."""
        api = await make_api(max_body_bytes=1024)

        async def chunks():
            yield b'{"email": "a@example.com",'
            yield b' "password": "whatever-pw"}'

        response = await api.client.post(
            "/api/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 401


class TestRateLimits:
    async def test_per_address_limit_answers_429_with_retry_after(self, make_api: ApiFactory):
        """Past the per-IP limit: 429 rate_limited; health probes are exempt."""
        api = await make_api(rate_limit_per_ip="3/minute")
        statuses = [(await api.client.get("/api/v1/users/me")).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        limited = await api.client.get("/api/v1/users/me")
        assert limited.json()["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["x-request-id"]
        assert (await api.client.get("/health/live")).status_code == 200

    async def test_per_principal_limit_counts_per_user(self, make_api: ApiFactory):
        """A user past their limit is refused while another user is not."""
        api = await make_api(rate_limit_per_principal="2/minute")
        one, two = await register(api.client), await register(api.client)
        got = [
            (await api.client.get("/api/v1/users/me", headers=one.headers)).status_code
            for _ in range(3)
        ]
        assert got == [200, 200, 429]
        assert (await api.client.get("/api/v1/users/me", headers=two.headers)).status_code == 200

    async def test_redis_storage_shares_counts_between_processes(
        self, make_api: ApiFactory, redis_url: str
    ):
        """Two apps on one Redis: the limit holds across both; readiness checks Redis."""
        first = await make_api(redis_url=redis_url, rate_limit_per_ip="3/minute")
        second = await make_api(redis_url=redis_url, rate_limit_per_ip="3/minute")
        statuses = [
            (await app.client.get("/api/v1/users/me")).status_code
            for app in (first, second, first, second)
        ]
        assert statuses == [401, 401, 401, 429]
        ready = await first.client.get("/health/ready")
        assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}


class TestIdempotency:
    async def test_a_repeated_post_replays_the_first_response(self, client: httpx.AsyncClient):
        """Same key, same body: the same workspace, created once."""
        owner = await register(client)
        headers = {**owner.headers, "Idempotency-Key": "create-ops-1"}
        first = await client.post("/api/v1/workspaces", json={"name": "Ops"}, headers=headers)
        second = await client.post("/api/v1/workspaces", json={"name": "Ops"}, headers=headers)
        assert first.status_code == second.status_code == 201
        assert first.json() == second.json()
        assert second.headers["idempotent-replayed"] == "true"
        listed = (await client.get("/api/v1/workspaces", headers=owner.headers)).json()["data"]
        assert [w["name"] for w in listed].count("Ops") == 1

    async def test_the_same_key_with_another_body_is_422(self, client: httpx.AsyncClient):
        """422 idempotency_key_reused."""
        owner = await register(client)
        headers = {**owner.headers, "Idempotency-Key": "k-2"}
        await client.post("/api/v1/workspaces", json={"name": "One"}, headers=headers)
        other = await client.post("/api/v1/workspaces", json={"name": "Two"}, headers=headers)
        assert other.status_code == 422
        assert other.json()["code"] == "idempotency_key_reused"

    async def test_keys_are_scoped_by_principal(self, client: httpx.AsyncClient):
        """Two users using the same key each get their own workspace."""
        one, two = await register(client), await register(client)
        made = [
            (
                await client.post(
                    "/api/v1/workspaces",
                    json={"name": "Shared key"},
                    headers={**user.headers, "Idempotency-Key": "same"},
                )
            ).json()
            for user in (one, two)
        ]
        assert made[0]["id"] != made[1]["id"]
        assert made[0]["owner_id"] == one.user_id
        assert made[1]["owner_id"] == two.user_id

    async def test_errors_are_replayed_but_not_server_errors(self, client: httpx.AsyncClient):
        """A 4xx answer is stored like a success: the retry gets the same 409."""
        owner = await register(client)
        slug = f"taken-{owner.user_id[-8:]}"
        await client.post(
            "/api/v1/workspaces", json={"name": "A", "slug": slug}, headers=owner.headers
        )
        headers = {**owner.headers, "Idempotency-Key": "conflict-1"}
        first = await client.post(
            "/api/v1/workspaces", json={"name": "B", "slug": slug}, headers=headers
        )
        again = await client.post(
            "/api/v1/workspaces", json={"name": "B", "slug": slug}, headers=headers
        )
        assert first.status_code == again.status_code == 409
        assert again.headers["idempotent-replayed"] == "true"


class TestMetricsAndHealth:
    async def test_metrics_are_labelled_by_route_template(self, client: httpx.AsyncClient):
        """The user id does not appear; the template does."""
        account = await register(client)
        await client.get(f"/api/v1/users/{account.user_id}", headers=account.headers)
        text = (await client.get("/metrics")).text
        assert (
            'http_requests_total{method="GET",route="/api/v1/users/{user_id}",status="200"}' in text
        )
        assert "http_request_duration_seconds_bucket" in text
        assert account.user_id not in text

    async def test_ready_and_live_when_the_database_answers(self, client: httpx.AsyncClient):
        """200 with each check ok."""
        for path in ("/health", "/health/ready"):
            response = await client.get(path)
            assert response.status_code == 200
            assert response.json() == {"status": "ok", "checks": {"database": "ok"}}
        assert (await client.get("/health/live")).json()["status"] == "ok"

    async def test_a_missing_database_makes_ready_503_and_requests_503(self, make_api: ApiFactory):
        """Ready is a 503 problem naming the database; an endpoint answers 503, not 500."""
        api = await make_api(database_url=f"postgresql://x:y@127.0.0.1:{free_port()}/none")
        ready = await api.client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["code"] == "not_ready"
        assert "connection refused" in ready.json()["checks"]["database"]
        assert (await api.client.get("/health/live")).status_code == 200
        login = await api.client.post(
            "/api/v1/auth/login", json={"email": "a@example.com", "password": "x" * 12}
        )
        assert login.status_code == 503
        assert login.headers["retry-after"]

    async def test_openapi_describes_errors_as_problems(self, client: httpx.AsyncClient):
        """Every operation documents problem+json for 422 and as its default."""
        document = (await client.get("/openapi.json")).json()
        assert "Problem" in document["components"]["schemas"]
        operation = document["paths"]["/api/v1/auth/register"]["post"]
        assert "application/problem+json" in operation["responses"]["422"]["content"]
        assert "application/problem+json" in operation["responses"]["default"]["content"]
