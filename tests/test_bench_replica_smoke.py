"""The benchmark's read phase with and without a replica, run for half a second each: every
wallet read back as the books hold it, every history complete, no read failed, and the replica
answered reads in the run that has one (and none in the run without). Nothing here is timed."""

from __future__ import annotations

from bench.replica_reads import ReplicaReads, run_replica_reads


def test_reads_with_and_without_a_replica_agree_with_the_books() -> None:
    said: list[str] = []
    result: ReplicaReads = run_replica_reads(seconds=0.5, warmup=0.0, say=said.append, readers=4)
    assert result.failures() == []
    assert result.without.on_replica == 0 and result.without.on_primary == 0
    assert result.with_replica.on_replica > 0
    for run in (result.without, result.with_replica):
        assert run.wallet.completed > 0 and run.history.completed > 0
    assert result.to_json()["wallet_ratio"] is not None
