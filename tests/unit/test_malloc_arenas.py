"""The scheduler caps glibc's malloc arenas and fixes its mmap threshold unless the operator
set them (issue 17)."""

from __future__ import annotations

import platform

import pytest

from calico_dcos.malloc_arenas import limit_arenas, mmap_large_chunks


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


@pytest.mark.parametrize(
    "environ",
    [{"MALLOC_MMAP_THRESHOLD_": "131072"}, {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1"}],
)
def test_the_operators_mmap_threshold_wins(environ):
    assert mmap_large_chunks(environ) is False


def test_mmap_threshold_set_on_glibc():
    assert mmap_large_chunks({}) is True
