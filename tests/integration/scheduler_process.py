"""The test scheduler in a process of its own, so that a test can SIGKILL it.

python scheduler_process.py MASTER_URL WORKDIR [CALICO_OPTION=VALUE …]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from calico_dcos.commands.run import wait_for_signal  # noqa: E402
from tests.integration.harness import start_scheduler  # noqa: E402


class Cluster:
    """All `start_scheduler` needs of a DevCluster that runs in the test's process."""

    def __init__(self, master_url: str) -> None:
        self.master_url = master_url


def main(master_url: str, workdir: str, *options: str) -> None:
    overrides = dict(option.split("=", 1) for option in options)
    service = start_scheduler(Cluster(master_url), Path(workdir), **overrides)
    print("started", flush=True)
    sys.exit(wait_for_signal(service))


if __name__ == "__main__":
    main(*sys.argv[1:])
