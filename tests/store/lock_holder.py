"""Run as a child process: take the store's leader lock, say so, and hold it until killed.

The leader-lock tests SIGKILL this process to show that a dead leader's lock passes on.
"""

import sys

from calico_dcos.store import open_store

store = open_store(sys.argv[1])
store.acquire_leadership(on_lost=lambda: None)
print("leader", flush=True)
sys.stdin.read()
