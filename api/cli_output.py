"""What the long ``coinbooks`` commands show besides their result: a progress bar on standard
error, drawn only when it is a terminal (standard output stays the data), and the JSON that
``check --json`` and ``trial-balance --json`` print."""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from accounting.integrity import CHECKS, IntegrityReport
from accounting.reads.journal import amount_text
from accounting.reads.reports import TrialBalance
from api.console import plain_console


def progress_bar() -> Progress:
    """A progress bar on standard error; nothing at all when standard error is not a
    terminal (a log file, a pipe, a test)."""
    errors = plain_console(stderr=True)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    )


def integrity_json(report: IntegrityReport) -> dict[str, Any]:
    """``{"ok", "checked_at", "entries", "postings", "accounts", "checks": [{"name",
    "invariant", "violations": [detail, ...]}, ...]}``, every check in the order it ran."""
    found: dict[str, list[str]] = {name: [] for name in report.checks}
    for violation in report.violations:
        found[violation.check].append(violation.detail)
    invariants = {name: invariant for invariant, name, _ in CHECKS}
    return {
        "ok": report.ok,
        "checked_at": report.checked_at.isoformat(),
        "entries": report.entries,
        "postings": report.postings,
        "accounts": report.accounts,
        "checks": [
            {"name": name, "invariant": invariants.get(name), "violations": details}
            for name, details in found.items()
        ],
    }


def trial_balance_json(found: TrialBalance) -> dict[str, Any]:
    """``{"as_of", "balanced", "lines": [{"account", "type", "commodity", "debit",
    "credit"}], "totals": [{"commodity", "debit", "credit", "balanced"}]}``: amounts are
    decimal strings in the commodity's unit (money with its cents: ``4.55``, ``0.00``; coins
    and diamonds whole), the side an account is not on a zero."""
    return {
        "as_of": found.as_of.isoformat(),
        "balanced": found.balanced,
        "lines": [
            {
                "account": line.code,
                "type": line.type,
                "commodity": line.commodity,
                "debit": amount_text(line.debit, line.commodity),
                "credit": amount_text(line.credit, line.commodity),
            }
            for line in found.lines
        ],
        "totals": [
            {
                "commodity": total.commodity,
                "debit": amount_text(total.debit, total.commodity),
                "credit": amount_text(total.credit, total.commodity),
                "balanced": total.balanced,
            }
            for total in found.totals
        ],
    }
