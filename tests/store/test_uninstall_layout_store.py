"""The uninstall's stored progress in a real store (file and a real ZooKeeper): a previous
version's single `uninstall` document, larger than this version lets a meta document be, is
read and moved into the agents' records (over ZooKeeper, in more than one transaction), and
what is left of it is a few dozen bytes."""

from __future__ import annotations

import contextlib
import sqlite3

from kazoo.client import KazooClient

from calico_dcos import plans
from calico_dcos.core import uninstall as un
from calico_dcos.core.records import step_record
from calico_dcos.store import MAX_META_BYTES, encode_document
from tests.helpers.plan_sim import ARTIFACTS, FAST, converged_records, options

HOSTS = 400  # ~170 KB in the previous layout (it broke at ~2,350); ~0.7 MB of records


def write_legacy_meta(backend, store, document: dict) -> None:
    """Put the previous version's document where it kept it, behind the store's back (this
    version refuses a meta document over MAX_META_BYTES)."""
    data = encode_document(document)
    if backend.kind == "file":
        with contextlib.closing(sqlite3.connect(store.database)) as db, db:
            db.execute("INSERT INTO meta (key, document) VALUES ('uninstall', ?)", (data,))
        return
    client = KazooClient(hosts=backend.zk_hosts)
    client.start(timeout=10)
    try:
        client.create(f"{backend.root}/meta/uninstall", data)
    finally:
        client.stop()
        client.close()


def test_a_previous_versions_uninstall_document_is_migrated_into_the_agents_records(backend):
    store = backend.open()
    records = converged_records(HOSTS, 0)
    store.put_many([("agent", aid, rec) for aid, rec in records.items()])
    reverts = {
        aid: step_record(
            un.StepState(
                task_id=f"calico-uninstall__{aid}__d6e32bae__1",
                state="TASK_FINISHED" if i % 3 else "TASK_RUNNING",
                attempts=1,
                message="Command exited with status 0",
            )
        )
        for i, aid in enumerate(records)
    }
    legacy = {"revert_hosts": True, "stage": un.REVERT, "reverts": reverts}
    assert len(encode_document(legacy)) > MAX_META_BYTES
    write_legacy_meta(backend, store, legacy)

    core = plans.uninstalling(False)(options(), ARTIFACTS, store, FAST)

    assert core.revert_hosts and core.progress.stage == un.REVERT
    assert {aid: step_record(st) for aid, st in core.progress.reverts.items()} == reverts
    reopened = backend.open()
    assert reopened.get_meta("uninstall") == {"revert_hosts": True, "stage": un.REVERT}
    stored = reopened.load_agents()
    assert {aid: rec[un.REVERT_FIELD] for aid, rec in stored.items()} == reverts
    assert {aid: rec["steps"] for aid, rec in stored.items()} == {
        aid: rec["steps"] for aid, rec in records.items()
    }
    again = plans.uninstalling(False)(options(), ARTIFACTS, reopened, FAST)
    assert again.progress.reverts == core.progress.reverts
    assert again.reverting() == sorted(aid for i, aid in enumerate(records) if not i % 3)
