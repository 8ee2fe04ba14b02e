"""Property tests: Hypothesis state machines drive the books against plain in-memory models.

Each machine keeps three things apart, as TigerBeetle keeps its workload, auditor and reference
model apart: ``*_model`` is the reference model (plain Python, no database: what the books must
say), ``*_checks`` is the auditor (the books read back and compared with the model after every
step), and ``test_*_machine`` is the workload (the rules that drive the system, check each reply
and tell the model what happened). ``harness`` is the plumbing the machines share, ``seeds``
where their runs start. ``test_weighted_average`` proves the release of a wallet's value on its
own, with no machine.
"""

import pytest

# the model and the checks assert too: their failures read as well as a test module's
pytest.register_assert_rewrite(
    "tests.properties.harness",
    "tests.properties.gift_model",
    "tests.properties.gift_checks",
    "tests.properties.ledger_model",
    "tests.properties.ledger_checks",
    "tests.properties.payout_model",
    "tests.properties.payout_checks",
)
