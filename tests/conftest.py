"""Fixtures of the fault tests: registered meters on whichever broker the test points the settings at."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def role_groups_made(transactional_db: None) -> None:
    from django.contrib.auth.models import Group

    from mdms.core.roles import Role

    for role in Role:
        Group.objects.get_or_create(name=role.value)


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A directory for private servers under /tmp (PostgreSQL's user must reach it when we are root)."""
    import shutil

    path = Path(tempfile.mkdtemp(prefix="mdms-fault-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
