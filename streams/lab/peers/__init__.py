"""Peers for `promo bench`: the same job written another way, run on the same data.

- `quix`: quixstreams, with its own RocksDB State and a repartition by user (streams/lab/peers/quix.py);
- `naive_faust`: one Faust agent iterating one event at a time, the baseline we left behind
  (streams/lab/peers/naive_faust.py).

Both reuse the contract's pure code (decoder, partition gate, per-user credits: streams/lab/peers/job.py)
and write the same campaign totals to a chdb store of their own. `run_peer` runs one as its own
process and measures it (streams/lab/peers/runner.py).
"""

from streams.lab.peers.runner import KINDS, PeerResult, run_peer

__all__ = ["KINDS", "PeerResult", "run_peer"]
