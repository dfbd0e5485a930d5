"""Error kinds: the domain names a kind, the API alone maps it to an HTTP status."""

import ast
from pathlib import Path

import pytest
from paytoken.backend import KINDS, BackendError
from paytoken.backend.api.errors import STATUS, backend_error_response, kind_of, status_of

BACKEND = Path(__file__).resolve().parents[2] / "host_tools" / "paytoken" / "backend"


def test_every_kind_has_its_status_and_reads_back():
    assert set(STATUS) == set(KINDS)
    assert {k: STATUS[k] for k in ("invalid", "not_found", "conflict", "unauthorized", "throttled",
                                   "unavailable")} == {"invalid": 422, "not_found": 404, "conflict": 409,
                                                       "unauthorized": 401, "throttled": 429,
                                                       "unavailable": 503}
    for kind in ("invalid", "not_found", "conflict", "unauthorized", "throttled", "unavailable"):
        assert kind_of(STATUS[kind]) == kind
    assert kind_of(400) == "invalid" and kind_of(502) == "unavailable"


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown error kind"):
        BackendError("x", 422)


def test_a_throttled_answer_carries_retry_after():
    resp = backend_error_response(BackendError("wait", "throttled", retry_after=7))
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    assert status_of(BackendError("no", "unauthorized")) == 401
    assert backend_error_response(BackendError("no", "unauthorized")).headers["WWW-Authenticate"] == "Bearer"


def test_the_domain_names_no_http_status():
    # outside api/ no BackendError is raised with a number for its kind
    for path in BACKEND.rglob("*.py"):
        if "api" in path.relative_to(BACKEND).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "BackendError":
                assert not any(isinstance(a, ast.Constant) and isinstance(a.value, int) for a in node.args[1:]), \
                    f"{path.name}:{node.lineno}"
