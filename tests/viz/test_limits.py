"""`hrm viz` under hostile use: slow and idle connections, deeply nested and enormous JSON, a model
with NaN weights, links out of the run directory, work that never ends, a fuzzer throwing bad
requests at every endpoint, and a load of slow clients and endless solves after which SIGTERM
still stops the server. Live servers run in this process on 127.0.0.1 with short limits (the load
test starts `hrm viz` itself, with its defaults); every socket and thread here ends on its own."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

import hrm.inference  # noqa: E402
from hrm import cli as hrm_cli  # noqa: E402
from hrm.errors import HRMError  # noqa: E402
from hrm.viz import server  # noqa: E402
from hrm.viz.server import create_app  # noqa: E402
from tiny_models import save_tiny, tiny_config, tiny_model  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`")

BASE = "http://127.0.0.1"
PUZZLE4 = "....32....21...."
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("vizlimits")
    run = save_tiny(root / "sudoku4", tiny_config(16, 6))
    (run / "config.yaml").write_text("lr: 0.001\n")
    with (run / "metrics.jsonl").open("w") as f:
        f.write(json.dumps({"step": 1, "kind": "train", "lm_loss": 1.0}) + "\n")
    args = (
        "data sudoku --size 4 --count 4 --difficulty easy --test-count 3 --num-aug 1 --seed 0 --no-progress"
    )
    assert hrm_cli.main([*args.split(), "--out", str(root / "data4")]) == 0
    return {"root": root, "run": run, "data": root / "data4"}


@pytest.fixture(scope="module")
def client(env):
    app = create_app(run_dir=env["run"], data_dir=env["data"])
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        yield c


def error_of(response, status: int | tuple[int, ...]) -> str:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    assert "Traceback" not in body["error"]
    return body["error"]


def strict_json(text: str):
    """JSON as the standard has it: NaN and Infinity are not numbers."""

    def refuse(name):
        raise ValueError(f"{name} in the answer")

    return json.loads(text, parse_constant=refuse)


# ----------------------------------------------------------------------------------------------
# A live server in this process
# ----------------------------------------------------------------------------------------------


class Live:
    def __init__(self, app):
        self.sock, url = server.bind("127.0.0.1", 0)
        self.port = int(url.rsplit(":", 1)[1].strip("/"))
        self.srv = server.make_server(app)  # under the app's limits
        self.thread = threading.Thread(target=self.srv.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.srv.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.srv.started

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, dict, float]:
        start = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            res = conn.getresponse()
            body = json.loads(res.read())
            return res.status, body, time.monotonic() - start
        finally:
            conn.close()

    def post(self, path: str, body: dict, timeout: float = 10.0) -> tuple[int, dict, float]:
        start = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
            res = conn.getresponse()
            return res.status, json.loads(res.read()), time.monotonic() - start
        finally:
            conn.close()

    def stop(self) -> None:
        self.srv.should_exit = True
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


@contextlib.contextmanager
def live(app) -> Iterator[Live]:
    srv = Live(app)
    try:
        yield srv
    finally:
        srv.stop()


def read_until_closed(conn: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection (or `limit_s` passes)."""
    start = time.monotonic()
    data = b""
    while time.monotonic() - start < limit_s:
        ready, _, _ = select.select([conn], [], [], 0.1)
        if ready:
            try:
                chunk = conn.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    return data, time.monotonic() - start


def status_and_json(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower(), raw[:300]
    return int(head.split(b" ", 2)[1]), json.loads(body)


# ----------------------------------------------------------------------------------------------
# 1. Timeouts, connection cap, JSON limits, NaN models, links out of the run directory
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_slow_and_idle_connections_are_cut_off(env):
    limits = server.Limits(head_timeout_s=1, body_timeout_s=1, idle_timeout_s=1)
    with live(create_app(data_dir=env["data"], limits=limits)) as srv:
        # Nothing sent: closed after the head timeout.
        with srv.connect() as conn:
            raw, took = read_until_closed(conn, 5)
        assert raw == b"" and 0.8 < took < 3, (raw, took)

        # Headers a byte at a time (slowloris): cut off all the same.
        head = b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
        with srv.connect() as conn:
            start, closed = time.monotonic(), False
            for byte in head:
                try:
                    conn.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                if select.select([conn], [], [], 0.1)[0]:
                    raw, _ = read_until_closed(conn, 1)
                    status, body = status_and_json(raw)
                    assert status == 408 and "headers took over 1 s" in body["error"]
                    closed = True
                    break
            assert closed and time.monotonic() - start < 3

        # A body that never arrives: 408 once the body timeout passes.
        with srv.connect() as conn:
            conn.sendall(
                b"POST /api/solve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"puzzle":'
            )
            raw, took = read_until_closed(conn, 5)
        status, body = status_and_json(raw)
        assert status == 408 and "body took over 1 s" in body["error"] and took < 3

        # A kept-alive connection with no next request is closed after the idle timeout.
        with srv.connect() as conn:
            conn.sendall(b"GET /api/dataset HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            raw, took = read_until_closed(conn, 5)
        assert raw.startswith(b"HTTP/1.1 200") and took < 3

        # Headers over the size limit: a JSON 400 while they arrive, 431 when they came in one piece.
        with srv.connect() as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 17000)
            raw, _ = read_until_closed(conn, 5)
        status, body = status_and_json(raw)
        assert status == 400 and "headers over 16384 bytes" in body["error"]
        with srv.connect() as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n")
            raw, _ = read_until_closed(conn, 5)
        status, body = status_and_json(raw)
        assert status == 431 and "headers over 16 KB" in body["error"]

        assert srv.get("/api/info")[0] == 200


def test_open_connections_are_capped(env):
    with live(create_app(limits=server.Limits(max_connections=4))) as srv:
        held = [srv.connect() for _ in range(4)]
        try:
            time.sleep(0.3)
            with srv.connect() as extra:
                raw, took = read_until_closed(extra, 3)
            status, body = status_and_json(raw)
            assert status == 503 and "open connections" in body["error"] and took < 1
        finally:
            for conn in held:
                conn.close()
        time.sleep(0.3)
        assert srv.get("/api/info")[0] == 200


def test_deeply_nested_json_is_a_400(client):
    headers = {"content-type": "application/json"}
    for depth in (33, 1000, 30000):
        body = b"[" * depth + b"]" * depth
        assert "deeper than 32" in error_of(client.post("/api/solve", content=body, headers=headers), 400)
        inside = b'{"puzzle": ' + b"[" * depth + b"]" * depth + b"}"
        assert "deeper than 32" in error_of(client.post("/api/solve", content=inside, headers=headers), 400)
    # A pasted task (JSON in a string) is bounded alike.
    text = '{"train": ' + "[" * 5000 + "]" * 5000 + "}"
    assert "deeper than 32" in error_of(client.post("/api/solve", json={"puzzle": text}), 422)
    # Counting is linear however the quotes and escapes are laid out.
    for body in (b'"' + b'\\"' * 32000, b'{"a": "' + b"\\" * 64000):
        start = time.monotonic()
        error_of(client.post("/api/solve", content=body, headers=headers), (400, 413, 422))
        assert time.monotonic() - start < 1
    # Brackets inside strings are not nesting.
    ok = {"puzzle": "[" * 5000, "kind": "sudoku"}
    assert "deeper" not in error_of(client.post("/api/solve", json=ok), 422)


def test_enormous_numbers_are_refused_before_conversion(client):
    headers = {"content-type": "application/json"}
    for digits in (21, 4301, 5000, 60000):
        number = "9" * digits
        body = '{"example": {"split": "test", "index": ' + number + "}}"
        assert "over 20 digits" in error_of(
            client.post("/api/solve", content=body.encode(), headers=headers), (400, 413)
        )
        for path in ("/api/dataset/example?index=", "/api/dataset/examples?page=", "/api/run/metrics?since="):
            r = client.get(path + number)
            if digits > 64:
                assert "over 64 characters" in error_of(r, 400), path
            else:
                assert "less than or equal" in error_of(r, 422), path
    for constant in ("NaN", "Infinity", "-Infinity"):
        body = '{"kind": "sudoku", "size": ' + constant + "}"
        assert "not JSON" in error_of(
            client.post("/api/generate", content=body.encode(), headers=headers), 400
        )
    # Within the limits, numbers out of range are the usual 422.
    assert "index" in error_of(client.get("/api/dataset/example?index=" + "9" * 30), 422)


def test_a_model_with_nan_weights_answers_json_with_a_warning():
    import torch

    model = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    with TestClient(create_app(preloaded_model=model), base_url=BASE, raise_server_exceptions=False) as c:
        r = c.post("/api/solve", json={"puzzle": PUZZLE4, "kind": "sudoku", "halt": "max"})
        assert r.status_code == 200, r.text[:300]
        out = strict_json(r.text)
        assert "non-finite" in out["warning"]
        assert out["trace"]["segments"][0]["q_halt"] is None and out["trace"]["pca"] is None
        again = c.get(f"/api/trace/{out['id']}")
        assert again.status_code == 200 and strict_json(again.text) == out["trace"]
    with TestClient(create_app(preloaded_model=tiny_model()), base_url=BASE) as c:
        assert c.post("/api/solve", json={"puzzle": PUZZLE4}).json()["warning"] is None


def test_links_out_of_the_run_directory_are_refused(env, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text("secret_token: hunter2\n")
    (outside / "metrics.jsonl").write_text('{"step": 1, "kind": "train", "secret_token": 7}\n')
    run = save_tiny(tmp_path / "run", tiny_config(16, 6))
    (run / "config.yaml").symlink_to(outside / "secret.yaml")
    (run / "metrics.jsonl").symlink_to(outside / "metrics.jsonl")
    with TestClient(create_app(run_dir=run), base_url=BASE) as c:
        summary = c.get("/api/run").json()
        assert summary["config"] is None and "hunter2" not in json.dumps(summary)
        assert summary["errors"] == ["config.yaml links outside the run directory; it is not read"]
        assert c.get("/api/info").json()["run"]["errors"] == summary["errors"]
        msg = error_of(c.get("/api/run/metrics"), 403)
        assert msg == "metrics.jsonl links outside the run directory; it is not read"
        assert c.post("/api/solve", json={"puzzle": PUZZLE4}).status_code == 200  # the model is inside

    # A checkpoint that is a link out of the run: not listed, and not loaded.
    other = save_tiny(tmp_path / "other", tiny_config(16, 6))
    sneaky = tmp_path / "sneaky"
    (sneaky / "checkpoints").mkdir(parents=True)
    (sneaky / "checkpoints" / "step_0000001").symlink_to(other / "checkpoints" / "step_0000001")
    with TestClient(create_app(run_dir=sneaky), base_url=BASE) as c:
        summary = c.get("/api/run").json()
        assert summary["checkpoints"] == [] and "checkpoints/step_0000001 links" in summary["errors"][0]
        msg = error_of(c.post("/api/solve", json={"puzzle": PUZZLE4}), 403)
        assert "outside the run directory" in msg
        assert "outside the run directory" in c.get("/api/info").json()["model_error"]

    # Links that stay inside are followed.
    inside = save_tiny(tmp_path / "inside", tiny_config(16, 6))
    (inside / "configs").mkdir()
    (inside / "configs" / "real.yaml").write_text("lr: 0.5\n")
    (inside / "config.yaml").symlink_to(inside / "configs" / "real.yaml")
    with TestClient(create_app(run_dir=inside), base_url=BASE) as c:
        summary = c.get("/api/run").json()
        assert summary["config"] == {"lr": 0.5} and summary["errors"] == []


def test_links_out_of_the_dataset_are_refused(env, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(env["data"], data)
    outside = tmp_path / "outside.json"
    outside.write_text('["secret"]')
    (data / "identifiers.json").unlink()
    (data / "identifiers.json").symlink_to(outside)
    with pytest.raises(HRMError, match=r"identifiers\.json links outside the dataset directory"):
        create_app(data_dir=data)
    (data / "identifiers.json").unlink()
    victim = next((data / "test").glob("*__inputs.npy"))
    moved = tmp_path / victim.name
    victim.rename(moved)
    victim.symlink_to(moved)
    with TestClient(create_app(data_dir=data), base_url=BASE) as c:
        msg = error_of(c.get("/api/dataset/example?split=test&index=0"), 403)
        assert f"test/{victim.name} links outside the dataset directory" in msg
        assert c.get("/api/dataset/example?split=train&index=0").status_code == 200


# ----------------------------------------------------------------------------------------------
# 2. Work that never finishes
# ----------------------------------------------------------------------------------------------


class Gate:
    """Stands in for hrm.inference.solve: blocks until opened, then solves."""

    def __init__(self, real):
        self.real = real
        self.open = threading.Event()
        self.entered = threading.Event()
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        self.entered.set()
        self.open.wait(60)
        return self.real(*args, **kwargs)


@pytest.fixture
def gate(monkeypatch):
    g = Gate(hrm.inference.solve)
    monkeypatch.setattr(hrm.inference, "solve", g)
    yield g
    g.open.set()


def _in_threads(fn, count: int) -> list:
    results: list = [None] * count

    def one(i):
        try:
            results[i] = fn()
        except Exception as exc:  # a timeout here is a result too
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    return [threads, results]


@pytest.mark.slow
def test_endless_solves_are_bounded_and_the_rest_keeps_answering(env, gate):
    limits = server.Limits(work_slots=2, work_deadline_s=3)
    app = create_app(model=env["run"], run_dir=env["run"], data_dir=env["data"], limits=limits)
    with live(app) as srv:
        assert srv.get("/api/info")[0] == 200  # the model is loaded
        threads, results = _in_threads(lambda: srv.post("/api/solve", {"puzzle": PUZZLE4}, timeout=20), 45)
        assert gate.entered.wait(5)
        # Meanwhile the rest of the API answers at once.
        for path in ("/api/info", "/api/dataset", "/api/dataset/examples?split=test", "/api/run/metrics"):
            status, _, took = srv.get(path, timeout=5)
            assert status == 200 and took < 1, (path, took)
        for t in threads:
            t.join(timeout=20)
        statuses = [r[0] for r in results]
        assert set(statuses) <= {503, 504} and statuses.count(504) >= 1, statuses
        busy = [r for r in results if r[0] == 503]
        assert len(busy) >= 43 and all("busy" in r[1]["error"] for r in busy)
        assert max(r[2] for r in busy if "the most at once" in r[1]["error"]) < 1.5
        late = [r for r in results if r[0] == 504]
        assert all("gave up after 3 s: that took too long" in r[1]["error"] and 2.5 < r[2] < 6 for r in late)
        # Once the stuck work ends, solving works again.
        gate.open.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, body, _ = srv.post("/api/solve", {"puzzle": PUZZLE4})
            if status == 200:
                break
            time.sleep(0.2)
        assert status == 200 and body["trace"]["kind"] == "sudoku"


def test_waiting_stops_when_the_client_disconnects(env, gate):
    app = create_app(model=env["run"], limits=server.Limits(work_deadline_s=30))
    with live(app) as srv:
        assert srv.get("/api/info")[0] == 200
        body = json.dumps({"puzzle": PUZZLE4}).encode()
        with srv.connect() as conn:
            conn.sendall(
                b"POST /api/solve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            assert gate.entered.wait(5)
            assert len(srv.srv.server_state.tasks) == 1
        deadline = time.monotonic() + 2
        while srv.srv.server_state.tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not srv.srv.server_state.tasks  # the request is over, though the solve is not
        assert gate.calls == 1


# ----------------------------------------------------------------------------------------------
# Fuzzing: bad requests of every kind answer 4xx JSON
# ----------------------------------------------------------------------------------------------

FUZZ = settings(
    max_examples=300,
    deadline=3000,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
REQUEST_KEYS = [
    "kind",
    "puzzle",
    "example",
    "halt",
    "max_views",
    "size",
    "difficulty",
    "seed",
    "split",
    "index",
]
# A JSON object that cannot be a valid request: it always holds a field no request has.
BAD_OBJECTS = st.dictionaries(st.sampled_from(REQUEST_KEYS), JSON_VALUES, max_size=5).map(
    lambda d: json.dumps({**d, "zz_unknown": 1}).encode()
)
BAD_BODIES = st.one_of(
    BAD_OBJECTS,
    st.binary(max_size=300).filter(lambda b: not b.strip().startswith(b"{")),
    st.integers(33, 20000).map(lambda n: b'{"puzzle": ' + b"[" * n + b"]" * n + b"}"),
    st.integers(21, 6000).map(lambda n: b'{"example": {"split": "test", "index": ' + b"7" * n + b"}}"),
    st.sampled_from([b'{"size": NaN}', b'{"seed": Infinity}', b"{", b"", b"null", b'"x"', b"\xff\xfe"]),
    st.integers(1, 40).map(lambda n: b'{"puzzle": "' + b"\\" * (2 * n + 1)),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "",
        "application/x-www-form-urlencoded",
    ]
)
QUERY_ENDPOINTS = {
    "/api/run/metrics": ["since", "gen"],
    "/api/dataset/examples": ["split", "page", "per_page"],
    "/api/dataset/example": ["split", "index", "variants"],
}
TEXTS = st.text(max_size=30)
BAD_VALUES = st.one_of(
    st.integers(65, 6000).map(lambda n: "9" * n),
    st.integers(min_value=2**40 + 1).map(str),
    st.integers(max_value=-2).map(str),
    st.sampled_from(["abc", "1e5", "0x10", "", " ", "nan", "../../etc/passwd", "1.5", "%00", "\x00"]),
)


@pytest.fixture(scope="module")
def fuzz_client(env):
    app = create_app(model=env["run"], run_dir=env["run"], data_dir=env["data"])
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        yield c


def check_refused(response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = strict_json(response.text)
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in body["error"] and 'File "' not in body["error"]


@given(
    path=st.sampled_from(
        ["/api/solve", "/api/generate", "/api/agent/play", "/api/agent/finetune", "/api/agent/evaluate"]
    ),
    body=BAD_BODIES,
    ctype=CONTENT_TYPES,
)
@FUZZ
def test_fuzz_bodies(fuzz_client, path, body, ctype):
    headers = {"content-type": ctype} if ctype else {}
    check_refused(fuzz_client.post(path, content=body, headers=headers))


@st.composite
def bad_queries(draw):
    endpoint = draw(st.sampled_from(sorted(QUERY_ENDPOINTS)))
    names = QUERY_ENDPOINTS[endpoint]
    pairs = [(n, draw(TEXTS)) for n in draw(st.lists(st.sampled_from(names), max_size=3, unique=True))]
    flaw = draw(st.sampled_from(["value", "unknown", "repeated", "long_name"]))
    if flaw == "value":
        pairs.append((draw(st.sampled_from([n for n in names if n != "split"])), draw(BAD_VALUES)))
        pairs = [p for p in pairs if p[0] != pairs[-1][0]] + [pairs[-1]]
    elif flaw == "unknown":
        pairs.append(("zz_" + draw(TEXTS), draw(TEXTS)))
    elif flaw == "repeated":
        name = draw(st.sampled_from(names))
        pairs += [(name, draw(TEXTS)), (name, draw(TEXTS))]
    else:
        pairs.append(("q" * draw(st.integers(33, 3000)), "1"))
    return endpoint + "?" + urllib.parse.urlencode(pairs)


@given(url=bad_queries())
@FUZZ
def test_fuzz_queries(fuzz_client, url):
    check_refused(fuzz_client.get(url))


ROUTED = {
    "/api/info",
    "/api/run",
    "/api/dataset",
    "/api/solve",
    "/api/generate",
    "/api/agent/info",
    "/api/agent/play",
    "/api/agent/finetune",
    "/api/agent/evaluate",
    *QUERY_ENDPOINTS,
    *(f"/static/{name}" for name in server.STATIC_FILES),
}


@given(
    prefix=st.sampled_from(
        [
            "/api/",
            "/static/",
            "/api/trace/",
            "/",
            "/api/dataset/",
            "/api/run/",
            "/api/agent/",
            "/api/agent/job/",
        ]
    ),
    tail=st.text(min_size=1, max_size=60),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
)
@FUZZ
def test_fuzz_paths_and_methods(fuzz_client, prefix, tail, method):
    path = prefix + urllib.parse.quote(tail, safe="/%")
    target = urllib.parse.unquote(path)
    hypothesis.assume(not {".", ".."} & set(target.split("/")))  # (the client resolves those)
    hypothesis.assume(target.rstrip("/") not in ROUTED and target != "/")  # (or redirects to them)
    check_refused(fuzz_client.request(method, path))


@given(
    endpoint=st.sampled_from(
        [
            "/api/info",
            "/api/run",
            "/api/dataset",
            "/api/solve",
            "/api/generate",
            "/api/agent/info",
            "/api/agent/play",
            "/api/agent/evaluate",
        ]
    ),
    method=st.sampled_from(["PUT", "DELETE", "PATCH"]),
)
@settings(max_examples=15, deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz_wrong_methods(fuzz_client, endpoint, method):
    check_refused(fuzz_client.request(method, endpoint))


@given(
    endpoint=st.sampled_from(
        ["/", "/static/app.js", "/api/info", "/api/run", "/api/dataset", "/api/trace/x"]
    ),
    host=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
)
@settings(max_examples=40, deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz_host_headers(fuzz_client, endpoint, host):
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    hypothesis.assume(name.lower() not in server.LOCAL_HOSTS)
    check_refused(fuzz_client.get(endpoint, headers={"host": host}))


@given(request=st.binary(min_size=1, max_size=200))
@settings(
    max_examples=30,
    deadline=5000,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_fuzz_raw_http(fuzz_live, request):
    """Bytes that are no HTTP request, sent to a live server: a JSON 4xx, then the connection closes."""
    hypothesis.assume(not request.startswith((b"GET / ", b"HEAD / ")))
    with fuzz_live.connect() as conn:
        conn.sendall(request.replace(b"\r\n\r\n", b"") + b"\r\n\r\n")
        raw, _ = read_until_closed(conn, 4)
    if raw:  # (a request line still incomplete is closed by the head timeout; that may answer 408)
        status, body = status_and_json(raw)
        assert 400 <= status < 500 and set(body) == {"error"}, raw[:300]


@pytest.fixture(scope="module")
def fuzz_live(env):
    limits = server.Limits(head_timeout_s=1, body_timeout_s=1)
    with live(create_app(data_dir=env["data"], limits=limits)) as srv:
        yield srv


# ----------------------------------------------------------------------------------------------
# 3. Load: slow clients and endless solves, then SIGTERM
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_under_load_info_answers_and_sigterm_stops_the_server(env):
    slow_clients, endless_solves = 50, 6
    args = ["--model", str(env["run"]), "--data", str(env["data"]), "--port", "0"]
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "endless_viz.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        cwd=REPO,
    )
    sockets: list[socket.socket] = []
    stop = threading.Event()
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "hrm viz exited before serving"
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            url = found and int(found.group(1))
        assert url is not None
        port = url
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # drain output

        # Slow clients: each sends one more header byte a second, for at most 8 s.
        for _ in range(slow_clients):
            conn = socket.create_connection(("127.0.0.1", port), timeout=5)
            conn.sendall(b"GET /api/info HTTP/1.1\r\n")
            sockets.append(conn)

        def drip():
            for _ in range(8):
                if stop.wait(1):
                    return
                for conn in sockets:
                    with contextlib.suppress(OSError):
                        conn.sendall(b"X")

        threading.Thread(target=drip, daemon=True).start()

        def post_solve():
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            try:
                c.request(
                    "POST",
                    "/api/solve",
                    json.dumps({"puzzle": PUZZLE4}),
                    {"content-type": "application/json"},
                )
                res = c.getresponse()
                return res.status, json.loads(res.read())
            finally:
                c.close()

        def timed_get(path):
            start = time.monotonic()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                c.request("GET", path)
                res = c.getresponse()
                res.read()
                return res.status, time.monotonic() - start
            finally:
                c.close()

        # One call each before the load, so that first-call work (imports, reading the dataset)
        # is not counted against the server under load.
        for path in ("/api/info", "/api/dataset/examples?split=test"):
            assert timed_get(path)[0] == 200
        threads, results = _in_threads(post_solve, endless_solves)
        time.sleep(0.5)

        took = []
        for _ in range(5):
            for path in ("/api/info", "/api/dataset/examples?split=test"):
                status, seconds = timed_get(path)
                assert status == 200
                took.append(seconds)
            time.sleep(0.3)
        assert max(took) < 1, took
        busy = [r for r in results if r is not None and not isinstance(r, Exception)]
        assert len(busy) == endless_solves - 2 and all(r[0] == 503 for r in busy), results

        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        stopped = time.monotonic() - start
        assert stopped < 2, stopped
        for t in threads:
            t.join(timeout=5)
        assert [r[0] for r in results] == [503] * endless_solves, results
        ended = [r for r in results if r[1]["error"] == "the server is shutting down"]
        assert len(ended) == 2  # the two in flight were answered, not cut off
    finally:
        stop.set()
        for conn in sockets:
            conn.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
