"""The scheduler caps glibc's malloc arenas unless the operator set the limit (issue 17)."""

from __future__ import annotations

import platform

import pytest

from calico_dcos.malloc_arenas import limit_arenas


@pytest.mark.parametrize(
    "environ",
    [{"MALLOC_ARENA_MAX": "8"}, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=8"}],
)
def test_the_operators_limit_wins(environ):
    assert limit_arenas(environ) is False


def test_set_on_glibc():
    # this machine's Python runs on glibc (Debian); mallopt answers 1 when it takes the value
    assert platform.libc_ver()[0] == "glibc"
    assert limit_arenas({}) is True
