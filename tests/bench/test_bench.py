"""`calico-dcos bench` end to end at 5 agents: the real scheduler and devcluster processes.

Short intervals and plan timings keep it to a few seconds; the figures quoted in the README
come from the command's defaults.
"""

import json

import pytest
from click.testing import CliRunner

from calico_dcos.bench import CALL_TYPES, Settings, growth_exponent, lower_bound, summarise
from calico_dcos.commands.bench import bench

AGENTS = 5
STEPS = 5
FAST = [
    "--allocation-interval", "0.1",
    "--restart-budget", "100%",
    "--scheduler-timing", "wait_refuse_seconds=0.2",
    "--scheduler-timing", "revive_interval_seconds=0.1",
]  # fmt: skip


def test_bench_of_five_agents_converges_and_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"

    result = CliRunner().invoke(bench, ["--agents", str(AGENTS), *FAST, "--json", str(out)])

    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    [run] = document["runs"]
    assert run["agents"] == AGENTS and run["converged"]
    assert 0 < run["lower_bound_seconds"] <= run["wall_seconds"] < 30
    assert 0 < run["mesos_wall_seconds"] <= run["wall_seconds"]
    assert 0 < run["scheduler_cpu_seconds"] < 10
    assert run["calls"]["ACCEPT"] == AGENTS * STEPS
    assert run["calls"]["ACKNOWLEDGE"] >= AGENTS * STEPS * 2
    assert run["calls"]["DECLINE"] < run["offers_received"]
    assert run["store_writes"] >= AGENTS * STEPS
    assert run["store_bytes"] > run["store_writes"] * 100
    assert 10 * 2**20 < run["scheduler_peak_rss_bytes"] < 2**30
    assert run["acknowledged"] == run["calls"]["ACKNOWLEDGE"]
    assert 0 < run["ack_latency_median_seconds"] <= run["ack_latency_p99_seconds"] < 10
    assert run["updates_resent"] == 0
    assert 0 < run["event_thread_busy_share"] < 1
    assert run["store_records_per_commit"] > 0
    assert run["devcluster_cpu_seconds"] > 0
    cpus = run["scheduler_cpu_seconds"], run["devcluster_cpu_seconds"]
    assert run["cpu_floor_seconds"] == pytest.approx(max(sum(cpus) / run["cores"], *cpus))
    # every docker task held a slot at least launch-to-FINISHED (0.1 + 0.2 s), budget 100 %
    assert AGENTS * 0.3 / (AGENTS * run["wall_seconds"]) <= run["restart_slot_busy_share"] < 1
    assert document["cpu_growth_exponent"] is None
    assert run["scheduler_allocation_interval_seconds"] == 0.1  # learned from the devcluster
    assert "bound s" in result.output and "cpu floor s" in result.output
    # the progress line's time is the run's wall time, from the same clocks (the trial saw
    # "100 of 100 (7 s)" beside a result of 4.3 s)
    last = f"{AGENTS} agents: {AGENTS} of {AGENTS} ({run['wall_seconds']:.1f} s since SUBSCRIBE)"
    assert last in result.output.splitlines(), result.output
    # the scheduler's own counts of why it sent each REVIVE (a new framework: none for the
    # subscription), and what the master offered under each of the framework's two roles
    assert sum(run["revive_reasons"].values()) >= run["calls"]["REVIVE"]
    assert "subscribed" not in run["revive_reasons"]
    assert "REVIVEs (each offers every agent again), by reason:" in result.output
    assert sum(run["offers_by_role"].values()) == run["offers_received"]
    assert set(run["offers_by_role"]) <= {"*", "slave_public"}
    assert run["lower_bound_chain_seconds"] + run["lower_bound_slots_seconds"] == pytest.approx(
        run["lower_bound_seconds"]
    )
    # the plan alone, on a virtual clock, at the same settings: no faster than the bound
    assert run["lower_bound_seconds"] - 1e-9 <= run["plan_pace_seconds"] < run["wall_seconds"] + 5
    assert f"{AGENTS} agents: {run['wall_seconds']:.1f} s; the bound" in result.output
    assert "limited by" in result.output
    assert "accept/ag" not in result.output  # a main column only with --wide
    assert "allocation interval the scheduler learned from the master: 0.1 s" in result.output


@pytest.mark.parametrize(
    ("arguments", "option", "message"),
    [
        (["--restart-seconds", "node=1"], "--restart-seconds", "not 'node'"),
        (["--restart-seconds", "-1"], "--restart-seconds", "'-1': seconds must be at least 0"),
        (["--restart-seconds", "docker=-1"], "--restart-seconds", "docker=-1: '-1'"),
        (["--restart-seconds", "docker=x"], "--restart-seconds", "not 'x'"),
        (["--restart-seconds", "docker=1,"], "--restart-seconds", "STEP=SECONDS"),
        (["--step-seconds", "-1", "--simulate", "10"], "--step-seconds", "at least 0"),
        (["--allocation-interval", "0"], "--allocation-interval", "more than 0"),
        (["--timeout", "-5"], "--timeout", "more than 0"),
        (["--timeout", "nan"], "--timeout", "finite"),
        (["--simulate", "0"], "--simulate", "x>=1"),
        (["--simulate-latency", "-0.1", "--simulate", "5"], "--simulate-latency", "at least 0"),
        (["--simulate-latency", "0.1"], "--simulate-latency", "only with --simulate"),
        (["--simulate-public", "1"], "--simulate-public", "only with --simulate"),
        (["--simulate-public", "6", "--simulate", "5"], "--simulate-public", "at most 5"),
        (["--simulate-public", "-1", "--simulate", "5"], "--simulate-public", "x>=0"),
        (["--agents", "100,,5"], "--agents", "'100,,5' has an empty size"),
        (["--agents", "0,5"], "--agents", "every size must be at least 1 agent"),
        (["--agents", "ten"], "--agents", "not 'ten'"),
        (["--restart-budget", "0%"], "--restart-budget", "not '0%'"),
        (["--scheduler-timing", "wait_refuse_seconds=-1"], "--scheduler-timing", "at least 0"),
        (["--scheduler-timing", "nope=1"], "--scheduler-timing", "no plan timing 'nope'"),
        (["--store", "/tmp/x"], "--store", "not '/tmp/x'"),
    ],
)
def test_bench_refuses_bad_input_naming_the_option_and_what_was_typed(arguments, option, message):
    result = CliRunner().invoke(bench, arguments)

    assert result.exit_code == 2, result.output
    assert f"Invalid value for {option}" in result.output.replace("'--", "--").replace("': ", ": ")
    assert message in result.output


def test_bench_refuses_a_json_path_it_could_not_write_before_running(tmp_path):
    missing = tmp_path / "no" / "such" / "x.json"

    result = CliRunner().invoke(bench, ["--simulate", "5", "--json", str(missing)])

    assert result.exit_code == 2 and "--json" in result.output
    assert "does not exist" in result.output and "agents (plan only" not in result.output


def test_bench_prints_its_figures_before_a_json_write_that_fails(tmp_path, monkeypatch):
    """The path was writable when checked and is not when the run ends (here: its directory
    removed in between, by the real simulation wrapped to do so first)."""
    import calico_dcos.simulate

    out = tmp_path / "out" / "sim.json"
    out.parent.mkdir()
    run = calico_dcos.simulate.Simulation.run

    def run_then_lose_the_directory(self):
        out.parent.rmdir()
        return run(self)

    monkeypatch.setattr(calico_dcos.simulate.Simulation, "run", run_then_lose_the_directory)

    result = CliRunner().invoke(bench, ["--simulate", "5", "--json", str(out)])

    assert result.exit_code == 1
    assert "5 agents (plan only" in result.output and "cannot write" in result.output


def test_the_simulation_pace_depends_on_the_decision_to_mesos_latency(tmp_path):
    paces = {}
    for latency in ("0", "0.5"):
        out = tmp_path / f"{latency}.json"
        arguments = ["--simulate", "50", "--simulate-latency", latency, "--json", str(out)]
        result = CliRunner().invoke(bench, arguments)
        assert result.exit_code == 0, result.output
        figures = json.loads(out.read_text())
        assert figures["converged"] and figures["latency_seconds"] == float(latency)
        paces[latency] = figures["virtual_seconds"]

    # five steps, each at least one decision apart from the next: 2.5 s more at the least
    assert paces["0.5"] >= paces["0"] + 5 * 0.5
    assert "0.5 s decision-to-Mesos latency" in result.output


def test_lower_bound_is_one_chain_plus_the_other_agents_restarts_through_the_budget():
    """No offer round enters it: REVIVE and a subscription allocate at once."""
    settings = Settings(restart_budget="10%", step_seconds=0.1, allocation_interval=1.0)
    chain = 5 * 0.1 + 2 * 0.2
    hold = 0.1 + 0.2  # docker only: the cni step restarts the agent only if told to

    assert lower_bound(settings, 1000) == pytest.approx(chain + 1000 * hold / 100 - hold)
    assert lower_bound(Settings(restart_budget=1000), 10) == pytest.approx(chain)
    assert lower_bound(settings, 1000) == lower_bound(
        Settings(restart_budget="10%", step_seconds=0.1, allocation_interval=5.0), 1000
    )


def test_cpu_floor_is_the_work_over_the_cores_but_never_below_the_busiest_process():
    from calico_dcos.bench import cpu_floor

    assert cpu_floor(4.0, 4.0, cores=2) == 4.0
    assert cpu_floor(6.0, 1.0, cores=2) == 6.0  # one process's Python runs on one core
    assert cpu_floor(3.0, 3.0, 3.0, cores=2) == 4.5


def test_growth_exponent_is_one_when_cpu_grows_as_the_agents():
    assert growth_exponent((100, 2.0), (5000, 100.0)) == pytest.approx(1.0)
    assert growth_exponent((100, 1.0), (1000, 100.0)) == pytest.approx(2.0)


def test_growth_leaves_out_a_size_cut_off_by_the_timeout():
    def run(agents, cpu, converged=True):
        return {
            "agents": agents,
            "converged": converged,
            "scheduler_cpu_seconds": cpu,
            "scheduler_peak_rss_bytes": agents * 1024,
        }

    document = summarise([run(100, 1.0), run(1000, 10.0), run(5000, 20.0, converged=False)])

    assert document["cpu_growth_exponent"] == pytest.approx(1.0)
    assert document["rss_growth_bytes_per_agent"] == pytest.approx(1024)


def test_the_plan_only_simulation_converges_and_reports_its_figures(tmp_path):
    out = tmp_path / "sim.json"

    result = CliRunner().invoke(bench, ["--simulate", "200", "--json", str(out)])

    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["converged"] and figures["agents"] == 200
    assert figures["updates"] == 200 * 12  # STARTING, RUNNING per step; FINISHED for two
    # Which call was longest is a CPU measurement: any event, never more offers than agents.
    assert figures["largest_call_event"] in ("offers", "update", "tick", "subscribed")
    assert 1 <= figures["largest_call_size"] <= 200
    assert figures["events_per_cpu_second"] > 0 and figures["core_cpu_seconds"] > 0
    assert "events/s" in result.output


def test_watch_integrates_the_slot_taking_tasks_in_flight_on_the_masters_clock():
    from calico_dcos.bench import Watch

    watch = Watch(agents=2)

    def launch(t, task, name="calico-docker", agent="a1"):
        watch.see({"event": "launch", "t": t, "agent_id": agent, "task_name": name,
                   "task_id": task})  # fmt: skip

    def status(t, task, state, name="calico-docker", agent="a1"):
        watch.see({"event": "status", "t": t, "agent_id": agent, "task_name": name,
                   "task_id": task, "state": state})  # fmt: skip

    launch(0.0, "d1")
    launch(1.0, "d2", agent="a2")
    launch(1.0, "e1", name="calico-etcd-proxy")  # takes no slot
    status(1.5, "d1", "TASK_RUNNING")
    status(2.0, "d1", "TASK_FINISHED")
    status(4.0, "d2", "TASK_FAILED", agent="a2")
    status(5.0, "d2", "TASK_FAILED", agent="a2")  # a repeated terminal update counts once

    assert watch.slot_seconds == pytest.approx(1.0 + 2 * 1.0 + 2.0)


def test_the_plans_own_pace_is_close_to_the_bound_thanks_to_revives_in_the_tail():
    """100 agents on a virtual clock (deterministic): the docker waves chain through held
    offers, and the last agents' steps after them are brought by REVIVEs, not by rounds.
    Before the tail's REVIVEs the last two daemons waited a round each: 5.1 s."""
    from calico_dcos.simulate import SimSettings, Simulation

    result = Simulation(SimSettings(agents=100)).run()

    assert result.converged
    assert result.virtual_seconds <= 1.1 * result.lower_bound_seconds  # 3.96 s of 3.6
    assert result.revives <= 6  # a few in the tail, not one per step
    assert set(result.revive_reasons) <= {"tail"}


def run_figures(**figures) -> dict:
    """A converged run's figures as `_figures` makes them, for the table's words."""
    base = {
        "agents": 100, "converged": True, "agents_done": 100, "wall_seconds": 9.9,
        "lower_bound_seconds": 3.6, "lower_bound_chain_seconds": 0.9,
        "lower_bound_slots_seconds": 2.7, "restart_slots": 10, "plan_pace_seconds": 4.0,
        "cpu_floor_seconds": 7.0, "ratio": 2.75, "scheduler_cpu_seconds": 7.0,
        "calls": dict.fromkeys(CALL_TYPES, 500), "offers_received": 900,
        "store_writes": 1200, "store_bytes": 10**6,
        "scheduler_peak_rss_bytes": 90 * 2**20,
    }  # fmt: skip
    return base | figures


def test_a_run_is_limited_by_the_highest_of_its_three_lower_limits():
    from calico_dcos.bench import limited_by
    from calico_dcos.commands.bench import limits_words

    assert limited_by(run_figures())[1] == 7.0
    assert limited_by(run_figures(cpu_floor_seconds=0.8))[0].startswith("the plan's pace")
    assert limited_by(run_figures(plan_pace_seconds=None, cpu_floor_seconds=1.0))[1] == 3.6
    assert limited_by(run_figures(wall_seconds=None)) is None

    words = limits_words(run_figures())
    assert words.startswith("100 agents: 9.9 s; the bound 3.6 s = one agent's chain 0.9 s + ")
    assert "through 10 restart slots 2.7 s" in words
    assert words.endswith("limited by CPU (the scheduler's and the devcluster's Python on the "
                          "cores), 2.9 s beyond it (latency, contention)")  # fmt: skip


def test_the_table_shows_its_main_columns_and_every_one_with_wide():
    from calico_dcos.commands.bench import table

    document = {"runs": [run_figures()], "cpu_growth_exponent": None,
                "rss_growth_bytes_per_agent": None}  # fmt: skip

    assert "accept/ag" not in table(document) and "--wide" in table(document)
    assert "accept/ag" in table(document, wide=True)
    assert "pace s" in table(document).splitlines()[0]


def test_the_simulation_with_public_agents_offers_them_under_slave_public(tmp_path):
    out = tmp_path / "sim.json"

    result = CliRunner().invoke(
        bench, ["--simulate", "20", "--simulate-public", "20", "--json", str(out)]
    )

    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["converged"]
    assert figures["offers_by_role"]["*"] == 0  # reserved to slave_public: never under `*`
    assert figures["offers_by_role"]["slave_public"] == figures["offers"]
    assert "20 of them public" in result.output
