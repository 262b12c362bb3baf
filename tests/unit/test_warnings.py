"""The rp_filter warning follows what Felix really gets (issue 20): `node.extra_env` wins over
`node.ignore_loose_rpf` in calico-node's environment, and Felix reads booleans its own way
(projectcalico/calico felix/config/param_types.go, BoolParam). The warning is logged too."""

from __future__ import annotations

import logging

import pytest

from calico_dcos.commands.run import log_warnings
from calico_dcos.operator_api import RP_FILTER_WARNING, warnings_for
from calico_dcos.options import load_options


def options(**env: str):
    return load_options(None, {f"CALICO_NODE_{k.upper()}": v for k, v in env.items()})


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({}, True),  # the default: ignore_loose_rpf on
        ({"ignore_loose_rpf": "false"}, False),
        ({"extra_env": "FELIX_IGNORELOOSERPF=false"}, False),
        ({"extra_env": "FELIX_LOGSEVERITYSCREEN=info,FELIX_IGNORELOOSERPF=F"}, False),
        ({"extra_env": "FELIX_IGNORELOOSERPF=no"}, False),
        ({"ignore_loose_rpf": "false", "extra_env": "FELIX_IGNORELOOSERPF=Yes"}, True),
        ({"ignore_loose_rpf": "false", "extra_env": "FELIX_IGNORELOOSERPF=1"}, True),
        ({"extra_env": "FELIX_LOGSEVERITYSCREEN=info"}, True),
    ],
)
def test_the_warning_follows_what_felix_gets(env, warned):
    assert warnings_for(options(**env)) == ([RP_FILTER_WARNING] if warned else [])


def test_the_warning_is_logged_where_it_applies_and_only_there(caplog):
    caplog.set_level(logging.WARNING, logger="calico_dcos")
    log_warnings(options(extra_env="FELIX_IGNORELOOSERPF=false"))
    assert caplog.records == []

    log_warnings(options())
    assert [r.getMessage() for r in caplog.records] == [RP_FILTER_WARNING]
    assert caplog.records[0].levelno == logging.WARNING
