"""The viewer's Agent page in a real browser (same setup and launch options as test_browser.py):
watch an episode of the shipped agent (frames advance, the planner's and doer's thoughts shown
with the trace's values), start a fine-tune (its curves get points, it finishes), then see the
base model and the fine-tuned one side by side on the same seed. Needs the agent extra (MiniGrid)."""

from __future__ import annotations

import pytest
from test_browser import Server, _browser_available, browser, page, shoot, wait_ready  # noqa: F401  (fixtures)

pytest.importorskip("minigrid")
pytestmark = pytest.mark.slow

SEED = 1_000_003


@pytest.fixture(scope="module")
def agent_server():
    server = Server([])
    yield server
    server.stop()


def _no_error(pg) -> None:
    if pg.locator("#status.error").count():
        pytest.fail("the page reports: " + pg.inner_text("#status"))
    assert not pg.errors


def test_watch_an_episode_then_fine_tune_and_compare(page, agent_server):  # noqa: F811
    wait_ready(page, agent_server.url + "#agent")
    page.wait_for_selector("#agent-model option[value='agent-unlocklocal']", state="attached")
    page.select_option("#agent-level", "UnlockLocal")
    page.fill("#agent-seed", str(SEED))
    page.select_option("#agent-speed", "20")
    page.click("#agent-play")
    page.wait_for_selector("#agent-player-a .agent-svg")
    trace = page.request.post(
        agent_server.url + "api/agent/play",
        data={"model": "agent-unlocklocal", "level": "UnlockLocal", "seed": SEED},
    ).json()
    # Playing: the frames advance on their own up to the last one.
    last = len(trace["frames"]) - 1
    page.wait_for_selector(f"#agent-player-a .agent-svg[data-t='{last}']")
    _no_error(page)
    # Scrub to step 1 and read the thoughts back: the trace's choices, confidences and the bot's.
    page.click("#agent-first")
    page.click("#agent-next")
    frame = trace["frames"][1]
    legend = trace["legend"]
    page.wait_for_selector("#agent-player-a .agent-svg[data-t='1']")
    assert page.get_attribute("#agent-player-a .agent-svg", "data-agent") == ",".join(
        map(str, frame["agent"])
    )
    doer = page.locator("#agent-player-a .thought.doer")
    assert doer.get_attribute("data-choice") == legend["actions"][frame["action"]]
    assert float(doer.get_attribute("data-confidence")) == pytest.approx(frame["probs"][frame["action"]])
    planner = page.locator("#agent-player-a .thought.planner")
    assert planner.get_attribute("data-choice") == legend["subgoals"][frame["subgoal"]]
    assert float(planner.get_attribute("data-confidence")) == pytest.approx(
        frame["subgoal_probs"][frame["subgoal"]]
    )
    assert "bot: " + legend["subgoals"][frame["bot_subgoal"]] in planner.inner_text()
    assert page.locator("#agent-player-a .agent-svg g[data-object='door']").count() >= 1
    assert page.get_attribute("#agent-player-a", "data-success") == ("1" if trace["success"] else "0")

    # A small fine-tune on the same level from the page: curves fill in, it finishes.
    page.select_option("#ft-level", "UnlockLocal")
    page.fill("#ft-episodes", "5")
    page.fill("#ft-steps", "12")
    page.select_option("#ft-freeze", "H")
    page.click("#ft-start")
    page.wait_for_selector("#ft-chart-loss .series[data-name='action loss']", timeout=120_000)
    page.wait_for_selector("#ft-status[data-status='done']", timeout=300_000)
    _no_error(page)
    assert int(page.get_attribute("#ft-chart-success .series[data-name='success']", "data-n")) >= 2
    for key in ("subgoal_accuracy", "action_accuracy", "success", "steps_vs_bot"):
        value = page.get_attribute(f"#agent-dash .dash-card[data-key='{key}']", "data-value")
        assert value not in (None, ""), key
        assert 0 <= float(value) <= (10 if key == "steps_vs_bot" else 1)

    # Before / after on the same seed.
    assert page.input_value("#agent-model") == "agent-unlocklocal"
    assert page.input_value("#agent-after").startswith("job:")
    page.fill("#agent-seed", str(SEED))
    page.click("#agent-compare")
    page.wait_for_selector("#tab-agent[data-episodes='2']")
    page.wait_for_selector("#agent-player-b .agent-svg")
    assert page.inner_text("#agent-player-a .agent-title").startswith("before: agent-unlocklocal")
    assert page.inner_text("#agent-player-b .agent-title").startswith("after: job:")
    assert f"seed {SEED}" in page.inner_text("#agent-player-b .agent-summary")
    page.click("#agent-toggle")  # pause where it is
    page.click("#agent-first")
    page.click("#agent-next")
    page.click("#agent-next")
    page.wait_for_selector("#agent-player-b .agent-svg[data-t='2']")
    _no_error(page)

    # Generalization: both models on held-out seeds of every level, one row per level.
    page.fill("#gen-episodes", "3")
    page.click("#agent-generalize")
    page.wait_for_selector("#gen-status[data-status='done']", timeout=300_000)
    _no_error(page)
    levels = page.request.get(agent_server.url + "api/agent/info").json()["levels"]
    rows = page.locator("#agent-gen tr[data-level]")
    assert rows.count() == len(levels)
    for i, level in enumerate(levels):
        cells = rows.nth(i).locator("td[data-success]")
        assert rows.nth(i).get_attribute("data-level") == level and cells.count() == 2
        assert all(0 <= float(cells.nth(k).get_attribute("data-success")) <= 1 for k in range(2))
    page.evaluate("window.scrollTo(0, 0)")  # the full-page picture from the top (the header sticks)
    shoot(page, "agent")
