"""The agents' loopback addresses: fixed for the tests, a free range for `local`/`devcluster`
(two runs on one machine used to share 127.0.1.N:2379, and the second's etcd proxies
crash-looped on `bind: address already in use`)."""

import random
import socket

import pytest

from calico_dcos.devcluster import DevCluster
from calico_dcos.devcluster.agent import agent_ip, free_agent_network


def test_agent_addresses_skip_each_24s_network_and_broadcast_addresses():
    assert [agent_ip(n) for n in (1, 2, 254, 255)] == [
        "127.0.1.1", "127.0.1.2", "127.0.1.254", "127.0.2.1"
    ]  # fmt: skip
    assert agent_ip(3, "127.40.7.0") == "127.40.7.3"
    assert agent_ip(255, "127.40.7.0") == "127.40.8.1"


def test_a_free_range_is_not_one_whose_proxy_port_is_taken():
    """The range a seeded choice would take first has its 2nd agent's port bound (a real
    listening socket, as another run's etcd proxy): the next range is chosen instead."""
    first = free_agent_network(3, port=0, rng=random.Random(7))  # port 0: always free
    taken = agent_ip(2, first)
    with socket.socket() as listener:
        listener.bind((taken, 0))
        port = listener.getsockname()[1]
        listener.listen()
        chosen = free_agent_network(3, port=port, rng=random.Random(7))

    assert chosen != first
    assert chosen.startswith("127.") and not chosen.startswith("127.0.")


def test_no_free_range_is_refused_clearly():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        listener.listen()

        class SameRange(random.Random):
            def randint(self, a, b):
                return 0  # always 127.0.0.0/24, whose agent 1 is 127.0.0.1

        with pytest.raises(RuntimeError, match=r"no free loopback range.*127\.0\.0\.1:\d+"):
            free_agent_network(1, port=port, tries=3, rng=SameRange())


def test_the_devcluster_keeps_127_0_1_n_unless_asked_for_a_free_range(tmp_path):
    fixed = DevCluster(agents=1, public_agents=0, executor="synthetic", workdir=tmp_path / "a")
    free = DevCluster(
        agents=1, public_agents=0, executor="synthetic", workdir=tmp_path / "b",
        agent_network="free",
    )  # fmt: skip
    with fixed, free:
        assert [a.ip for a in fixed.agents] == ["127.0.1.1"]
        (agent,) = free.agents
        assert agent.ip.endswith(".1") and not agent.ip.startswith("127.0.")
