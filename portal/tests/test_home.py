from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from mdms.core.testing import Person


@pytest.mark.django_db
def test_a_consumer_sees_only_their_own_account(client: Client, alice: Person, bob: Person) -> None:
    client.force_login(alice.user)
    page = client.get("/").content.decode()
    assert alice.account.number in page
    assert alice.meter.serial in page
    assert bob.account.number not in page
    assert bob.meter.serial not in page


@pytest.mark.django_db
def test_an_operator_sees_the_grid(client: Client, alice: Person, olivia: User) -> None:
    client.force_login(olivia)
    page = client.get("/").content.decode()
    assert "Grid" in page
    assert alice.account.premise.feeder.region.name in page


def test_an_anonymous_visitor_is_sent_to_log_in(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
