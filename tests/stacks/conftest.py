"""Fixtures for the `stacks` tests; the helpers they use live in stacks_helpers.py."""

from __future__ import annotations

import pytest
from stacks_helpers import ANSWERS, PARAMS, media_server

from mora_dsl.manifest import Manifest
from stacks.config import StackConfig


@pytest.fixture
def media() -> Manifest:
    return media_server()


@pytest.fixture
def all_answers() -> StackConfig:
    return StackConfig(params=PARAMS, answers=ANSWERS)

