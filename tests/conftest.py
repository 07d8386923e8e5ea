"""Shared test set-up: hypothesis profiles and float64 helpers.

Profiles: ``ci`` (default under CI=true) is derandomized, so a red run is reproducible;
``dev`` explores new examples each run. Select with HYPOTHESIS_PROFILE=ci|dev.
"""

from __future__ import annotations

import os

import jax
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def x64():
    """Run the test body with JAX float64 enabled (restored afterwards).

    Safe with @given: the context stays on for all examples and holds no per-example state.
    """
    with jax.enable_x64(True):
        yield


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist appends each test's group to its node id
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup`` a test file is one unit of work, so its module fixtures are built once, unless
    a test names its own ``xdist_group``: the notebooks do, so that both workers share them instead of one
    worker running them all one after the other."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
