"""Register a third-party application for Green Button Connect and print its credentials, once.

    manage.py greenbutton_register_app "SolarPal" --redirect-uri https://solarpal.example/callback [--redirect-uri ...]

The client secret is stored only as a hash: give it to the application's developers now. (Staff can
also add applications in the admin, under Django OAuth Toolkit → Applications.)
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from greenbutton.scopes import OFFERED
from greenbutton.services import application_register


class Command(BaseCommand):
    help = "Register a Green Button Connect third-party application and print its client id and secret once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the name consumers see on the consent page")
        parser.add_argument(
            "--redirect-uri", action="append", required=True, dest="redirect_uris", help="exact callback URI (repeat)"
        )

    def handle(self, *args: Any, name: str, redirect_uris: list[str], **options: Any) -> None:
        try:
            registered = application_register(name=name, redirect_uris=redirect_uris)
        except ValidationError as error:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())) from None
        self.stdout.write(f"client_id:     {registered.application.client_id}")
        self.stdout.write(f"client_secret: {registered.client_secret}")
        self.stdout.write("The secret is shown only now. Scopes the application may ask for:")
        for scope in OFFERED:
            self.stdout.write(f"  {scope.text}")
