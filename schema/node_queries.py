"""``node(id:)`` and ``nodes(ids:)``: any object with a global id, fetched again by it, seen or
hidden exactly as its own lookup sees or hides it (the same loader answers both)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import strawberry

from schema.chargebacks import load_chargeback
from schema.context import Info
from schema.corrections import load_adjustment_proposal
from schema.errors import BAD_USER_INPUT, ClientError, require_principal
from schema.gifts import load_gift
from schema.journal import load_journal_entry
from schema.nodes import Node, decode_global_id
from schema.payouts import load_payout, load_payout_method
from schema.purchases import load_purchase, load_refund
from schema.settlement import load_reconciliation_exception, load_settlement_report
from schema.streams import load_stream

MAX_NODES = 100
"""Ids one ``nodes`` request may name, as many as a page holds."""

Loader = Callable[[Info, int], Awaitable[Node | None]]

LOADERS: Mapping[str, Loader] = {
    "Purchase": load_purchase,
    "Stream": load_stream,
    "Payout": load_payout,
    "PayoutMethod": load_payout_method,
    "Gift": load_gift,
    "SettlementReport": load_settlement_report,
    "JournalEntry": load_journal_entry,
    "Refund": load_refund,
    "Chargeback": load_chargeback,
    "AdjustmentProposal": load_adjustment_proposal,
    "ReconciliationException": load_reconciliation_exception,
}
"""Every type that implements Node, and the loader its own lookup answers with: each gates by
the type's rule in :data:`schema.authorization.NODES`, as the type's own fields do."""


async def _load(info: Info, id: str) -> Node | None:
    decoded = decode_global_id(id)
    if decoded is None or decoded[0] not in LOADERS:
        return None
    type_name, pk = decoded
    return await LOADERS[type_name](info, pk)


@strawberry.type
class NodeQueries:
    @strawberry.field(
        description="Any object by its global id, as its own lookup answers it: null when "
        "there is none or it is not yours to see; the same role errors (a journal entry is "
        "finance's). A row id alone is not a global id here."
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        require_principal(info)
        return await _load(info, id)

    @strawberry.field(
        description=f"Objects by their global ids, in the order asked, each as node(id:) "
        f"answers it (null where it does; an id of a type your roles may not read refuses the "
        f"whole list, FORBIDDEN). At most {MAX_NODES} ids; each counts as an item of a page in "
        "the query's cost."
    )
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        require_principal(info)
        if len(ids) > MAX_NODES:
            raise ClientError(BAD_USER_INPUT, f"'ids' holds at most {MAX_NODES} ids")
        return [await _load(info, id) for id in ids]
