"""The viewer's Agent page API: watch an episode of a BabyAI agent, and fine-tune one in a
background worker with live curves.

    GET  /api/agent/info          whether the agent extra is installed, the levels, the models
    POST /api/agent/play          {model, level, seed, ablation, max_steps} -> an episode trace
                                  (hrm/agent/trace_schema.json)
    POST /api/agent/finetune      {model, level, episodes, steps, freeze, hierarchy} -> {job}: bot
                                  demos, then behaviour cloning from `model` in a background thread
                                  (hierarchy false: the flat baseline of the same size, from scratch)
    GET  /api/agent/job/{job}     {status, records (metrics.jsonl's), error, model}
    POST /api/agent/evaluate      {model, level, episodes} -> success and steps vs the bot on
                                  held-out seeds of the level (the page's generalization view)

A model is a packaged agent's name or `job:<id>` (a finished fine-tune): the page never names a
path on the server. Everything the page draws (symbols, colours, actions, sub-goals) comes from
the trace's `legend`.
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hrm.checkpoint import PACKAGED_DIR
from hrm.viz.server import ApiError, StrictRequest, json_body, json_response, run_work

MAX_JOBS = 4
MAX_GENERALIZATION_EPISODES = 100  # per level and request: a few seconds of work


def available() -> bool:
    try:
        import minigrid  # noqa: F401
    except ImportError:
        return False
    return True


def packaged_agents() -> list[str]:
    if not PACKAGED_DIR.is_dir():
        return []
    out = []
    for d in sorted(PACKAGED_DIR.iterdir()):
        card = d / "model.json"
        if card.is_file() and '"hrm-agent"' in card.read_text():
            out.append(d.name)
    return out


@dataclass
class FineTune:
    id: str
    base: str
    level: str
    episodes: int = 0
    freeze: str | None = None
    hierarchy: bool = True
    from_scratch: bool = False
    status: str = "demos"  # demos -> training -> done | failed
    records: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    run_dir: Path | None = None
    tmp: Any = None


class AgentState:
    def __init__(self) -> None:
        self.jobs: dict[str, FineTune] = {}
        self.lock = threading.Lock()

    def resolve(self, model: str) -> str:
        if model.startswith("job:"):
            job = self.jobs.get(model[4:])
            if job is None or job.status != "done" or job.run_dir is None:
                raise ApiError(404, f"no finished fine-tune {model}")
            return str(job.run_dir)
        if model not in packaged_agents():
            raise ApiError(404, f"unknown agent model {model!r}; packaged: {', '.join(packaged_agents())}")
        return model


def _agents(request: Request) -> AgentState:
    state = getattr(request.app.state, "agent", None)
    if state is None:
        state = request.app.state.agent = AgentState()
    return state


def _need_agent() -> None:
    if not available():
        raise ApiError(501, "the agent needs MiniGrid: pip install 'hierarchical-reasoning-model[agent]'")


class PlayRequest(StrictRequest):
    model: str = Field(default="agent-unlocklocal", max_length=80)
    level: str = Field(default="UnlockLocal", max_length=40, pattern=r"^[A-Za-z0-9-]+$")
    seed: int = Field(default=1_000_000, ge=0, le=2**31 - 1)
    ablation: Literal["reset_H", "reset_L", "reset_both"] | None = None
    max_steps: int = Field(default=300, ge=1, le=1000)


class FineTuneRequest(StrictRequest):
    model: str = Field(default="agent-unlocklocal", max_length=80)
    level: str = Field(default="UnlockLocal", max_length=40, pattern=r"^[A-Za-z0-9-]+$")
    episodes: int = Field(default=100, ge=2, le=2000)
    steps: int = Field(default=100, ge=1, le=5000)
    freeze: Literal["H", "L"] | None = None
    hierarchy: bool = True
    eval_episodes: int = Field(default=20, ge=1, le=200)


class EvaluateRequest(StrictRequest):
    model: str = Field(default="agent-unlocklocal", max_length=80)
    level: str = Field(default="UnlockLocal", max_length=40, pattern=r"^[A-Za-z0-9-]+$")
    episodes: int = Field(default=30, ge=1, le=MAX_GENERALIZATION_EPISODES)


async def info(request: Request) -> Response:
    from hrm.agent import world

    ok = available()
    return json_response(
        {
            "available": ok,
            "levels": list(world.AGENT_LEVELS),
            "models": packaged_agents() if ok else [],
            "jobs": {k: j.status for k, j in _agents(request).jobs.items()},
        }
    )


async def play_endpoint(request: Request) -> Response:
    _need_agent()
    req = await json_body(request, PlayRequest)
    agents = _agents(request)
    source = agents.resolve(req.model)

    def run(job: Any) -> dict[str, Any]:
        from hrm.agent.play import play
        from hrm.agent.policy import load_policy

        policy = load_policy(source).policy
        return play(
            policy, req.level, req.seed, ablation=req.ablation, model=req.model, max_steps=req.max_steps
        )

    return json_response(await run_work(request, run))


async def evaluate_endpoint(request: Request) -> Response:
    _need_agent()
    req = await json_body(request, EvaluateRequest)
    source = _agents(request).resolve(req.model)

    def run(job: Any) -> dict[str, Any]:
        from hrm.agent import demos, world
        from hrm.agent.evaluate import run_episodes, summarize
        from hrm.agent.policy import load_policy

        loaded = load_policy(source)
        held_out = demos.generate(req.level, req.episodes, split="test", progress=False)
        seeds = held_out.seeds.tolist()
        summary = summarize(run_episodes(loaded.policy, req.level, seeds, shadow=False), held_out.bot_steps())
        trained_on = loaded.extra.get("level")
        return {
            "model": req.model,
            "level": world.level_name(req.level),
            "trained_on": trained_on if isinstance(trained_on, str) else None,
            "episodes": len(seeds),
            "seed_first": seeds[0] if seeds else None,
            "success": summary["success"],
            "mean_steps": summary["mean_steps"],
            "steps_vs_bot": summary.get("steps_vs_bot"),
        }

    return json_response(await run_work(request, run))


def _finetune(job: FineTune, req: FineTuneRequest, source: str) -> None:
    from hrm.agent import demos
    from hrm.agent.train import fine_tune_config, train

    try:
        job.tmp = tempfile.TemporaryDirectory(prefix="hrm-agent-ft-")
        root = Path(job.tmp.name)
        ds = demos.generate(req.level, req.episodes, progress=False)
        demos.save(ds, root / "demos")
        held_out = demos.generate(req.level, req.eval_episodes, split="test", progress=False)
        demos.save(held_out, root / "demos-test")
        job.status = "training"
        cfg = fine_tune_config(
            source,
            root / "demos",
            root / "run",
            level=req.level,
            steps=req.steps,
            hierarchy=req.hierarchy,
            freeze=req.freeze,
            eval_demos=root / "demos-test",
            overrides=[
                "lr_warmup_steps=1",
                f"log_interval={max(1, min(5, req.steps // 10))}",
                f"eval_interval={max(1, req.steps // 4)}",
                f"eval_episodes={req.eval_episodes}",
            ],
        )
        job.from_scratch = cfg.init_from is None  # the other architecture cannot take the weights
        result = train(cfg, on_log=job.records.append)
        job.run_dir = result.run_dir
        job.status = "done"
    except Exception as exc:  # reported to the page
        job.error = f"{type(exc).__name__}: {exc}"
        job.status = "failed"


async def finetune_endpoint(request: Request) -> Response:
    _need_agent()
    req = await json_body(request, FineTuneRequest)
    agents = _agents(request)
    source = agents.resolve(req.model)
    with agents.lock:
        if sum(j.status in ("demos", "training") for j in agents.jobs.values()) >= 1:
            raise ApiError(503, "a fine-tune is already running; wait for it to finish")
        while len(agents.jobs) >= MAX_JOBS:
            oldest = next(iter(agents.jobs))
            agents.jobs.pop(oldest)
        if req.freeze and not req.hierarchy:
            raise ApiError(400, "freeze=H|L needs the hierarchy (the flat model has no planner or doer)")
        job = FineTune(
            id=uuid.uuid4().hex[:12],
            base=req.model,
            level=req.level,
            episodes=req.episodes,
            freeze=req.freeze,
            hierarchy=req.hierarchy,
        )
        agents.jobs[job.id] = job
    threading.Thread(target=_finetune, args=(job, req, source), daemon=True).start()
    return json_response({"job": job.id})


async def job_endpoint(request: Request) -> Response:
    job = _agents(request).jobs.get(request.path_params["job"])
    if job is None:
        raise ApiError(404, "no such fine-tune job")
    return json_response(
        {
            "job": job.id,
            "status": job.status,
            "base": job.base,
            "level": job.level,
            "episodes": job.episodes,
            "freeze": job.freeze,
            "hierarchy": job.hierarchy,
            "from_scratch": job.from_scratch,
            "records": job.records,
            "error": job.error,
            "model": f"job:{job.id}" if job.status == "done" else None,
        }
    )


def routes() -> list[Route]:
    return [
        Route("/api/agent/info", info, methods=["GET"]),
        Route("/api/agent/play", play_endpoint, methods=["POST"]),
        Route("/api/agent/finetune", finetune_endpoint, methods=["POST"]),
        Route("/api/agent/job/{job:str}", job_endpoint, methods=["GET"]),
        Route("/api/agent/evaluate", evaluate_endpoint, methods=["POST"]),
    ]
