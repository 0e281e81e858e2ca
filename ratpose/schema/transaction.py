"""make() in one transaction, for tables whose inputs are large arrays."""
from __future__ import annotations


class OneTransactionMake:
    """Mix in before dj.Computed: populate runs make_fetch -> make_compute -> make_insert in one transaction.

    DataJoint 2.3 runs a tripartite make (make_fetch/make_compute/make_insert) twice around the
    computation and compares deepdiff.DeepHash of both fetches, which walks every array element in
    Python: ~15 us and ~200 bytes per element, i.e. about an hour and tens of GB for one 2-hour
    226 fps session (benchmarks/bench_scale.py). A plain make() holds the transaction during the
    computation instead, which is short for these tables.
    """

    def make(self, key):
        self.make_insert(key, *self.make_compute(key, *self.make_fetch(key)))
