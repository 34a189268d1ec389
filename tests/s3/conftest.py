"""Owns the pytest fixtures of the S3 suite: one pair of throwaway clusters
(A, B) per sync mode, one-way (`--active-passive`) and active-active, shared
by every test of that mode (each test uses its own buckets), and a
per-test bucket name."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


class Pair:
    """Two clusters and how a test drives them: `first` is the S3 client that
    writes a bucket's initial content (A's); `second` makes the later
    changes — A's again one-way, B's active-active, so that B's writes must
    reach A."""

    def __init__(self, a, b, mode, state):
        self.a, self.b, self.mode, self.state = a, b, mode, state
        self.active_passive = mode == "one-way"
        self.first, self.second = a.s3, (a if self.active_passive else b).s3

    def sync(self):
        return harness.run_sync(self.a, self.b, self.state, self.active_passive)

    def sync_and_check(self, *buckets):
        """Syncs, then asserts that B shows what A shows; returns A's view."""
        self.sync()
        return harness.assert_same(self.a, self.b, buckets)


@pytest.fixture(scope="module", params=["one-way", "active-active"])
def pair(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    weed = harness.weed_bin()
    a, b = harness.Cluster(str(root / "a"), weed, "A"), harness.Cluster(str(root / "b"), weed, "B")
    try:
        a.start()
        b.start()
        yield Pair(a, b, request.param, str(root / "state.db"))
    finally:
        harness.stop_clusters([a, b])


@pytest.fixture
def bucket(request):
    """A bucket name of this test's own (lowercase, DNS-style)."""
    return request.node.originalname.removeprefix("test_").replace("_", "-")[:50]
