"""Issue, revoke and list API tokens for machine clients: `manage.py api_token issue|revoke|list`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mdms.core.api_tokens import api_token_issue, api_token_revoke
from mdms.core.models_api import ApiToken


class Command(BaseCommand):
    help = "Issue (the key is printed once), revoke or list API tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        issue = sub.add_parser("issue", help="Issue a token and print its key once.")
        issue.add_argument("name")
        issue.add_argument("--scope", action="append", required=True, choices=ApiToken.Scope.values, dest="scopes")
        issue.add_argument("--by", help="Username of the staff member issuing it (for the audit log).")
        revoke = sub.add_parser("revoke", help="Revoke a token by id.")
        revoke.add_argument("token_id", type=int)
        revoke.add_argument("--by")
        sub.add_parser("list", help="List tokens (never their keys).")

    def handle(self, *args: Any, **options: Any) -> None:
        by = User.objects.filter(username=options["by"]).first() if options.get("by") else None
        if options.get("by") and by is None:
            raise CommandError(f"no user {options['by']!r}")
        if options["verb"] == "issue":
            try:
                issued = api_token_issue(name=options["name"], scopes=options["scopes"], created_by=by)
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from exc
            self.stdout.write(f"token {issued.token.pk} issued; its key, shown only this once:")
            self.stdout.write(issued.key)
        elif options["verb"] == "revoke":
            token = ApiToken.objects.filter(pk=options["token_id"]).first()
            if token is None:
                raise CommandError(f"no token {options['token_id']}")
            revoked = api_token_revoke(token=token, revoked_by=by)
            self.stdout.write(f"token {token.pk} {'revoked' if revoked else 'was already revoked'}")
        else:
            for token in ApiToken.objects.all():
                state = "revoked" if token.revoked_at else "active"
                used = token.last_used_at.isoformat() if token.last_used_at else "never"
                scopes = ",".join(token.scopes)
                self.stdout.write(f"{token.pk}\t{token.prefix}…\t{state}\t{scopes}\tlast used {used}\t{token.name}")
