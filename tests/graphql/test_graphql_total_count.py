"""totalCount over HTTP: the finance lists that are short (adjustment proposals, settlement
reports, reconciliation exceptions) count every item, all pages together and within their
filter; every other connection answers null, as docs/graphql.md says.

The proposals: finance proposes three fee adjustments, and another finance person rejects one."""

from __future__ import annotations

import pytest

from tests.conftest import GraphQLClient
from tests.graphql.test_graphql_corrections import PROPOSE, REJECT, as_finance, fee_input

PROPOSALS = """
query($status: AdjustmentStatus, $first: Int!, $after: String) {
  adjustmentProposals(status: $status, first: $first, after: $after) {
    totalCount edges { node { id } } pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_adjustment_proposals_count_every_page_and_their_filter(gql: GraphQLClient) -> None:
    ids = [
        (await as_finance(gql, PROPOSE, {"input": fee_input()}))["proposal"]["id"] for _ in "abc"
    ]
    rejected = await as_finance(
        gql, REJECT, {"input": {"proposalId": ids[0], "reason": "a duplicate"}}, "fin-b"
    )
    assert rejected["errors"] == []

    first = await as_finance(gql, PROPOSALS, {"first": 2})
    second = await as_finance(gql, PROPOSALS, {"first": 2, "after": first["pageInfo"]["endCursor"]})
    proposed = await as_finance(gql, PROPOSALS, {"status": "PROPOSED", "first": 2})
    posted = await as_finance(gql, PROPOSALS, {"status": "POSTED", "first": 2})

    # Three in all on every page (two on the first, one on the second); two still proposed.
    assert (first["totalCount"], len(first["edges"])) == (3, 2)
    assert (second["totalCount"], len(second["edges"])) == (3, 1)
    assert (proposed["totalCount"], posted["totalCount"]) == (2, 0)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("{ settlementReports { totalCount } }", "settlementReports"),
        ("{ reconciliationExceptions(status: null) { totalCount } }", "reconciliationExceptions"),
        ("{ journal { totalCount } }", "journal"),
        ("{ payoutsInFlight { totalCount } }", "payoutsInFlight"),
    ],
)
async def test_short_lists_count_and_the_others_answer_null(
    gql: GraphQLClient, query: str, field: str
) -> None:
    reply = await gql(query, user="fin", roles=("finance",))

    counted = field in ("settlementReports", "reconciliationExceptions")
    assert reply == {"data": {field: {"totalCount": 0 if counted else None}}}
