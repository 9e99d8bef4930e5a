"""Downloads (`read file`) and directories (`make dir`, `remove dir`), docs/protocol.md,
"Downloads" and "Built-in commands". The files are put in the node's root directly."""
import base64
import hashlib
import os

import pytest

from test_agent import cmd


def root(node, *parts):
    return os.path.join(node.dir, "node", *parts)


def put(node, name, data):
    p = root(node, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    return p


def error(client, node, msg):
    r = client.request(node.name, msg)
    assert r["ok"] is False, r
    return r["error"]


def download(client, node, name, **kw):
    """Reads `name` chunk by chunk, as a downloader does: from the offsets the replies give,
    until the reply with `sha256`. Returns (bytes, sizes of the chunks, last reply)."""
    got = b""
    sizes = []
    while True:
        r = client.ok(node.name, cmd("read file", filename=name, offset=len(got), **kw), timeout=20)
        assert r["filename"] == name and r["offset"] == len(got), r
        piece = base64.b64decode(r["content"], validate=True)
        assert base64.b64encode(piece).decode() == r["content"]  # standard alphabet, padded
        got += piece
        sizes.append(len(piece))
        end = len(got) == r["size"]
        assert set(r) == {"filename", "offset", "size", "content"} | ({"sha256"} if end else set()), r
        if end:
            return got, sizes, r
        assert len(piece) >= 256, r  # a node returns at least 256 bytes when that many remain
        assert len(sizes) < 1000


def test_multi_chunk_download_of_a_binary_file(client, node):
    data = bytes(range(256)) * 96 + b"\x00\xff\x10"  # 24 KB and a bit: no chunk size divides it
    put(node, "dl/blob.bin", data)
    got, sizes, last = download(client, node, "dl/blob.bin")  # length 16384 by default
    assert got == data and last["sha256"] == hashlib.sha256(data).hexdigest()
    assert len(sizes) >= 2 and max(sizes) <= 16384
    print("\nread file (%s, heap %s): chunks of %s bytes" % (node.mode, node.heap, sizes))
    # asking for less: at most that much, and the same bytes
    got, sizes, last = download(client, node, "dl/blob.bin", length=1000)
    assert got == data and last["sha256"] == hashlib.sha256(data).hexdigest()
    assert max(sizes) <= 1000 and len(sizes) >= 25
    # the most one may ask for: what fits
    r = client.ok(node.name, cmd("read file", filename="dl/blob.bin", length=98304), timeout=20)
    n = len(base64.b64decode(r["content"]))
    assert 256 <= n <= len(data) and base64.b64decode(r["content"]) == data[:n]
    assert ("sha256" in r) is (n == len(data))


def test_a_small_file_in_one_reply(client, node):
    put(node, "small.txt", b"hello\n")
    r = client.ok(node.name, cmd("read file", filename="small.txt"))
    assert r == {"filename": "small.txt", "offset": 0, "size": 6, "content": base64.b64encode(b"hello\n").decode(),
                 "sha256": hashlib.sha256(b"hello\n").hexdigest()}
    r = client.ok(node.name, cmd("read file", filename="small.txt", offset=2, length=3))
    assert r == {"filename": "small.txt", "offset": 2, "size": 6, "content": base64.b64encode(b"llo").decode()}
    r = client.ok(node.name, cmd("read file", filename="small.txt", offset=4, length=100))
    assert r == {"filename": "small.txt", "offset": 4, "size": 6, "content": base64.b64encode(b"o\n").decode(),
                 "sha256": hashlib.sha256(b"hello\n").hexdigest()}


def test_an_empty_file_and_offset_at_the_end(client, node):
    put(node, "empty.txt", b"")
    r = client.ok(node.name, cmd("read file", filename="empty.txt"))
    assert r == {"filename": "empty.txt", "offset": 0, "size": 0, "content": "",
                 "sha256": hashlib.sha256(b"").hexdigest()}
    data = bytes(range(256)) * 4
    put(node, "end.bin", data)
    r = client.ok(node.name, cmd("read file", filename="end.bin", offset=1024))
    assert r == {"filename": "end.bin", "offset": 1024, "size": 1024, "content": "",
                 "sha256": hashlib.sha256(data).hexdigest()}


def test_offset_past_the_end_is_out_of_order(client, node):
    put(node, "past.bin", b"x" * 700)
    e = error(client, node, cmd("read file", filename="past.bin", offset=701))
    assert e["kind"] == "OutOfOrder" and "700" in e["message"], e


def test_missing_file_and_a_directory(client, node):
    e = error(client, node, cmd("read file", filename="no/such.txt"))
    assert e["kind"] == "FileNotFoundError" and "no/such.txt" in e["message"], e
    os.makedirs(root(node, "adir"), exist_ok=True)
    e = error(client, node, cmd("read file", filename="adir"))
    assert e["kind"] == "IsADirectoryError" and "adir" in e["message"], e


@pytest.mark.parametrize("kwargs, words", [
    ({}, "missing field `filename`"),
    ({"filename": 3}, "field `filename` must be str"),
    ({"filename": "small.txt", "offset": -1}, "field `offset` must be"),
    ({"filename": "small.txt", "offset": "0"}, "field `offset` must be"),
    ({"filename": "small.txt", "length": 1.5}, "field `length` must be"),
    ({"filename": "small.txt", "length": 98305}, "98304"),
])
def test_bad_read_kwargs_are_protocol_errors(client, node, kwargs, words):
    put(node, "small.txt", b"hello\n")
    e = error(client, node, {"type": "command", "command": "read file", "kwargs": kwargs})
    assert e["kind"] == "ProtocolError" and words in e["message"], e


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", ".hidden", "a//b", "../config.py", "x/../../y", "", "a/.b"])
def test_bad_paths_are_refused(client, node, bad):
    put(node, ".hidden", b"secret")
    for msg in (cmd("read file", filename=bad), cmd("make dir", path=bad), cmd("remove dir", path=bad)):
        e = error(client, node, msg)
        assert e["kind"] == "BadPath", (msg, e)
    assert os.path.exists(root(node, ".hidden"))


def test_make_and_remove_dir(client, node):
    assert client.ok(node.name, cmd("make dir", path="mk")) == {"made": "mk"}
    assert os.path.isdir(root(node, "mk"))
    assert client.ok(node.name, cmd("make dir", path="mk/sub")) == {"made": "mk/sub"}
    e = error(client, node, cmd("make dir", path="mk"))
    assert e["kind"] == "FileExistsError" and "mk" in e["message"], e
    e = error(client, node, cmd("make dir", path="nope/deeper"))
    assert e["kind"] == "FileNotFoundError", e
    assert not os.path.exists(root(node, "nope"))
    e = error(client, node, cmd("remove dir", path="mk"))  # not empty
    assert e["kind"] == "OSError", e
    put(node, "mk/sub/f.txt", b"f")
    e = error(client, node, cmd("remove dir", path="mk/sub/f.txt"))
    assert e["kind"] == "NotADirectoryError", e
    assert os.path.exists(root(node, "mk/sub/f.txt"))
    assert client.ok(node.name, cmd("remove file", filename="mk/sub/f.txt")) == {"removed": "mk/sub/f.txt"}
    assert client.ok(node.name, cmd("remove dir", path="mk/sub")) == {"removed": "mk/sub"}
    assert client.ok(node.name, cmd("remove dir", path="mk")) == {"removed": "mk"}
    assert not os.path.exists(root(node, "mk"))
    e = error(client, node, cmd("remove dir", path="mk"))
    assert e["kind"] == "FileNotFoundError", e
    for c in ("make dir", "remove dir"):
        e = error(client, node, {"type": "command", "command": c, "kwargs": {}})
        assert e["kind"] == "ProtocolError" and "missing field `path`" in e["message"], e
    assert client.ok(node.name, cmd("ping")) == "pong"
