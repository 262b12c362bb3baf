"""The status page in headless Chromium while the real scheduler installs on a DevCluster.

The synthetic Docker and CNI steps are slowed and the restart budget is 1, so the rollout
goes agent by agent for a few seconds: long enough to load the page, see it change on its
own, and save a screenshot of a half-done rollout to build/screenshots/status-page.png.
"""

import contextlib
import tempfile
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.api.operator_harness import operator_service
from tests.helpers.wait import wait_until
from tests.integration.harness import running_cluster

SCREENSHOT = Path(__file__).resolve().parents[2] / "build" / "screenshots" / "status-page.png"
SLOW_STEPS = {"calico-docker": 0.8, "calico-cni": 0.8}
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,820",
)


@contextlib.contextmanager
def chromium():
    """Debian's chromium and chromedriver, with a fresh profile and no network of its own."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        browser = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
        try:
            yield browser
        finally:
            browser.quit()


# The page redraws itself every refresh, so elements go stale: read it in one script call.
READ_TABLE = """
return Array.from(document.querySelectorAll('#rows tr')).map((row) => ({
  agent: row.dataset.agent,
  phase: row.querySelector('td.phase').textContent,
  steps: Array.from(row.querySelectorAll('td.step')).map((td) => td.textContent),
}));
"""


READ_PAGE = """
const texts = (selector) => Array.from(document.querySelectorAll(selector), (e) => e.textContent);
return {
  headers: texts('#head th'),
  conditions: texts('.condition.on'),
  message: document.getElementById('message').textContent,
  warnings: document.getElementById('warnings').textContent,
  legend: document.querySelectorAll('#legend li').length,
};
"""


def table(browser) -> list[dict]:
    return browser.execute_script(READ_TABLE)


def phase_statuses(browser) -> list[str]:
    return [row["phase"] for row in table(browser)]


@pytest.fixture
def half_done_rollout(tmp_path):
    with (
        running_cluster(agents=3, public_agents=1, synthetic_durations=SLOW_STEPS) as cluster,
        operator_service(cluster, tmp_path, etcd_run_proxy="true") as (_, url),
    ):
        yield cluster, url


def test_page_follows_a_rollout_and_shows_it_half_done(half_done_rollout):
    cluster, url = half_done_rollout
    with chromium() as browser:
        browser.get(f"{url}/?refresh=0.2")

        wait_until(lambda: len(phase_statuses(browser)) == 4, 10, "a row per agent")
        first = table(browser)
        wait_until(lambda: table(browser) != first, 10, "the page to change on its own")
        wait_until(
            lambda: 1 <= phase_statuses(browser).count("COMPLETE") < 4, 10, "a half-done rollout"
        )
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOT))

        assert {row["agent"] for row in table(browser)} == {a.agent_id for a in cluster.agents}
        page = browser.execute_script(READ_PAGE)
        assert page["headers"][1:6] == ["etcd-proxy", "docker", "cni", "libnetwork", "node"]
        assert page["conditions"] == ["Progressing"]
        assert "agents done" in page["message"]
        assert "rp_filter" in page["warnings"]
        assert page["legend"] == 9  # dcos-commons' 8 statuses and FORCED

        browser.get(f"{url}/?refresh=0.2&limit=3&offset=3")  # the last page of 3 agents each
        wait_until(lambda: len(phase_statuses(browser)) == 1, 10, "one row on the last page")
        paged = browser.execute_script(READ_PAGER)
        assert paged["pager"] == "Agents 4–4 of 4 · ‹ previous"
        assert paged["previous"].endswith("offset=0")
        assert paged["max"] == "4"  # the progress counts every agent, not the page's

        gone = next(a for a in cluster.agents if not a.public)  # its machine dies
        cluster.remove_agent(gone.agent_id)
        browser.get(f"{url}/?refresh=0.2")
        listed = wait_until(
            lambda: gone.hostname in (text := browser.execute_script(READ_GONE)) and text,
            10, "the agent gone from the cluster listed, not vanished",
        )  # fmt: skip
    assert SCREENSHOT.stat().st_size > 10_000
    assert "unreachable since " in listed or "gone from the cluster since " in listed


READ_GONE = "return document.getElementById('gone').textContent;"


READ_PAGER = """
const link = document.querySelector('#pager a');
return {
  pager: document.getElementById('pager').textContent,
  previous: link ? link.search : '',
  max: document.getElementById('progress').getAttribute('aria-valuemax'),
};
"""


# Where the page's own requests went, and how its stylesheet and footer links resolved.
READ_RESOURCES = """
return {
  fetched: performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname),
  links: Array.from(document.querySelectorAll('footer a'), (a) => a.href),
  styled: getComputedStyle(document.querySelector('header')).display,
};
"""


def test_page_works_under_admin_routers_service_prefix(half_done_rollout):
    """DC/OS serves the page at /service/<name>/ (Admin Router, tests/web/adminrouter.py):
    the stylesheet, the script, the status fetch and the footer links must all stay there."""
    import requests

    from tests.web.adminrouter import admin_router

    _, url = half_done_rollout
    with admin_router({"calico-net": url}) as router, chromium() as browser:
        browser.get(f"{router.url}/service/calico-net?refresh=0.2")  # redirected to …/ first

        wait_until(lambda: len(phase_statuses(browser)) == 4, 10, "a row per agent")
        page = browser.execute_script(READ_RESOURCES)
        prefix = "/service/calico-net/"
        assert browser.current_url.startswith(router.service_url("calico-net"))
        assert {f"{prefix}static/status.css", f"{prefix}static/status.js"} <= set(page["fetched"])
        assert f"{prefix}v1/status" in page["fetched"]
        assert page["styled"] == "flex", "status.css did not apply"
        assert [link.removeprefix(router.url) for link in page["links"]] == [
            f"{prefix}{path}"
            for path in ("v1/plan", "v1/agents", "v1/options", "metrics", "v1/health")
        ]
        for link in page["links"]:
            assert requests.get(link, timeout=10).status_code in (200, 202), link
        outside = [p for p in router.paths if not p.startswith("/service/calico-net")]
        assert outside == [] or outside == ["/favicon.ico"], outside


# A row as a person (and a screen reader) meets it: cells' words, their labels, the "Now" text.
READ_ROW = """
const row = document.querySelector(`#rows tr[data-agent="${arguments[0]}"]`);
if (!row) return null;
const docker = row.querySelector('td.step[data-step="docker"]');
return {
  docker: docker.textContent,
  label: docker.getAttribute('aria-label'),
  striped: getComputedStyle(docker).backgroundImage,
  phase: row.querySelector('td.phase').textContent,
  now: row.querySelector('td.now').textContent,
  message: document.getElementById('message').textContent,
};
"""


def test_a_force_completed_step_reads_forced_in_its_row(tmp_path):
    """The operator force-completes a step whose task never started (the devcluster holds
    calico-docker in STAGING: its `hold-next-task` fault): the agent's row says so in words
    (the cell reads FORCED, its label and the row's "Now" say force-completed by an
    operator), not only in the cell's stripes, and the message counts it."""
    with running_cluster(agents=1, public_agents=0) as cluster:
        requests.post(
            f"{cluster.base_url}/devcluster/faults/hold-next-task",
            json={"name_regex": "calico-docker"},
            timeout=5,
        ).raise_for_status()
        agent = cluster.agents[0]
        with (
            operator_service(cluster, tmp_path) as (service, url),
            chromium() as browser,
        ):
            browser.get(f"{url}/?refresh=0.2")
            read = lambda: browser.execute_script(READ_ROW, agent.agent_id)  # noqa: E731
            wait_until(lambda: (read() or {}).get("docker") == "STARTING", 20, "docker stalled")
            requests.post(
                f"{url}/v1/plan/force-complete",
                params={"phase": agent.hostname, "step": "docker"},
                timeout=5,
            ).raise_for_status()
            row = wait_until(
                lambda: (r := read()) and r["phase"] == "COMPLETE" and r["now"] and r,
                30,
                "the agent done, its docker step forced",
            )

    assert row["docker"] == "FORCED"
    assert row["label"] == ("docker: force-completed by an operator (its task may never have run)")
    assert row["now"] == "docker: force-completed by an operator (its task may never have run)"
    assert "repeating-linear-gradient" in row["striped"]
    assert "1 step force-completed" in row["message"]


def page_warnings(browser) -> list[str]:
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#warnings li'), (li) => li.textContent);"
    )


def test_the_schedulers_own_warnings_show_as_they_come(tmp_path):
    """The scheduler's warnings (`Scheduler.warnings`), armed on the devcluster over HTTP as
    an operator would (README, "Trying faults"): GET_FRAMEWORKS not listing the framework
    (`deny-view-framework`, before it registers) shows from the start; GET_FLAGS refused
    (`deny-view-flags`) shows, without a reload, once the scheduler subscribes again and is
    refused (the devcluster disconnects it: it asks GET_FLAGS at each subscription), and goes
    once the fault is lifted (`DELETE`) and the next subscription learns the interval."""
    with running_cluster(agents=1, public_agents=0) as cluster:
        faults = f"{cluster.base_url}/devcluster/faults"
        requests.post(f"{faults}/deny-view-framework", timeout=5).raise_for_status()
        with (
            operator_service(cluster, tmp_path) as (service, url),
            chromium() as browser,
        ):
            browser.get(f"{url}/?refresh=0.2")
            wait_until(
                lambda: any("GET_FRAMEWORKS" in w for w in page_warnings(browser)),
                20,
                "the GET_FRAMEWORKS warning on the page",
            )
            framework_id = wait_until(service.scheduler.framework_id, 20, "a framework ID")

            def resubscribe_after(method: str) -> None:
                """Arm (POST) or lift (DELETE) deny-view-flags, disconnect the framework, and
                wait for its next subscription's GET_FLAGS."""
                asked = service.scheduler.master_flags.asked
                requests.request(method, f"{faults}/deny-view-flags", timeout=5).raise_for_status()
                requests.post(
                    f"{cluster.base_url}/devcluster/frameworks/{framework_id}/disconnect",
                    timeout=5,
                ).raise_for_status()
                wait_until(
                    lambda: service.scheduler.master_flags.asked > asked,
                    20,
                    "GET_FLAGS asked again",
                )

            before = page_warnings(browser)
            resubscribe_after("POST")
            after = wait_until(
                lambda: (w := page_warnings(browser)) and any("--allocation" in x for x in w) and w,
                20,
                "the GET_FLAGS warning on the page",
            )
            shown = service.scheduler.warnings()
            refused_warning = service.scheduler.master_flags.warning
            # the permission granted after all: the next subscription learns the interval
            # and the warning leaves the page, without a reload
            resubscribe_after("DELETE")
            gone = wait_until(
                lambda: (
                    (w := page_warnings(browser)) and not any("--allocation" in x for x in w) and w
                ),
                20,
                "the GET_FLAGS warning gone from the page",
            )

    assert not any("--allocation_interval" in w for w in before)
    assert [w for w in gone if "GET_FRAMEWORKS" in w] == [w for w in after if "GET_FRAMEWORKS" in w]
    assert [w for w in after if "GET_FRAMEWORKS" in w] == [
        w for w in shown if "GET_FRAMEWORKS" in w
    ]
    [flags] = [w for w in after if "--allocation_interval" in w]
    assert flags == refused_warning
    assert "GET_FLAGS refused: 403" in flags
    assert "VIEW_FLAGS" in flags  # says what to grant


def test_a_warning_an_operator_acknowledged_reads_so_in_its_row(tmp_path):
    """An agent whose dockerd has a cluster store from a flag (the host stand-ins model the
    flag: no systemd here): its docker step is done with the installer's warning, and the
    row's "Now" says the warning's words; once an operator acknowledges it (force-complete
    over the API) it says "acknowledged by an operator at …", the cell's label too, and the
    Degraded condition goes off."""
    from tests.integration.harness import cni_standins

    options = {"node_enable": "false", "libnetwork_enable": "false"}
    with running_cluster(agents=0, public_agents=0, executor="process") as cluster:
        agent = cluster.add_agent(docker_flags=["--cluster-store", "etcd://192.0.2.5:2379"])
        with (
            operator_service(cluster, tmp_path, **options, **cni_standins(tmp_path)) as (_, url),
            chromium() as browser,
        ):
            browser.get(f"{url}/?refresh=0.2")
            read = lambda: browser.execute_script(READ_ROW, agent.agent_id) or {}  # noqa: E731
            conditions = lambda: browser.execute_script(READ_PAGE)["conditions"]  # noqa: E731
            warned = wait_until(
                lambda: "done with a warning" in read().get("now", "") and read(),
                60,
                "the row saying the installer's warning",
            )
            degraded = conditions()
            requests.post(
                f"{url}/v1/plan/force-complete",
                params={"phase": agent.hostname, "step": "docker"},
                timeout=5,
            ).raise_for_status()
            row = wait_until(
                lambda: "acknowledged by an operator" in read().get("now", "") and read(),
                30,
                "the row saying the warning is acknowledged",
            )
            wait_until(lambda: "Degraded" not in conditions(), 10, "Degraded off")

    assert "Degraded" in degraded
    assert warned["now"].startswith("docker: done with a warning: ")
    assert "192.0.2.5:2379" in warned["now"]
    assert row["now"].startswith("docker: done with a warning, acknowledged by an operator at ")
    assert "192.0.2.5:2379" in row["now"] and "acknowledged by an operator" in row["label"]
    assert row["docker"] == "COMPLETE"
    assert "1 step's warning acknowledged by an operator" in row["message"]


def test_a_finished_agent_interrupted_on_its_own_says_so_in_its_row(tmp_path):
    """`plan interrupt --phase` on an agent whose steps are all done: `plan show` reads
    COMPLETE (interrupted), and the row's "Now" says the interrupt and the command that
    lifts it (a restart or new options would wait for it), not nothing; `plan continue
    --phase` clears it."""
    with running_cluster(agents=1, public_agents=0) as cluster:
        agent = cluster.agents[0]
        with (
            operator_service(cluster, tmp_path) as (_, url),
            chromium() as browser,
        ):
            browser.get(f"{url}/?refresh=0.2")
            read = lambda: browser.execute_script(READ_ROW, agent.agent_id) or {}  # noqa: E731
            wait_until(lambda: read().get("phase") == "COMPLETE", 60, "the agent done")
            command = lambda name: requests.post(  # noqa: E731
                f"{url}/v1/plan/{name}", params={"phase": agent.hostname}, timeout=5
            ).raise_for_status()
            command("interrupt")
            row = wait_until(
                lambda: "interrupted" in read().get("now", "") and read(), 20, "the row held"
            )
            command("continue")
            after = wait_until(
                lambda: "interrupted" not in (r := read()).get("now", "x") and r,
                20,
                "the row no longer held",
            )

    assert row["phase"] == "COMPLETE"
    assert row["now"] == (
        f"interrupted by an operator (calico-dcos plan continue --phase {agent.hostname})"
    )
    assert after["now"] == ""


def test_a_scheduler_that_answers_but_is_not_ready_is_not_said_unreachable(tmp_path):
    """A second scheduler on the same state serves the page while it waits for the leader
    lock; its /v1/status answers 503 with why (as while it waits for the IAM). The page says
    what the scheduler answers, not "cannot reach the scheduler", which sends an operator
    looking for a network problem."""
    from tests.integration.harness import start_scheduler, start_waiting_scheduler

    with running_cluster(agents=1, public_agents=0) as cluster:
        first = start_scheduler(cluster, tmp_path)
        second = []
        port, start = start_waiting_scheduler(cluster, tmp_path, second)
        try:
            with chromium() as browser:
                wait_until(lambda: _answers(f"http://127.0.0.1:{port}/"), 20, "the second API")
                browser.get(f"http://127.0.0.1:{port}/?refresh=0.2")
                said = wait_until(
                    lambda: (
                        (
                            t := browser.execute_script(
                                "return document.getElementById('updated').textContent"
                            )
                        )
                        and "retrying" in t
                        and t
                    ),
                    20,
                    "the page to say what it heard",
                )
        finally:
            first.stop()
            start.join(30)
            for service in second:
                service.stop()

    state = tmp_path / "state"
    assert said.startswith(f"the scheduler answers 503: waiting to be the leader of {state}")
    assert said.endswith("; retrying") and "cannot reach" not in said


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).ok
    except requests.ConnectionError:
        return False
