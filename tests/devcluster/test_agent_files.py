"""A devcluster process-executor agent serves its sandboxes at `/files/read` on the address
its offers' `url` names, answering as a Mesos agent does (apache/mesos src/files/files.cpp,
`FilesProcess::__read`); in strict mode over HTTPS with a DC/OS token. Real listeners on the
agents' loopback addresses; the sandbox is attached as the executor attaches a task's."""

from __future__ import annotations

import json
import logging
import time

import requests

from calico_dcos.dcos_auth import TokenSource, parse_credential
from calico_dcos.devcluster.agent import agent_ip, free_agent_network
from calico_dcos.devcluster.agent_http import MAX_READ_BYTES, bind_agent_socket
from calico_dcos.sandbox import AgentFiles
from tests.helpers.devcluster import Framework, running_cluster, wait_until

RUN = "/frameworks/fw-7/executors/calico-docker__S0__abc__1/runs/latest"


def attach(cluster, agent_id: str, tmp_path, content: bytes) -> None:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    (sandbox / "stderr").write_bytes(content)
    (sandbox / "sub").mkdir()
    attached = cluster.master.executor._attached
    key = (agent_id, "fw-7", "calico-docker__S0__abc__1")
    cluster.call(attached.__setitem__, key, sandbox)


def test_files_read_answers_as_a_mesos_agent(tmp_path):
    content = b"line one\n" + b"x" * (MAX_READ_BYTES + 100)
    with running_cluster(agents=1, public_agents=0, executor="process") as cluster:
        (agent,) = cluster.agents
        attach(cluster, agent.agent_id, tmp_path, content)
        base = f"http://{agent.ip}:{agent.port}/files/read"

        def read(**query):
            return requests.get(base, params=query, timeout=5)

        size = read(path=f"{RUN}/stderr", offset=-1)
        no_offset = read(path=f"{RUN}/stderr")
        head = read(path=f"{RUN}/stderr", offset=0, length=8)
        capped = read(path=f"{RUN}/stderr", offset=0)
        past = read(path=f"{RUN}/stderr", offset=len(content) + 5, length=10)
        unknown = read(path="/frameworks/fw-7/executors/other/runs/latest/stderr", offset=-1)
        escape = read(path=f"{RUN}/../../../etc/passwd", offset=-1)
        directory = read(path=f"{RUN}/sub", offset=0)
        no_path = read(offset=0)
        bad_offset = read(path=f"{RUN}/stderr", offset="x")
        negative = read(path=f"{RUN}/stderr", offset=-2)

    assert size.status_code == 200 and size.json() == {"data": "", "offset": len(content)}
    assert no_offset.json() == {"data": "", "offset": len(content)}
    assert head.json() == {"data": "line one", "offset": 0}
    assert len(capped.json()["data"]) == MAX_READ_BYTES  # 16 pages at most
    assert past.json() == {"data": "", "offset": len(content) + 5}
    assert unknown.status_code == escape.status_code == 404
    assert directory.status_code == 400 and "Cannot read a directory" in directory.text
    assert no_path.status_code == 400 and "Expecting 'path=value' in query." in no_path.text
    assert bad_offset.status_code == negative.status_code == 400


def test_an_agent_whose_port_5051_is_taken_listens_on_a_free_port_its_offers_name():
    network = free_agent_network(1)
    with (
        bind_agent_socket(agent_ip(1, network)) as taken,  # another program's 5051 there
        running_cluster(
            agents=1, public_agents=0, executor="process", agent_network=network
        ) as cluster,
    ):
        taken_port = taken.getsockname()[1]
        (agent,) = cluster.agents
        with Framework(cluster) as framework:
            wait_until(lambda: framework.offers, 10, "an offer")
            offered = framework.offers[0]["url"]
        answer = requests.get(
            f"http://{agent.ip}:{agent.port}/files/read",
            params={"path": "/frameworks/x/executors/y/runs/latest/stderr"},
            timeout=5,
        )
    assert taken_port == 5051 and agent.port not in (0, 5051)
    assert offered == {
        "scheme": "http",
        "address": {"hostname": agent.hostname, "ip": agent.ip, "port": agent.port},
        "path": "/slave(1)",
    }
    assert answer.status_code == 404


def test_in_strict_mode_it_needs_a_token_and_speaks_tls(tmp_path):
    with running_cluster(agents=1, public_agents=0, executor="process", strict=True) as cluster:
        (agent,) = cluster.agents
        attach(cluster, agent.agent_id, tmp_path, b"words\n")
        base = f"https://{agent.ip}:{agent.port}/files/read"
        query = {"path": f"{RUN}/stderr", "offset": -1}
        ca = str(cluster.ca_bundle)
        anonymous = requests.get(base, params=query, verify=ca, timeout=5)
        credential = cluster.create_service_account("calico")
        account = parse_credential(json.dumps(credential), "test")
        header = TokenSource(account, ca).header()
        authorized = requests.get(base, params=query, headers=header, verify=ca, timeout=5)
        # the scheduler's reader, as strict mode runs it: the offer says "http" (Mesos always
        # does), the driver's token and TLS verified against the cluster's CA are used
        delivered: list = []
        files = AgentFiles(
            lambda *words: delivered.append(words), lambda: (header["Authorization"], True), ca
        )
        url = {"scheme": "http", "address": {"ip": agent.ip, "port": agent.port}}
        files.remember([{"agent_id": {"value": agent.agent_id}, "url": url}])
        files.request("calico-docker__S0__abc__1", agent.agent_id, "fw-7", "exit 1")
        wait_until(lambda: delivered or files.failed, 10, "the strict read")
        files.close(5)
    assert anonymous.status_code == 401
    assert authorized.status_code == 200 and authorized.json() == {"data": "", "offset": 6}
    assert delivered == [("calico-docker__S0__abc__1", "words", "exit 1")]


def test_a_read_that_meets_an_expired_token_logs_in_again_and_reads(tmp_path, caplog):
    """Strict mode: the token has expired at the IAM (its clock moved past the token's `exp`,
    as after a renewal missed while the host was paused; DC/OS tokens live five days), so the
    agent answers 401; the reader drops the token, logs in again and reads, as the master's
    operator-API asks do (`dcos_auth.again_after_401`; the IAM clock moved as in
    tests/strict `test_the_masters_operator_api_asks_log_in_again_when_the_token_has_expired`).
    The reader's `TokenSource` is its own, so no other request renews the token first."""
    lifetime = 20.0  # the jump below stays inside the service login token's 120 s
    with running_cluster(
        agents=1, public_agents=0, executor="process", strict=True, token_lifetime=lifetime
    ) as cluster:
        (agent,) = cluster.agents
        attach(cluster, agent.agent_id, tmp_path, b"python3: not found\n")
        ca = str(cluster.ca_bundle)
        account = parse_credential(json.dumps(cluster.create_service_account("calico")), "test")
        tokens = TokenSource(account, ca)
        held = tokens.token()
        iam = cluster.master.iam
        iam.clock = lambda: time.time() + lifetime + 1  # `held` has expired
        delivered: list = []
        files = AgentFiles(
            lambda *words: delivered.append(words),
            lambda: (f"token={tokens.token()}", True),
            ca,
            tokens,
        )
        url = {"scheme": "http", "address": {"ip": agent.ip, "port": agent.port}}
        files.remember([{"agent_id": {"value": agent.agent_id}, "url": url}])
        files.request("calico-docker__S0__abc__1", agent.agent_id, "fw-7", "exit 1")
        wait_until(lambda: delivered or files.failed, 10, "the read after the 401")
        files.close(5)
        refused = [e for e in cluster.timeline() if e["event"] == "unauthenticated"]
        fresh = tokens.token()

    assert delivered == [("calico-docker__S0__abc__1", "python3: not found", "exit 1")]
    assert (files.read, files.failed) == (1, 0)
    assert fresh != held and tokens.logins == 2 and all(ok for _, ok in iam.logins)
    assert [(e["agent_id"], e["message"]) for e in refused] == [
        (agent.agent_id, "the authentication token has expired")
    ]
    words = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert f"the agent at {agent.ip}:{agent.port} refused the token for /files/read: " \
        "logging in again" in words  # fmt: skip
