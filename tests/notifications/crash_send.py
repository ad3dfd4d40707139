"""Runs the `segmint` command line with a crash injected into the send path, for the tests of
what a killed pass leaves behind. Production never reads anything of this: the fault is a
monkeypatch of TwilioSender.send made here, before the command starts.

    python tests/notifications/crash_send.py POINT SEGMINT-ARGS...

POINT: after_claim (the ledger row is committed, Twilio not called) or after_send (Twilio
answered, the row not updated yet). The process then ends at once with CRASH_EXIT_STATUS, as a
killed process would: no cleanup, no flush of the database session.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

CRASH_EXIT_STATUS = 75
POINTS = ("after_claim", "after_send")


def _crash() -> None:
    logging.shutdown()
    os._exit(CRASH_EXIT_STATUS)


def main() -> None:
    point, args = sys.argv[1], sys.argv[2:]
    if point not in POINTS:
        raise SystemExit(f"crash point {point!r} is not one of {', '.join(POINTS)}")

    from notifications.sender import TwilioSender
    from segmint.cli import main as segmint_main

    send = TwilioSender.send

    def crashing_send(self: TwilioSender, to: str, body: str) -> Any:
        if point == "after_claim":
            _crash()
        outcome = send(self, to, body)
        _crash()
        return outcome

    TwilioSender.send = crashing_send  # type: ignore[method-assign]
    segmint_main(args)


if __name__ == "__main__":
    main()
