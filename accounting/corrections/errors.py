"""The corrections' errors."""

from __future__ import annotations

from accounting.ledger.errors import LedgerError


class EntryOwnedByFlow(LedgerError):
    """The entry belongs to a flow with its own lifecycle: the flow's own action corrects it
    (``facts["flow"]`` names the flow, the message the action)."""

    code = "ENTRY_OWNED_BY_FLOW"


class EntryNotReversible(LedgerError):
    """A reversal is not reversed again: propose an adjusting entry instead."""

    code = "ENTRY_NOT_REVERSIBLE"


class AccountOwnedByFlow(LedgerError):
    """An adjustment may not move an account a flow keeps equal to its own records."""

    code = "ACCOUNT_OWNED_BY_FLOW"


class ProposalNotFound(LedgerError):
    code = "PROPOSAL_NOT_FOUND"


class ProposalDecided(LedgerError):
    """The proposal was already approved (posted) or rejected."""

    code = "PROPOSAL_DECIDED"


class SelfApproval(LedgerError):
    """Maker-checker: whoever proposed an adjustment may not approve it."""

    code = "SELF_APPROVAL"
