"""`hrm viz` server: every endpoint, request validation, limits, path traversal, error bodies, the
incremental metrics reader and the self-contained export. Models are tiny and random; datasets are
built small in a temporary directory."""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
import warnings

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from hrm import cli as hrm_cli
from hrm.errors import HRMError
from hrm.tasks import task_named
from hrm.viz import cli as viz_cli
from hrm.viz import export, server
from hrm.viz.server import MAX_BODY_BYTES, MetricsTail, create_app
from tiny_models import save_tiny, tiny_config

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`")

BASE = "http://127.0.0.1"
PUZZLE4 = "....32....21...."
MAZE7 = "S#    G\n # # ##\n   #   \n ##### \n # #   \n # # ##\n   #   "
ARC_TASK = {
    "train": [{"input": [[1, 0], [0, 0]], "output": [[0, 1], [0, 0]]}],
    "test": [{"input": [[0, 0], [2, 0]], "output": [[0, 0], [0, 2]]}],
}


def build_data(args: list[str]) -> None:
    assert hrm_cli.main(["data", *args]) == 0


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("viz")
    sudoku_run = save_tiny(root / "sudoku4", tiny_config(16, 6))
    maze_run = save_tiny(root / "maze7", tiny_config(49, 6))
    sudoku_args = "sudoku --size 4 --count 6 --difficulty easy --test-count 5 --num-aug 2 --seed 0"
    build_data([*sudoku_args.split(), "--no-progress", "--out", str(root / "data4")])
    maze_args = "maze --size 7 --count 3 --test-count 4 --aug --seed 0"
    build_data([*maze_args.split(), "--out", str(root / "maze7data")])
    return {
        "root": root,
        "sudoku": sudoku_run,
        "maze": maze_run,
        "data": root / "data4",
        "maze_data": root / "maze7data",
    }


@pytest.fixture(scope="module")
def client(env):
    app = create_app(model=env["sudoku"], run_dir=None, data_dir=env["data"])
    with TestClient(app, base_url=BASE) as c:
        yield c


@pytest.fixture(scope="module")
def bare():
    """No model, run or data."""
    with TestClient(create_app(), base_url=BASE, raise_server_exceptions=False) as c:
        yield c


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert "Traceback" not in body["error"]
    return body["error"]


# ----------------------------------------------------------------------------------------------
# Page and static files
# ----------------------------------------------------------------------------------------------


def test_page_and_static_files(bare):
    page = bare.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/static/app.js" in page.text and "/static/style.css" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for name, ctype in (
        ("app.js", "text/javascript"),
        ("style.css", "text/css"),
        ("index.html", "text/html"),
    ):
        r = bare.get(f"/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(ctype)
    assert bare.head("/static/app.js").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/static/../../etc/passwd",
        "/static/..%2f..%2fetc%2fpasswd",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/static/%252e%252e%252fetc%252fpasswd",
        "/static/..%5c..%5cetc%5cpasswd",
        "/static/app.js%00.png",
        "/static/",
        "/static/server.py",
        "/static/../server.py",
        "/static/%2e%2e%2fserver.py",
        "/../../../../etc/passwd",
        "/etc/passwd",
        "/api/trace/..%2f..%2fetc%2fpasswd",
        "/api/dataset/../../etc/passwd",
    ],
)
def test_path_traversal_is_refused(client, path):
    r = client.get(path)
    assert r.status_code == 404, (path, r.status_code)
    assert "root:" not in r.text and "import" not in r.text
    assert r.json() == {"error": r.json()["error"]}


def test_raw_path_traversal_on_a_live_server(env):
    """The same without an HTTP client that could normalise the path on the way."""
    app = create_app(data_dir=env["data"])
    sock, url = server.bind("127.0.0.1", 0)
    srv = server.make_server(app)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not srv.started and time.monotonic() < deadline:
            time.sleep(0.02)
        port = int(url.rsplit(":", 1)[1].strip("/"))
        for raw in (
            "/static/../../../../etc/passwd",
            "/static/..%2F..%2F..%2Fetc%2Fpasswd",
            "/static/....//....//etc/passwd",
            "/../../../etc/passwd",
            "/static/%2e%2e/viz/server.py",
        ):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(f"GET {raw} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
            status = int(data.split(b" ", 2)[1])
            assert status in (400, 404), (raw, data[:200])
            assert b"root:" not in data and b"def create_app" not in data
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_foreign_host_header_is_refused(bare):
    assert error_of(bare.get("/", headers={"host": "attacker.example"}), 400) == "invalid Host header"
    assert bare.get("/api/info", headers={"host": "localhost:8765"}).status_code == 200


def test_unknown_route_and_method(bare):
    assert error_of(bare.get("/api/nothing"), 404) == "not found"
    assert error_of(bare.get("/api/solve"), 405) == "method not allowed"
    assert bare.post("/api/info", json={}).status_code == 405


# ----------------------------------------------------------------------------------------------
# Info and errors without a model, run or data
# ----------------------------------------------------------------------------------------------


def test_info_without_anything(bare):
    info = bare.get("/api/info").json()
    assert info["model"] is None and info["run"] is None and info["data"] is None
    assert info["limits"]["max_body_bytes"] == MAX_BODY_BYTES


def test_info_describes_the_kinds(bare):
    """The page draws and offers kinds from these descriptions, never from their names."""
    kinds = bare.get("/api/info").json()["kinds"]
    assert [(k["name"], k["style"], k["cell_px"]) for k in kinds] == [
        ("sudoku", "digits", 46),
        ("maze", "path", 30),
        ("arc", "colours", 26),
    ]
    assert kinds == [task_named(k["name"]).describe() for k in kinds]
    sudoku, maze, arc = kinds
    assert sudoku["boxes"] == {"4": [2, 2], "6": [2, 3], "9": [3, 3]}
    assert maze["boxes"] is None and arc["boxes"] is None
    assert sudoku["generate"] == {"sizes": [4, 6, 9], "difficulties": ["easy", "medium", "hard"]}
    assert maze["generate"] == {
        "size_range": [5, 30],
        "difficulties": ["any", "hard"],
        "min_sizes": {"hard": 9},
    }
    assert arc["generate"] is None
    assert [k["json_input"] for k in kinds] == [False, False, True]
    assert all(k["title"] and k["input_hint"] for k in kinds)


def test_described_sizes_and_difficulties_generate(client):
    """Every size and difficulty a description offers is one /api/generate takes, and no other."""
    for kind in client.get("/api/info").json()["kinds"]:
        offer = kind["generate"]
        if offer is None:
            assert "cannot be generated" in error_of(
                client.post("/api/generate", json={"kind": kind["name"], "size": 5}), 422
            )
            continue
        sizes = offer.get("sizes")
        low, high = (min(sizes), max(sizes)) if sizes else offer["size_range"]
        for size in (low - 1, high + 1):
            error_of(client.post("/api/generate", json={"kind": kind["name"], "size": size}), 422)
        # (a 4x4 Sudoku is always easy: the harder ones are asked of the largest size)
        size = high if "sizes" in offer else low
        for difficulty in offer["difficulties"] or [None]:
            least = offer.get("min_sizes", {}).get(difficulty)
            if least is not None:  # a level that needs a larger puzzle says so, and is refused below it
                error_of(client.post("/api/generate", json={"kind": kind["name"], "size": least - 1,
                                                            "difficulty": difficulty}), 422)  # fmt: skip
            body = {"kind": kind["name"], "size": max(size, least or size), "seed": 0}
            if difficulty:
                body["difficulty"] = difficulty
            r = client.post("/api/generate", json=body)
            assert r.status_code == 200, r.text
            assert len(r.json()["grid"]) == body["size"]


def test_no_model_gives_a_clear_error(bare):
    msg = error_of(bare.post("/api/solve", json={"puzzle": PUZZLE4}), 409)
    assert "no model loaded" in msg and "--model" in msg


def test_no_run_and_no_data_give_clear_errors(bare):
    assert "--run" in error_of(bare.get("/api/run"), 409)
    assert "--run" in error_of(bare.get("/api/run/metrics"), 409)
    assert "--data" in error_of(bare.get("/api/dataset"), 409)
    assert "--data" in error_of(bare.get("/api/dataset/examples"), 409)
    assert "--data" in error_of(bare.get("/api/dataset/example?index=0"), 409)


def test_internal_errors_hide_details(bare, monkeypatch):
    def boom(req):
        raise RuntimeError("secret /home/user/path")

    monkeypatch.setattr(server, "_generate_sync", boom)
    msg = error_of(bare.post("/api/generate", json={"kind": "sudoku", "size": 4}), 500)
    assert "secret" not in msg and "internal server error" in msg


def test_unloadable_model_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    with TestClient(create_app(model=tmp_path), base_url=BASE) as c:
        msg = error_of(c.post("/api/solve", json={"puzzle": PUZZLE4}), 503)
        assert "no complete checkpoint" in msg
        info = c.get("/api/info").json()
        assert info["model"] is None and "cannot be loaded" in info["model_error"]


# ----------------------------------------------------------------------------------------------
# Request validation and limits
# ----------------------------------------------------------------------------------------------


def test_malformed_json(client):
    headers = {"content-type": "application/json"}
    assert "not valid JSON" in error_of(client.post("/api/solve", content=b"{puzzle:", headers=headers), 400)
    assert "UTF-8" in error_of(client.post("/api/solve", content=b'{"a": "\xff"}', headers=headers), 400)
    assert "JSON object" in error_of(client.post("/api/solve", content=b"[1, 2]", headers=headers), 422)
    assert "Content-Type" in error_of(
        client.post("/api/solve", content=b"{}", headers={"content-type": "text/plain"}), 415
    )
    assert "Content-Type" in error_of(client.post("/api/solve", data={"puzzle": PUZZLE4}), 415)


def test_invalid_requests(client):
    assert "either 'puzzle'" in error_of(client.post("/api/solve", json={}), 422)
    both = {"puzzle": PUZZLE4, "example": {"split": "test", "index": 0}}
    assert "either 'puzzle'" in error_of(client.post("/api/solve", json=both), 422)
    assert "halt" in error_of(client.post("/api/solve", json={"puzzle": PUZZLE4, "halt": "never"}), 422)
    assert (
        "extra" in error_of(client.post("/api/solve", json={"puzzle": PUZZLE4, "path": "/etc"}), 422).lower()
    )
    assert "kind" in error_of(client.post("/api/solve", json={"puzzle": PUZZLE4, "kind": "chess"}), 422)
    assert "20000" in error_of(client.post("/api/solve", json={"puzzle": "." * 20001}), 422)


def test_oversized_body(client):
    big = json.dumps({"puzzle": "." * (MAX_BODY_BYTES + 10)}).encode()
    assert "64 KB" in error_of(
        client.post("/api/solve", content=big, headers={"content-type": "application/json"}), 413
    )

    def chunks():  # no Content-Length: the server counts while reading
        for _ in range(20):
            yield b" " * 8192
        yield b"{}"

    r = client.post("/api/solve", content=chunks(), headers={"content-type": "application/json"})
    assert "64 KB" in error_of(r, 413)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"puzzle": "1234", "kind": "sudoku"}, "16, 36 or 81"),
        ({"puzzle": "....32....21...x", "kind": "sudoku"}, "not allowed"),
        ({"puzzle": "11..............", "kind": "sudoku"}, "contradictory"),
        ({"puzzle": "/etc/passwd", "kind": "sudoku"}, "cells"),
        ({"puzzle": "/etc/passwd"}, "cells"),
        ({"puzzle": "#" * 31 * 31, "kind": "maze"}, "at most 30x30"),
        ({"puzzle": "\n".join(["S" + "#" * 30 + "G"] * 32), "kind": "maze"}, "at most 30x30"),
        ({"puzzle": "#####\n#   #\n#   #\n#  G#\n#####", "kind": "maze"}, "'S'"),
        ({"puzzle": "." * 81, "kind": "sudoku"}, "does not fit"),
        ({"puzzle": "{not json", "kind": "arc"}, "not valid JSON"),
        ({"puzzle": {"train": [], "test": []}}, "non-empty"),
        (
            {"puzzle": {"train": [{"input": [[0] * 31] * 31, "output": [[0]]}], "test": [{"input": [[0]]}]}},
            "30x30",
        ),
        (
            {"puzzle": {"train": [{"input": [[0]], "output": [[0]]}] * 17, "test": [{"input": [[0]]}]}},
            "at most 16",
        ),
        ({"puzzle": ARC_TASK}, "does not fit"),
        ({"puzzle": {"a": 1}, "kind": "sudoku"}, "is text"),
    ],
)
def test_bad_puzzles(client, body, needle):
    assert needle in error_of(client.post("/api/solve", json=body), 422)


def test_generate_validation(client):
    assert "4x4, 6x6 or 9x9" in error_of(
        client.post("/api/generate", json={"kind": "sudoku", "size": 5}), 422
    )
    assert "size" in error_of(client.post("/api/generate", json={"kind": "maze", "size": 31}), 422)
    assert "kind" in error_of(client.post("/api/generate", json={"kind": "arc", "size": 5}), 422)


def test_query_validation(client):
    assert "split" in error_of(client.get("/api/dataset/examples?split=../../etc"), 422)
    assert "per_page" in error_of(client.get("/api/dataset/examples?per_page=1000"), 422)
    assert "index" in error_of(client.get("/api/dataset/example?index=-1"), 422)
    assert "index" in error_of(client.get("/api/dataset/example?index=abc"), 422)
    assert "repeated" in error_of(client.get("/api/dataset/example?index=1&index=2"), 422)
    assert "extra" in error_of(client.get("/api/dataset/example?index=1&path=/etc"), 422).lower()


# ----------------------------------------------------------------------------------------------
# Solving
# ----------------------------------------------------------------------------------------------


def test_info_with_model_and_data(client):
    info = client.get("/api/info").json()
    m = info["model"]
    assert (m["seq_len"], m["vocab_size"], m["kind"], m["side"]) == (16, 6, "sudoku", 4)
    assert info["data"]["splits"]["test"]["kind"] == "sudoku"
    assert info["data"]["splits"]["test"]["examples"] == 5


def test_solve_sudoku_with_trace(client):
    r = client.post("/api/solve", json={"puzzle": PUZZLE4, "kind": "sudoku", "halt": "max"})
    assert r.status_code == 200, r.text
    out = r.json()
    trace = out["trace"]
    assert trace["kind"] == "sudoku" and trace["halt"] == "max"
    assert len(trace["segments"]) == 3
    assert [s["kind"] for s in trace["segments"][0]["steps"]] == ["L", "L", "H", "L", "L", "H"]
    ann = out["annotations"]
    assert ann["expected"] == [[1, 4, 3, 2], [3, 2, 1, 4], [4, 3, 2, 1], [2, 1, 4, 3]]
    assert ann["expected_source"] == "solver"
    assert len(ann["checks"]) == 3 and all(set(c) == {"valid", "reason"} for c in ann["checks"])
    assert out["solution"]["segments"] == 3
    jsonschema = pytest.importorskip("jsonschema")
    from hrm.inference import trace_schema

    jsonschema.validate(trace, trace_schema())
    again = client.get(f"/api/trace/{out['id']}")
    assert again.status_code == 200 and again.json() == trace
    assert "no such trace" in error_of(client.get("/api/trace/0123456789abcdef"), 404)


def test_solve_kind_is_told_from_the_text(client):
    out = client.post("/api/solve", json={"puzzle": "1...|..2.\n.3..|...4"}).json()
    assert out["trace"]["kind"] == "sudoku"
    assert out["trace"]["puzzle"]["grid"][0] == [1, 0, 0, 0]


def test_solve_dataset_example_uses_its_label(client):
    page = client.get("/api/dataset/examples?split=test&page=0&per_page=3").json()
    item = page["items"][1]
    out = client.post("/api/solve", json={"example": {"split": "test", "index": 1}}).json()
    assert out["annotations"]["expected"] == item["label"]
    assert out["annotations"]["expected_source"] == "dataset label"
    assert out["trace"]["puzzle"]["grid"] == item["input"]
    assert out["example"] == {"split": "test", "index": 1, "name": item["name"]}
    assert "out of range" in error_of(
        client.post("/api/solve", json={"example": {"split": "test", "index": 99}}), 404
    )
    assert "no split" in error_of(
        client.post("/api/solve", json={"example": {"split": "nope", "index": 0}}), 404
    )


def test_solve_maze(env):
    with TestClient(create_app(model=env["maze"], data_dir=env["maze_data"]), base_url=BASE) as c:
        info = c.get("/api/info").json()
        assert info["model"]["kind"] == "maze" and info["model"]["side"] == 7
        out = c.post("/api/solve", json={"puzzle": MAZE7}).json()
        trace = out["trace"]
        assert trace["kind"] == "maze" and trace["puzzle"]["grid"][0] == list("S#    G")
        expected = out["annotations"]["expected"]
        assert expected[0] == list("S#ooooG")  # the solver's shortest path
        assert out["annotations"]["expected_source"].startswith("solver")
        open_top = "       \n # # ##\nS  #  G\n ##### \n # #   \n # # ##\n   #   "
        top = c.post("/api/solve", json={"puzzle": open_top, "kind": "maze"}).json()
        assert top["trace"]["puzzle"]["grid"][0] == [" "] * 7
        ex = c.post("/api/solve", json={"example": {"split": "test", "index": 2}}).json()
        assert ex["annotations"]["expected_source"] == "dataset label"
        assert sum(row.count("o") for row in ex["annotations"]["expected"]) > 0
        assert "does not fit" in error_of(
            c.post("/api/solve", json={"puzzle": PUZZLE4, "kind": "sudoku"}), 422
        )


def test_solve_arc_task(tmp_path):
    run = save_tiny(tmp_path / "arc", tiny_config(900, 12, halt_max_steps=2))
    with TestClient(create_app(model=run), base_url=BASE) as c:
        r = c.post("/api/solve", json={"puzzle": json.dumps(ARC_TASK), "max_views": 2})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["trace"]["kind"] == "arc"
        assert out["trace"]["puzzle"]["grid"] == [[0, 0], [2, 0]]
        assert out["annotations"]["expected"] == [[0, 0], [0, 2]]
        assert out["annotations"]["checks"][0]["valid"] in (True, False)


# ----------------------------------------------------------------------------------------------
# Generating
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [4, 6])
def test_generate_sudoku(client, size):
    out = client.post("/api/generate", json={"kind": "sudoku", "size": size, "seed": 1}).json()
    assert len(out["grid"]) == size and len(out["text"]) == size * size
    from hrm.data.sudoku import is_valid_solution

    flat = [v for row in out["solution"] for v in row]
    given = [v for row in out["grid"] for v in row]
    assert is_valid_solution(flat, given)
    again = client.post("/api/generate", json={"kind": "sudoku", "size": size, "seed": 1}).json()
    assert again["text"] == out["text"]


def test_generate_maze(client):
    out = client.post("/api/generate", json={"kind": "maze", "size": 9, "seed": 3}).json()
    assert len(out["grid"]) == 9 and out["text"].count("S") == 1 and out["text"].count("G") == 1
    assert any("o" in row for row in out["solution"])
    assert out["difficulty"] == "any"


@pytest.mark.parametrize("size", [9, 11, 30])
def test_generate_hard_maze(client, size):
    """A hard maze's path is as long as `hrm data maze --hard` asks of its size."""
    from hrm.data.maze import hard_min_path_length

    for seed in range(3):
        body = {"kind": "maze", "size": size, "difficulty": "hard", "seed": seed}
        out = client.post("/api/generate", json=body).json()
        assert out["difficulty"] == "hard"
        path_cells = sum(row.count("o") for row in out["solution"])
        assert path_cells + 1 >= hard_min_path_length(size)  # moves = path cells + 1
    msg = error_of(client.post("/api/generate", json={**body, "difficulty": "extreme"}), 422)
    assert "'extreme' is not one of any, hard" in msg


# ----------------------------------------------------------------------------------------------
# Dataset browser
# ----------------------------------------------------------------------------------------------


def test_dataset_summary_and_pages(client):
    summary = client.get("/api/dataset").json()
    assert set(summary["splits"]) == {"train", "test"}
    assert summary["splits"]["train"]["examples"] == 18  # 6 puzzles x (1 + 2 augmentations)
    page = client.get("/api/dataset/examples?split=train&page=1&per_page=4").json()
    assert page["pages"] == 5 and page["total"] == 18
    assert [it["index"] for it in page["items"]] == [4, 5, 6, 7]
    item = page["items"][0]
    assert len(item["input"]) == 4 and len(item["label"]) == 4
    assert all(v != 0 for row in item["label"] for v in row)
    assert "out of range" in error_of(client.get("/api/dataset/examples?split=train&page=5&per_page=4"), 404)
    assert "no split" in error_of(client.get("/api/dataset/examples?split=valid"), 404)


def test_dataset_example_with_variants(client):
    ex = client.get("/api/dataset/example?split=train&index=4&variants=8").json()
    assert ex["group"] == 1 and ex["group_size"] == 3
    assert sorted(v["index"] for v in ex["variants"]) == [3, 5]
    assert ex["input"] != ex["variants"][0]["input"]  # an augmented view
    counts = lambda g: sorted(v for row in g for v in row if v)  # noqa: E731
    assert len(counts(ex["label"])) == len(counts(ex["variants"][0]["label"])) == 16
    assert "out of range" in error_of(client.get("/api/dataset/example?split=train&index=18"), 404)
    assert client.get("/api/dataset/example?split=train&index=4&variants=0").json()["variants"] == []


def test_bad_dataset_dir_fails_at_start(tmp_path):
    with pytest.raises(HRMError, match="not a dataset directory"):
        create_app(data_dir=tmp_path)
    with pytest.raises(HRMError, match="not a directory"):
        create_app(data_dir=tmp_path / "missing")


# ----------------------------------------------------------------------------------------------
# Run: metrics read incrementally
# ----------------------------------------------------------------------------------------------


def test_metrics_tail_reads_only_new_bytes(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.since(0, -1)["exists"] is False
    path.write_text('{"step": 1, "kind": "train", "lm_loss": 2.0}\n{"step": 2, "kind": "tr')
    first = tail.since(0, -1)
    assert first["reset"] and [r["step"] for r in first["records"]] == [1]
    assert tail.offset == path.stat().st_size  # the partial line is held, not re-read
    gen = first["gen"]
    with path.open("a") as f:
        f.write(
            'ain", "lm_loss": 1.5}\nnot json\n{"step": 3, "kind": "eval", "all": {"exact_accuracy": 0.5}}\n'
        )
    more = tail.since(1, gen)
    assert not more["reset"] and [r["step"] for r in more["records"]] == [2, 3]
    assert more["total"] == 3 and more["skipped_lines"] == 1
    assert tail.since(3, gen)["records"] == []
    path.write_text('{"step": 1, "kind": "train", "lm_loss": NaN}\n')  # a resumed run rewrote it
    after = tail.since(3, gen)
    assert (
        after["reset"]
        and after["gen"] != gen
        and after["records"] == [{"step": 1, "kind": "train", "lm_loss": None}]
    )


def test_run_endpoints(env, tmp_path):
    run = save_tiny(tmp_path / "run", tiny_config(16, 6))
    (run / "config.yaml").write_text("lr: 0.001\narch:\n  name: hrm\n")
    with TestClient(create_app(run_dir=run), base_url=BASE) as c:
        info = c.get("/api/run").json()
        assert info["name"] == "run" and info["config"]["lr"] == 0.001
        assert info["checkpoints"] == ["step_0000001"] and info["metrics"] is False
        # Without --model the run's latest checkpoint solves.
        assert c.get("/api/info").json()["model"]["seq_len"] == 16
        assert c.get("/api/run/metrics").json()["records"] == []
        with (run / "metrics.jsonl").open("a") as f:
            for step in (10, 20):
                f.write(json.dumps({"step": step, "kind": "train", "lm_loss": 1.0 / step, "lr": 1e-4}) + "\n")
        got = c.get("/api/run/metrics?since=0&gen=-1").json()
        assert [r["step"] for r in got["records"]] == [10, 20] and got["reset"]
        with (run / "metrics.jsonl").open("a") as f:
            f.write(json.dumps({"step": 20, "kind": "eval", "all": {"exact_accuracy": 0.25}}) + "\n")
        newer = c.get(f"/api/run/metrics?since=2&gen={got['gen']}").json()
        assert not newer["reset"] and newer["records"] == [
            {"step": 20, "kind": "eval", "all": {"exact_accuracy": 0.25}}
        ]
        assert "since" in error_of(c.get("/api/run/metrics?since=-4"), 422)
    with pytest.raises(HRMError, match="not a directory"):
        create_app(run_dir=tmp_path / "missing")


# ----------------------------------------------------------------------------------------------
# Export and CLI
# ----------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hrm")
    viz_cli.register(parser.add_subparsers())
    return parser


def test_export_writes_a_self_contained_page(client, tmp_path, capsys):
    trace = client.post("/api/solve", json={"puzzle": PUZZLE4, "kind": "sudoku"}).json()["trace"]
    trace["puzzle"]["name"] = "</script><script>alert(1)</script>"
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(trace))
    args = _parser().parse_args(["viz", "--export", str(path), "--out", str(tmp_path / "page.html")])
    assert args.handler(args) == 0
    assert "wrote" in capsys.readouterr().out
    html = (tmp_path / "page.html").read_text()
    assert "/static/" not in html and 'rel="stylesheet"' not in html and 'src="' not in html
    assert "/api/" not in html.split('id="hrm-embedded-trace"')[0]
    assert html.count("</script>") == 2 and "<script>alert(1)" not in html
    start = html.index('id="hrm-embedded-trace">') + len('id="hrm-embedded-trace">')
    payload = json.loads(html[start : html.index("</script>", start)])
    assert payload["trace"] == trace
    assert payload["kinds"] == client.get("/api/info").json()["kinds"]  # the offline page draws alike
    assert payload["annotations"]["expected"] == [[1, 4, 3, 2], [3, 2, 1, 4], [4, 3, 2, 1], [2, 1, 4, 3]]
    # The default --out is the trace's name with .html.
    args = _parser().parse_args(["viz", "--export", str(path)])
    args.handler(args)
    assert (tmp_path / "trace.html").is_file()


def test_export_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": "2.0"}')
    with pytest.raises(HRMError, match=r"not 1\.x"):
        export.export_html(bad, tmp_path / "x.html")
    bad.write_text("{oops")
    with pytest.raises(HRMError, match="invalid JSON"):
        export.export_html(bad, tmp_path / "x.html")
    with pytest.raises(HRMError, match="no such trace"):
        export.export_html(tmp_path / "missing.json", tmp_path / "x.html")
    parser = _parser()
    for argv, needle in (
        (["viz", "--out", "x.html"], "--out goes with --export"),
        (["viz", "--export", str(bad), "--model", "m"], "takes no --model"),
        (["viz", "--export", str(bad), "--out", str(bad)], "overwrite the trace"),
        (["viz", "--port", "70000"], "--port"),
        (["viz", "--deadline", "0"], "--deadline"),
    ):
        args = parser.parse_args(argv)
        with pytest.raises(HRMError, match=needle):
            args.handler(args)
    assert not (tmp_path / "x.html").exists()


def test_annotations_check_every_segment():
    grid = [[0, 0, 0, 0], [3, 2, 0, 0], [0, 0, 2, 1], [0, 0, 0, 0]]
    solution = [[1, 4, 3, 2], [3, 2, 1, 4], [4, 3, 2, 1], [2, 1, 4, 3]]
    trace = {"kind": "sudoku", "puzzle": {"grid": grid}, "segments": [{"answer": grid}, {"answer": solution}]}
    ann = export.annotate(trace)
    assert ann["expected"] == solution
    assert [c["valid"] for c in ann["checks"]] == [False, True]
    maze = [list(r) for r in MAZE7.split("\n")]
    maze_task, arc = task_named("maze"), task_named("arc")
    path = maze_task.solver_answer(maze)[0]
    assert maze_task.check_grid(maze, path, path) == {"valid": True, "reason": None}
    assert maze_task.check_grid(maze, [["?"] * 7] * 7, path)["valid"] is False
    assert arc.check_grid([[1]], [[1, 2]], [[1]])["reason"].startswith("the answer is 1x2")
    assert arc.check_grid([[1]], [[1]], None) == {"valid": None, "reason": None}
