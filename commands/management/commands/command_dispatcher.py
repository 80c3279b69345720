"""Run the command dispatcher in the foreground: `manage.py command_dispatcher [--rate N]`.

It sends queued commands to meters within the fleet's rate (COMMANDS_RATE_PER_S), one at a time
per meter, sends again those without an answer, applies the meters' replies and expires what is
past its deadline. SIGTERM or SIGINT stops it between two passes.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from commands.dispatcher import Dispatcher


class Command(BaseCommand):
    help = "Send commands to meters and follow their replies (the command dispatcher)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--rate", type=float, default=None, help="commands per second (default COMMANDS_RATE_PER_S)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dispatcher = Dispatcher(rate_per_s=options["rate"])

        def shutdown(signum: int, frame: FrameType | None) -> None:
            dispatcher.stop()

        signal.signal(signal.SIGTERM, shutdown)
        signal.signal(signal.SIGINT, shutdown)
        self.stdout.write("command dispatcher starting")
        dispatcher.run()
        self.stdout.write("command dispatcher stopped")
