"""The pure decision core: events and the time in, decisions out; no I/O, no clocks.

One concept per module:

- `events`     what comes in (task states) and the decisions that go out
- `records`    per-agent records (the store's documents) and task IDs
- `config`     what a plan decides by: step specs, the budget, timings
- `budget`     the restart budget, the one home of slot holding (its invariant)
- `offers`     reading offers, whether a task fits and why not, answering a batch
- `revive`     rate-limited REVIVE
- `reconcile`  explicit then implicit reconciliation
- `engine`     what every plan shares: subscription, offers, a task's life, the budget
- `deploy`     the deploy plan (Calico's chain on every agent)
- `uninstall`  the uninstall plan (kill, revert hosts, tear down, wipe)
- `views`      the plan and summary documents for people
- `interface`  `Core`, the one interface the scheduler depends on

The core imports nothing that does I/O; `calico_dcos.service` builds it from the options.
"""
