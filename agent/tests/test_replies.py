"""The agent's replies have exactly the fields docs/protocol.md lists: every request of the
shared reply vectors (tests/vectors/replies.json, which the Rust tests check against the typed
replies) is sent to the agent, and its result must have the vector's shape."""
import json
import os

import pytest

from conftest import REPO

VECTORS = os.path.join(REPO, "tests", "vectors", "replies.json")
with open(VECTORS) as f:
    CASES = json.load(f)


def kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__


def same_shape(got, want, where="result"):
    """`got` has `want`'s shape: the same object keys, recursively, list items shaped alike
    (an empty list matches any; a list of several items, like a [name, size] pair, item by
    item), scalars of the same kind (numbers are numbers)."""
    if isinstance(want, dict):
        assert isinstance(got, dict), (where, got)
        assert sorted(got) == sorted(want), (where, sorted(got), sorted(want))
        for k in want:
            same_shape(got[k], want[k], where + "." + k)
    elif isinstance(want, list):
        assert isinstance(got, list), (where, got)
        if len(want) > 1:  # a tuple: [name, size]
            assert len(got) == len(want), (where, got, want)
            for i, item in enumerate(got):
                same_shape(item, want[i], "%s[%d]" % (where, i))
        elif got and want:
            for item in got:
                same_shape(item, want[0], where + "[]")
    elif want is not None:
        assert kind(got) == kind(want), (where, got, want)


def test_the_vectors_cover_every_command():
    names = {c["name"] for c in CASES}
    for n in ("blink led", "read GPIOs", "write GPIOs", "ping", "info", "stop", "reset",
              "list files", "remove file", "file", "script", "eval", "exec"):
        assert n in names, n


# `reset` restarts the agent this module shares with others; the conformance suite covers it.
@pytest.mark.parametrize("case", [c for c in CASES if c["name"] != "reset"], ids=lambda c: c["name"])
def test_reply_has_exactly_the_documented_fields(client, node, case):
    if case["name"] == "remove file":  # something to remove
        client.ok(node.name, {"type": "file", "filename": "vector.txt", "content": "hi"})
    kw = case["request"].get("kwargs") or {}
    if case["name"] == "read file":  # something to read
        client.ok(node.name, {"type": "file", "filename": kw["filename"], "content": "hi"})
    if case["name"] in ("make dir", "remove dir"):  # absent to make, present to remove
        p = os.path.join(node.dir, "node", kw["path"])
        if os.path.isdir(p):
            os.rmdir(p)
        if case["name"] == "remove dir":
            os.makedirs(p)
    got = client.ok(node.name, dict(case["request"]))
    want = case["result"]
    if case["name"] == "info":
        # `free_memory`, `heap`, `mem_peak` may be null where unknown; on a board they are known.
        assert all(isinstance(got[k], int) for k in ("free_memory", "heap", "mem_peak")), got
    same_shape(got, want)
