from __future__ import annotations

import json
import time

import jsonschema
import pytest

pytest.importorskip("httpx")
from starlette.testclient import TestClient

from hrm.agent.play import AGENT_TRACE_SCHEMA
from hrm.viz.server import create_app

BASE = "http://127.0.0.1"


def test_the_agent_api_plays_the_packaged_agent_and_refuses_unknown_models():
    with TestClient(create_app(), base_url=BASE) as c:
        info = c.get("/api/agent/info").json()
        assert info["available"] and "agent-unlocklocal" in info["models"] and "UnlockLocal" in info["levels"]
        r = c.post("/api/agent/play", json={"model": "agent-unlocklocal", "seed": 1000002, "max_steps": 60})
        assert r.status_code == 200
        trace = r.json()
        jsonschema.validate(trace, json.loads(AGENT_TRACE_SCHEMA.read_text()))
        assert trace["success"] and trace["seed"] == 1000002
        bad = c.post("/api/agent/play", json={"model": "/etc/passwd"})
        assert bad.status_code == 404 and "unknown agent model" in bad.json()["error"]
        assert c.post("/api/agent/play", json={"seed": -1}).status_code == 422
        assert c.get("/api/agent/job/nope").status_code == 404


def test_the_agent_api_measures_success_on_held_out_seeds_of_another_level():
    with TestClient(create_app(), base_url=BASE) as c:
        r = c.post("/api/agent/evaluate", json={"level": "UnlockLocalDist", "episodes": 6})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["level"] == "UnlockLocalDist" and out["trained_on"] == "UnlockLocal"
        assert out["episodes"] == 6 and out["seed_first"] == 1_000_000 and 0 <= out["success"] <= 1
        assert c.post("/api/agent/evaluate", json={"episodes": 101}).status_code == 422
        assert c.post("/api/agent/evaluate", json={"level": "NoSuchLevel"}).status_code in (400, 422)
        assert c.post("/api/agent/evaluate", json={"model": "job:nope"}).status_code == 404


@pytest.mark.slow
def test_a_fine_tune_runs_in_the_background_with_live_records_and_can_then_be_played():
    with TestClient(create_app(), base_url=BASE) as c:
        r = c.post("/api/agent/finetune", json={"episodes": 4, "steps": 10, "freeze": "H"})
        assert r.status_code == 200
        job = r.json()["job"]
        busy = c.post("/api/agent/finetune", json={"episodes": 4, "steps": 10})
        assert busy.status_code == 503
        deadline = time.monotonic() + 300
        while True:
            state = c.get(f"/api/agent/job/{job}").json()
            if state["status"] in ("done", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert state["status"] == "done", state["error"]
        assert any(rec["kind"] == "train" for rec in state["records"])
        played = c.post("/api/agent/play", json={"model": state["model"], "max_steps": 40})
        assert played.status_code == 200 and played.json()["model"] == f"job:{job}"
