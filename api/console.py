"""The consoles the command line writes through: colour and markup where the program asks for
them (``[red]``), but no emoji codes and no guessing highlights, so an account code prints as
itself (``platform:bank:USD`` would otherwise show a bank emoji)."""

from __future__ import annotations

from rich.console import Console


def plain_console(*, stderr: bool = False) -> Console:
    return Console(stderr=stderr, emoji=False, highlight=False)
