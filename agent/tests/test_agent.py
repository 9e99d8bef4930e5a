import base64
import hashlib
import json
import os
import uuid

import pytest

from conftest import PROTOCOL_KINDS, REPO, TIMEOUT, Agent, Broker, Client

VECTORS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "tests", "vectors", "requests.json")


def cmd(command, **kwargs):
    return {"type": "command", "command": command, "kwargs": kwargs}


def pin_states(client, node, pin, timeout=5.0):
    """The values a pin shows while we keep reading it (a pin has no event to wait on)."""
    import time
    seen = set()
    end = time.monotonic() + timeout
    while seen != {0, 1} and time.monotonic() < end:
        seen.add(dict(client.ok(node.name, cmd("read GPIOs", pins=[pin])))[pin])
    return seen


def ping(client, node):
    assert client.ok(node.name, cmd("ping")) == "pong"


# ---- seed messages as written ---------------------------------------------------------------

def test_seed_eval(client, node):
    r = client.request(node.name, {'type': 'eval', 'to_evaluate': '2+3', 'need_result': True})
    assert r["ok"] is True and r["result"] == 5
    assert r["sender"] == node.name and r["receiver"] == client.name
    assert len(r["message_id"]) == 32 and int(r["message_id"], 16) >= 0
    assert isinstance(r["time_stamp"], (int, float))


def test_seed_exec_prints_into_stdout(client, node):
    r = client.request(node.name, {'type': 'exec', 'to_exec': 'print("Testing exec !")'})
    assert r["ok"] is True and r["result"] is None
    assert r["stdout"] == "Testing exec !\n"


def test_seed_exec_without_need_result_sends_no_reply(client, node):
    since = client.mark()
    mid = client.send(node.name, {'type': 'exec', 'to_exec': 'seed_x = 41'})
    ping(client, node)  # requests are handled in order: the exec is done by now
    assert client.ok(node.name, {"type": "eval", "to_evaluate": "seed_x + 1"}) == 42
    assert not [m for m in client.seen[since:] if '"correlation_id": "%s"' % mid in m[1]]


def test_seed_gpio_commands(client, node):
    client.send(node.name, {'type': 'command', 'command': 'write GPIOs',
                            'kwargs': {'pins_and_values': [(2, 0), (2, 1), (2, 0)]}})
    r = client.request(node.name, {'type': 'command', 'command': 'read GPIOs', 'need_result': True})
    pins = dict(r["result"])
    assert sorted(pins) == [0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16]
    assert pins[2] == 0
    assert r["result"] == sorted(r["result"])
    assert client.ok(node.name, cmd("write GPIOs", pins_and_values=[[2, 1]])) == [[2, 1]]


def test_seed_dicts_with_no_envelope_answer_on_the_log_topic(client, node):
    since = client.mark()
    client.send(node.name, {'type': 'command', 'command': 'read GPIOs', 'need_result': True}, stamp=False)
    line = client.log_line(node.name, lambda d: d["source"] == "reply" and '[16, ' in d["text"], since)
    assert line["node"] == node.name and line["level"] == "info"
    d = json.loads(line["text"])
    assert d["ok"] is True and [2, 1] in d["result"]


def test_seed_blink_led(client, node):
    r = client.request(node.name, {'type': 'command', 'command': 'blink led',
                                   'kwargs': {'times': 10, 'forever': True, 'on_seconds': 0.05, 'off_seconds': 0.05}})
    assert r["result"] == {"blinking": True}
    # the agent keeps answering while the LED blinks in the background
    ping(client, node)
    assert client.ok(node.name, cmd("info"))["blinking"] is True
    assert pin_states(client, node, 2) == {0, 1}, "LED pin 2 never toggled"
    assert client.ok(node.name, cmd("stop")) == {"stopped": [], "still_running": [], "blink_stopped": True}
    assert dict(client.ok(node.name, cmd("read GPIOs", pins=[2])))[2] == 1  # off (active low)
    assert client.ok(node.name, cmd("info"))["blinking"] is False
    assert client.ok(node.name, cmd("stop")) == {"stopped": [], "still_running": [], "blink_stopped": False}


def test_a_blink_that_ended_is_not_blinking(client, node):
    assert client.ok(node.name, cmd("blink led", times=1, on_seconds=0, off_seconds=0)) == {"blinking": True}
    import time
    end = time.monotonic() + TIMEOUT
    while client.ok(node.name, cmd("info"))["blinking"]:  # (no event says a blink ended)
        assert time.monotonic() < end, "a blink of one flash never ended"
    assert client.ok(node.name, cmd("stop"))["blink_stopped"] is False


INFO_KEYS = {"name", "platform", "version", "protocol", "uptime", "free_memory", "heap", "mem_peak", "scripts",
             "blinking", "groups"}


def test_every_reply_has_exactly_the_documented_fields(client, node):
    """docs/protocol.md, "Types" and "Built-in commands": these fields, no more, no fewer."""
    info = client.ok(node.name, cmd("info"))
    assert set(info) == INFO_KEYS, set(info) ^ INFO_KEYS
    assert isinstance(info["uptime"], (int, float)) and isinstance(info["blinking"], bool)
    for k in ("free_memory", "heap", "mem_peak"):
        assert isinstance(info[k], int) and info[k] > 0, info
    assert client.ok(node.name, cmd("blink led", times=0)) == {"blinking": True}
    assert client.ok(node.name, {"type": "script", "name": "fields", "script": "x = 1"}) == {"name": "fields", "started": True}
    r = client.ok(node.name, {"type": "file", "filename": "f1.txt", "content": "ab", "total": 4,
                              "sha256": hashlib.sha256(b"abcd").hexdigest()})
    assert r == {"filename": "f1.txt", "received": 2, "total": 4, "complete": False}
    r = client.ok(node.name, {"type": "file", "filename": "f1.txt", "content": "cd", "offset": 2, "total": 4,
                              "sha256": hashlib.sha256(b"abcd").hexdigest()})
    assert r == {"filename": "f1.txt", "received": 4, "total": 4, "complete": True,
                 "sha256": hashlib.sha256(b"abcd").hexdigest()}
    files = client.ok(node.name, cmd("list files"))
    assert ["f1.txt", 4] in files and all(isinstance(p, str) and isinstance(n, int) and len(e) == 2
                                          for e in files for p, n in [e])
    assert client.ok(node.name, cmd("remove file", filename="f1.txt")) == {"removed": "f1.txt"}
    assert client.ok(node.name, cmd("ping")) == "pong"
    r = client.request(node.name, cmd("stop", name="never-started"))
    assert r["ok"] is False and r["error"]["kind"] == "NotFound" and "never-started" in r["error"]["message"], r
    assert set(client.ok(node.name, cmd("stop"))) == {"stopped", "still_running", "blink_stopped"}


# ---- replies ---------------------------------------------------------------------------------

@pytest.mark.parametrize("expr,value", [("0", 0), ("[]", []), ("False", False), ("''", ""), ("None", None),
                                        ("{}", {}), ("(1, 'a')", [1, "a"]), ("{'a': [1.5, None]}", {"a": [1.5, None]})])
def test_falsy_and_plain_results_come_back_intact(client, node, expr, value):
    r = client.request(node.name, {"type": "eval", "to_evaluate": expr})
    assert r["ok"] is True and "result" in r and r["result"] == value and "repr" not in r, r


@pytest.mark.parametrize("expr,text", [("{1, 2}", "{"), ("b'ab'", "b'ab'"), ("{1: 2}", "{1: 2}"),
                                       ("len", "<function"), ("float('nan')", "nan"), ("[1, {2: 3}]", "[1, {2: 3}]")])
def test_values_json_cannot_hold_come_back_as_repr(client, node, expr, text):
    r = client.request(node.name, {"type": "eval", "to_evaluate": expr})
    assert r["ok"] is True and r["repr"] is True and r["result"].startswith(text), r


def test_errors_carry_kind_message_traceback_even_without_need_result(client, node):
    since = client.mark()
    mid = client.send(node.name, {"type": "eval", "to_evaluate": "1/0"})
    r = client.reply(node.name, mid, since)
    assert r["ok"] is False
    assert r["error"]["kind"] == "ZeroDivisionError"
    assert "zero" in r["error"]["message"]
    assert r["error"]["traceback"].startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError" in r["error"]["traceback"]


def test_exec_error_keeps_stdout_and_namespace_persists(client, node):
    r = client.request(node.name, {"type": "exec", "to_exec": "ns_y = 7\nprint('before')\nraise ValueError('boom')"})
    assert r["ok"] is False and r["error"]["kind"] == "ValueError" and r["error"]["message"] == "boom"
    assert r["stdout"] == "before\n"
    assert client.ok(node.name, {"type": "eval", "to_evaluate": "ns_y * 6"}) == 42


def test_syntax_error_and_system_exit_do_not_kill_the_agent(client, node):
    r = client.request(node.name, {"type": "exec", "to_exec": "def ("})
    assert r["ok"] is False and r["error"]["kind"] == "SyntaxError"
    r = client.request(node.name, {"type": "exec", "to_exec": "import sys\nsys.exit(3)"})
    assert r["ok"] is False and r["error"]["kind"] == "SystemExit"
    ping(client, node)
    assert node.alive()


def test_memory_error_is_an_error_reply(client, node):
    r = client.request(node.name, {"type": "exec", "to_exec": "big = bytearray(10 * 1024 * 1024)"})
    assert r["ok"] is False and r["error"]["kind"] == "MemoryError", r
    ping(client, node)


def test_print_in_functions_of_the_namespace_is_captured(client, node):
    client.ok(node.name, {"type": "exec", "to_exec": "def shout(a, b=1):\n    print('sum', a + b)\n    return [a, b]"})
    r = client.request(node.name, {"type": "function", "function": "shout", "args": [2], "kwargs": {"b": 3}})
    assert r["result"] == [2, 3] and r["stdout"] == "sum 5\n"


# ---- every shared vector -----------------------------------------------------------------------

def _vector_payload(v):
    if "raw" in v:
        return v["raw"]
    if "raw_repeat" in v:
        rr = v["raw_repeat"]
        return rr["head"] + rr["fill"] * (rr["size"] - len(rr["head"]) - len(rr["tail"])) + rr["tail"]
    return None


def test_vectors_file_covers_the_protocol():
    vs = json.load(open(VECTORS))
    names = [v["name"] for v in vs]
    assert len(names) == len(set(names))
    kinds = {v["expect"].get("kind") for v in vs}
    assert PROTOCOL_KINDS | {"unanswerable"} <= kinds
    types = {(v.get("payload") or {}).get("type") for v in vs}
    assert {"command", "eval", "exec", "script", "file", "function", "result"} <= types
    commands = {v["payload"].get("command") for v in vs if "payload" in v}
    assert {"blink led", "read GPIOs", "write GPIOs", "ping", "info", "stop", "reset", "list files", "remove file"} <= commands


def test_every_vector(client, node):
    failures = []
    for v in json.load(open(VECTORS)):
        if v.get("blocks"):
            continue  # the seed's blocking script: test_seed_script_blocks_the_agent
        exp = v["expect"]
        since = client.mark()
        raw = _vector_payload(v)
        if raw is not None:
            client.publish("plastic/%s/in" % node.name, raw)
            ping(client, node)
            errs = client.log_kinds(node.name, since)
            if exp["parse"] == "ok":
                if errs:
                    failures.append((v["name"], errs))
            elif exp["kind"] == "unanswerable":
                if not errs:
                    failures.append((v["name"], "not logged"))
            elif exp["kind"] not in errs:
                failures.append((v["name"], errs))
            continue
        p = dict(v["payload"])
        p.setdefault("need_result", True)
        # a reply, or a pool member's `taken` notice, is never answered; refusals are logged
        is_result = (p.get("type") or p.get("message_type")) in ("result", "taken")
        mid = client.send(node.name, p)
        if is_result:
            ping(client, node)
            got = client.log_kinds(node.name, since)
            if exp["parse"] == "ok" and got or exp["parse"] == "error" and exp["kind"] not in got:
                failures.append((v["name"], got))
            if [m for m in client.seen[since:] if m[0].endswith("/in") and '"correlation_id": "%s"' % mid in m[1]]:
                failures.append((v["name"], "a result was answered"))
            continue
        if p.get("need_result") is not True:  # no reply on success: only an error can come
            ping(client, node)
            r = [json.loads(t) for (tp, t, _) in client.seen[since:] if tp.endswith("/in") and ('"correlation_id": "%s"' % mid) in t]
            kinds = [d["error"]["kind"] for d in r if d.get("type") == "result" and not d["ok"]] + client.log_kinds(node.name, since)
            if exp["parse"] == "ok" and set(kinds) & PROTOCOL_KINDS or exp["parse"] == "error" and exp["kind"] not in kinds:
                failures.append((v["name"], kinds))
            continue
        try:
            r = client.reply(node.name, mid, since)
        except TimeoutError:
            failures.append((v["name"], "no reply"))
            continue
        if "ok" not in r:
            failures.append((v["name"], "odd reply", r))
            continue
        kind = None if r["ok"] else r["error"]["kind"]
        if exp["parse"] == "ok":
            if kind in PROTOCOL_KINDS:
                failures.append((v["name"], kind, r["error"]["message"]))
        elif kind != exp["kind"]:
            failures.append((v["name"], kind, exp["kind"], r.get("error")))
        if p.get("command") == "reset":
            client.status(node.name, "online", since, timeout=20)
    client.ok(node.name, cmd("stop"))
    assert not failures, "\n".join(map(repr, failures))
    assert node.alive()


def test_function_returning_a_coroutine_is_awaited(client, node):
    client.ok(node.name, {"type": "exec", "to_exec": "import asyncio\nasync def twice(x):\n    await asyncio.sleep_ms(20)\n    return x * 2"})
    r = client.request(node.name, {"type": "function", "function": "twice", "args": [21]})
    assert r["ok"] is True and r["result"] == 42
    r = client.request(node.name, {"type": "function", "function": "twice", "args": [None]})
    assert r["ok"] is False and r["error"]["kind"] == "TypeError"


# ---- files -----------------------------------------------------------------------------------

def chunk_size(client, node, most=2048):
    """Raw bytes per file chunk, sized to what the node announced (`max_payload`) as `plastic cp`
    does: base64 makes 4 of 3, and the envelope needs < 400 bytes."""
    mp = client.status(node.name, "online").get("max_payload", 262144)
    return min(most, (mp - 400) // 4 * 3)


def upload(client, node, filename, data, chunk=None, sha=None):
    chunk = chunk or chunk_size(client, node)
    sha = sha or hashlib.sha256(data).hexdigest()
    r = None
    offsets = range(0, len(data), chunk) if data else [0]
    for off in offsets:
        piece = data[off:off + chunk]
        r = client.request(node.name, {"type": "file", "filename": filename, "encoding": "base64",
                                       "content": base64.b64encode(piece).decode(), "offset": off,
                                       "total": len(data), "sha256": sha}, timeout=20)
        if not r["ok"]:
            return r
        assert r["result"]["received"] == off + len(piece)
        assert r["result"]["complete"] is (off + len(piece) == len(data))
    return r


def test_64k_upload_in_chunks_then_bad_sha_keeps_old_file(client, node):
    data = bytes((i * 7 + i // 256) % 256 for i in range(64 * 1024))
    r = upload(client, node, "blob.bin", data)
    assert r["ok"] and r["result"] == {"filename": "blob.bin", "received": 65536, "total": 65536,
                                       "complete": True, "sha256": hashlib.sha256(data).hexdigest()}
    path = os.path.join(node.dir, "node", "blob.bin")
    assert open(path, "rb").read() == data
    assert ["blob.bin", 65536] in client.ok(node.name, cmd("list files"))
    # a second transfer with a wrong sha256 fails at the end and leaves the old file alone
    other = bytes(reversed(data[:10000]))
    r = upload(client, node, "blob.bin", other, sha="0" * 64)
    assert r["ok"] is False and r["error"]["kind"] == "HashMismatch" and "sha256" in r["error"]["message"]
    assert open(path, "rb").read() == data
    assert not [f for f in os.listdir(os.path.join(node.dir, "node")) if f.startswith(".")]
    assert not [p for p, _ in client.ok(node.name, cmd("list files")) if p.startswith(".")]


def test_chunk_out_of_order_says_which_offset_it_expects(client, node):
    data = b"x" * 5000
    sha = hashlib.sha256(data).hexdigest()
    msg = {"type": "file", "filename": "ooo.txt", "content": "x" * 1000, "total": 5000, "sha256": sha}
    assert client.ok(node.name, dict(msg, offset=0))["received"] == 1000
    r = client.request(node.name, dict(msg, offset=3000))
    assert r["ok"] is False and r["error"]["kind"] == "OutOfOrder" and "expects offset 1000" in r["error"]["message"]
    assert not os.path.exists(os.path.join(node.dir, "node", "ooo.txt"))


def resume_question(filename, total, sha):
    return {"type": "file", "filename": filename, "content": "", "offset": 0, "total": total,
            "sha256": sha, "resume": True}


def no_temp_files(node):
    return not [f for f in os.listdir(os.path.join(node.dir, "node")) if f.startswith(".")]


def test_upload_resumes_from_the_bytes_the_node_has(client, node):
    data = bytes((i * 13 + i // 256) % 256 for i in range(9000))
    sha = hashlib.sha256(data).hexdigest()

    c = chunk_size(client, node)  # 2048, or less on a node that announced less

    def piece(off):
        return {"type": "file", "filename": "resumed.bin", "encoding": "base64", "offset": off,
                "content": base64.b64encode(data[off:off + c]).decode(), "total": len(data), "sha256": sha}
    for off in (0, c, 2 * c):  # cut after three chunks
        assert client.ok(node.name, piece(off))["received"] == off + c
    q = resume_question("resumed.bin", len(data), sha)
    for _ in range(2):  # a question changes nothing: asked again, the same answer
        assert client.ok(node.name, q) == {"filename": "resumed.bin", "received": 3 * c, "total": 9000, "complete": False}
    assert client.ok(node.name, dict(q, sha256=sha.upper()))["received"] == 3 * c  # hex case does not matter
    off = 3 * c
    while off + c < len(data):
        assert client.ok(node.name, piece(off)) == {"filename": "resumed.bin", "received": off + c, "total": 9000,
                                                    "complete": False}
        off += c
    assert client.ok(node.name, piece(off)) == {"filename": "resumed.bin", "received": 9000, "total": 9000,
                                                "complete": True, "sha256": sha}
    assert open(os.path.join(node.dir, "node", "resumed.bin"), "rb").read() == data
    assert no_temp_files(node)
    # finished: nothing to resume, so the question starts the transfer afresh
    assert client.ok(node.name, q) == {"filename": "resumed.bin", "received": 0, "total": 9000, "complete": False}
    assert upload(client, node, "resumed.bin", data)["result"]["complete"] is True
    assert no_temp_files(node)


def test_resume_of_another_file_or_no_transfer_starts_afresh(client, node):
    data = b"a" * 5000
    sha = hashlib.sha256(data).hexdigest()
    msg = {"type": "file", "filename": "again.txt", "content": "a" * 2000, "offset": 0, "total": 5000, "sha256": sha}
    part = os.path.join(node.dir, "node", ".again.txt.part")
    fresh = {"filename": "again.txt", "received": 0, "total": 5000, "complete": False}
    # the same name, another sha256: a different file, so the node starts over
    assert client.ok(node.name, msg)["received"] == 2000
    assert client.ok(node.name, resume_question("again.txt", 5000, hashlib.sha256(b"b" * 5000).hexdigest())) == fresh
    assert os.path.getsize(part) == 0
    r = client.request(node.name, dict(msg, offset=2000))
    assert r["ok"] is False and r["error"]["kind"] == "OutOfOrder" and "expects offset 0" in r["error"]["message"], r
    # the same sha256 with another total: starts over too
    assert client.ok(node.name, msg)["received"] == 2000
    assert client.ok(node.name, resume_question("again.txt", 6000, sha)) == dict(fresh, total=6000)
    # no transfer of that file at all: received 0
    assert client.ok(node.name, resume_question("never.txt", 5000, sha)) == dict(fresh, filename="never.txt")
    assert not os.path.exists(part)  # one transfer at a time: starting another dropped it
    assert upload(client, node, "again.txt", data)["result"]["sha256"] == sha
    assert open(os.path.join(node.dir, "node", "again.txt"), "rb").read() == data
    assert no_temp_files(node)


def test_malformed_resume_questions_are_refused(client, node):
    data = b"m" * 3000
    sha = hashlib.sha256(data).hexdigest()
    msg = {"type": "file", "filename": "mal.txt", "content": "m" * 1000, "offset": 0, "total": 3000, "sha256": sha}
    assert client.ok(node.name, msg)["received"] == 1000
    q = resume_question("mal.txt", 3000, sha)
    no_sha = dict(q)
    del no_sha["sha256"]
    for bad, words in [(dict(q, resume="yes"), "field `resume` must be a boolean"),
                       (dict(q, resume=1), "field `resume` must be a boolean"),
                       (dict(q, resume=[True]), "field `resume` must be a boolean"),
                       (dict(q, offset=1000), "invalid `resume`: a resume question has offset 0"),
                       (dict(q, content="m"), "invalid `resume`: a resume question has offset 0"),
                       (dict(no_sha, total=0), "invalid `resume`: a resume question has offset 0"),
                       (no_sha, "sha256")]:  # (refused earlier: several chunks need the sha256)
        r = client.request(node.name, bad)
        assert r["ok"] is False and r["error"]["kind"] == "ProtocolError" and words in r["error"]["message"], (bad, r)
    assert client.ok(node.name, q)["received"] == 1000  # the refusals left the transfer alone
    # `resume` false or null: an ordinary chunk
    assert client.ok(node.name, dict(msg, offset=1000, resume=False))["received"] == 2000
    r = client.ok(node.name, dict(msg, offset=2000, resume=None))
    assert r["complete"] is True and r["sha256"] == sha
    assert open(os.path.join(node.dir, "node", "mal.txt"), "rb").read() == data


def test_utf8_file_in_a_subdirectory_then_remove(client, node):
    r = client.ok(node.name, {"type": "file", "filename": "lib/notes.txt", "content": "héllo\n"})
    assert r["complete"] is True and r["total"] == len("héllo\n".encode())
    assert open(os.path.join(node.dir, "node", "lib", "notes.txt"), encoding="utf-8").read() == "héllo\n"
    assert client.ok(node.name, cmd("remove file", filename="lib/notes.txt")) == {"removed": "lib/notes.txt"}
    assert not os.path.exists(os.path.join(node.dir, "node", "lib", "notes.txt"))
    r = client.request(node.name, cmd("remove file", filename="lib/notes.txt"))
    assert r["ok"] is False and r["error"]["kind"] == "OSError"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", ".hidden", "a//b", "../config.py", "x/../../y"])
def test_path_traversal_is_refused(client, node, bad):
    r = client.request(node.name, {"type": "file", "filename": bad, "content": "pwned"})
    assert r["ok"] is False and r["error"]["kind"] == "BadPath"
    r = client.request(node.name, cmd("remove file", filename=bad))
    assert r["ok"] is False and r["error"]["kind"] == "BadPath"
    assert "pwned" not in open(os.path.join(node.dir, "config.py")).read()


def test_function_imports_an_uploaded_module(client, node):
    src = "def add(a, b=0):\n    print('adding', a, b)\n    return a + b\n\nclass K:\n    @staticmethod\n    def zero():\n        return 0\n"
    assert client.ok(node.name, {"type": "file", "filename": "functions.py", "content": src})["complete"]
    r = client.request(node.name, {"type": "function", "function": "functions.add", "args": [2], "kwargs": {"b": 40}})
    assert r["ok"] and r["result"] == 42 and r["stdout"] == "adding 2 40\n"
    assert client.ok(node.name, {"type": "function", "function": "functions.K.zero"}) == 0
    r = client.request(node.name, {"message_type": "function", "name": "functions.nope"})
    assert r["ok"] is False and r["error"]["kind"] == "AttributeError"
    assert client.ok(node.name, {"type": "exec", "to_exec": "import functions"}) is None
    assert client.ok(node.name, {"type": "eval", "to_evaluate": "functions.add(1, 1)"}) == 2


# ---- scripts ---------------------------------------------------------------------------------

def test_script_output_goes_to_log_and_crash_reports_traceback(client, node):
    since = client.mark()
    r = client.ok(node.name, {"type": "script", "name": "crashy",
                              "script": "print('starting crashy')\ndef f():\n    return 1/0\nf()\n"})
    assert r == {"name": "crashy", "started": True}
    client.log_line(node.name, lambda d: d == dict(d, source="script:crashy", text="started"), since)
    client.log_line(node.name, lambda d: d["source"] == "script:crashy" and d["text"] == "starting crashy", since)
    line = client.log_line(node.name, lambda d: d["source"] == "script:crashy" and d["text"].startswith("crashed:\n"), since)
    assert line["level"] == "error" and line["node"] == node.name
    tb = line["text"]
    assert "Traceback (most recent call last):" in tb and "ZeroDivisionError" in tb and "crashy.py" in tb
    assert open(os.path.join(node.dir, "node", "crashy.py")).read().startswith("print('starting crashy')")
    ping(client, node)


ASYNC_SCRIPT = """
import asyncio, machine, plastic
led = machine.Pin(13, machine.Pin.OUT)
count = 0
async def main():
    global count
    print('async script up')
    while True:
        count += 1
        led.value(count % 2)
        if count == 3:
            plastic.publish('ticks', {'count': count, 'name': plastic.name})
            r = await plastic.arequest(plastic.name, {'type': 'eval', 'to_evaluate': '6*7'})
            print('arequest gave', r)
        await asyncio.sleep_ms(20)
"""


def test_async_script_runs_while_node_answers_and_stop_ends_it(client, node):
    since = client.mark()
    assert client.ok(node.name, {"type": "script", "name": "ticker", "script": ASYNC_SCRIPT})["started"]
    client.log_line(node.name, lambda d: d["text"] == "async script up" and d["source"] == "script:ticker", since)
    ev = client.wait(lambda tp, t, r: tp == "plastic/%s/events/ticks" % node.name, since)
    assert json.loads(ev[1]) == {"count": 3, "name": node.name}
    client.log_line(node.name, lambda d: d["text"] == "arequest gave 42", since)
    info = client.ok(node.name, cmd("info"))
    assert info["scripts"] == ["ticker"]
    assert pin_states(client, node, 13) == {0, 1}  # the script toggles pin 13 while we talk
    # deploying the same name replaces the running script
    assert client.ok(node.name, {"type": "script", "name": "ticker", "script": ASYNC_SCRIPT})["started"]
    client.log_line(node.name, lambda d: d["source"] == "script:ticker" and d["text"] == "stopped", since)
    assert client.ok(node.name, cmd("info"))["scripts"] == ["ticker"]
    assert client.ok(node.name, cmd("stop", name="ticker")) == {"stopped": ["ticker"], "still_running": [],
                                                                "blink_stopped": False}
    assert client.ok(node.name, cmd("info"))["scripts"] == []
    r = client.request(node.name, cmd("stop", name="ticker"))
    assert r["ok"] is False and r["error"]["kind"] == "NotFound", r


def test_plastic_request_from_exec_to_another_node(client, node, broker):
    responder = Client(broker.port)
    try:
        def answer(c, u, m):
            d = json.loads(m.payload)
            if d.get("type") == "eval":
                reply = {"type": "result", "correlation_id": d["message_id"], "ok": d["to_evaluate"] != "fail",
                         "sender": responder.name, "message_id": uuid.uuid4().hex}
                if reply["ok"]:
                    reply["result"] = "answer to " + d["to_evaluate"]
                else:
                    reply["error"] = {"kind": "ValueError", "message": "asked to fail", "traceback": "tb"}
                c.publish("plastic/%s/in" % d["reply_to"], json.dumps(reply), qos=1)
        responder.c.message_callback_add("plastic/%s/in" % responder.name, answer)
        r = client.ok(node.name, {"type": "exec", "to_exec":
                      "import plastic\nr = plastic.request(%r, {'type': 'eval', 'to_evaluate': 'q'})\n"
                      "try:\n    plastic.request(%r, {'type': 'eval', 'to_evaluate': 'fail'})\n"
                      "except plastic.RemoteError as e:\n    err = (e.kind, e.message)\n"
                      "try:\n    plastic.request('nobody-home', {'type': 'eval', 'to_evaluate': 'x'}, timeout=0.3)\n"
                      "except plastic.TimeoutError:\n    tmo = True\n" % (responder.name, responder.name)})
        assert r is None
        assert client.ok(node.name, {"type": "eval", "to_evaluate": "[r, err, tmo]"}) == \
            ["answer to q", ["ValueError", "asked to fail"], True]
        mid = client.ok(node.name, {"type": "eval", "to_evaluate": "plastic.send(%r, {'type': 'exec', 'to_exec': 'pass'})" % client.name})
        assert len(mid) == 32
        sent = client.wait(lambda tp, t, rt: tp == "plastic/%s/in" % client.name and mid in t and '"exec"' in t)
        d = json.loads(sent[1])
        assert d["sender"] == node.name and d["reply_to"] == node.name and d["receiver"] == client.name
    finally:
        responder.close()


SEED_SCRIPT = os.path.join(REPO, "examples", "script_to_deploy.py")


def run_seed_script(client, a):
    """The seed's blocking script, unchanged, on agent a: it blinks, the node keeps answering
    (the agent serves MQTT inside the script's time.sleep), stop ends it, and the node is never
    `lost` (its keepalive goes on: the test outlasts 1.5 x KEEPALIVE)."""
    import time
    start = client.mark()
    client.status(a.name, "online", 0, timeout=20)
    src = open(SEED_SCRIPT).read()
    assert "while True" in src and "time.sleep(" in src
    since = client.mark()
    assert client.ok(a.name, {"type": "script", "script": src}) == {"name": "main", "started": True}
    client.log_line(a.name, lambda d: d["text"] == "_______ deployed from remote _______", since)
    assert pin_states(client, a, 2) == {0, 1}, "the seed script did not blink the LED"
    assert client.ok(a.name, {"type": "eval", "to_evaluate": "2+3"}) == 5
    assert client.ok(a.name, cmd("info"))["scripts"] == ["main"]
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.6 * a.keepalive:  # keepalive: the broker must hear pings meanwhile
        assert client.ok(a.name, {"type": "eval", "to_evaluate": "1"}) == 1
    assert client.ok(a.name, cmd("stop")) == {"stopped": ["main"], "still_running": [], "blink_stopped": False}
    client.log_line(a.name, lambda d: d["source"] == "script:main" and d["text"] == "stopped", since)
    assert client.ok(a.name, cmd("info"))["scripts"] == []
    s = client.mark()
    v = dict(client.ok(a.name, cmd("read GPIOs", pins=[2])))[2]
    assert dict(client.ok(a.name, cmd("read GPIOs", pins=[2])))[2] == v  # stopped: no more toggling
    assert [st for st in statuses(client, a.name, start) if st != "online"] == [], "the node went lost"
    assert a.alive()
    return s


def statuses(client, name, since):
    t = "plastic/%s/status" % name
    return [json.loads(text)["state"] for (topic, text, _) in client.seen[since:] if topic == t]


def test_seed_blocking_script_keeps_the_node_reachable(tmp_root, broker, client, mode):
    a = Agent(tmp_root, mode, broker.port, KEEPALIVE=4)
    a.keepalive = 4
    since = client.mark()
    a.start()
    try:
        client.status(a.name, "online", since, timeout=20)
        run_seed_script(client, a)
    finally:
        a.kill()


def test_a_retained_request_is_refused_and_not_run(tmp_root, broker, client, mode):
    """A broker replays a retained request at every subscribe, flagged retained: not run, logged."""
    a = Agent(tmp_root, mode, broker.port)
    topic = "plastic/%s/in" % a.name
    client.c.publish(topic, json.dumps({"type": "exec", "to_exec": "retained_ran = 1", "need_result": True,
                                        "sender": client.name, "message_id": "r" * 32}), qos=1,
                     retain=True).wait_for_publish(TIMEOUT)
    since = client.mark()
    a.start()
    try:
        client.status(a.name, "online", since, timeout=20)
        assert client.ok(a.name, {"type": "eval", "to_evaluate": "'retained_ran' in globals()"}) is False
        assert "Retained" in client.log_kinds(a.name, since)
        assert not [t for (tp, t, _) in client.seen[since:] if '"correlation_id": "%s"' % ("r" * 32) in t]
    finally:
        client.c.publish(topic, b"", qos=1, retain=True).wait_for_publish(TIMEOUT)  # clears it
        a.kill()


def test_a_payload_with_no_free_block_for_it_is_answered(tmp_root, broker, client, mode):
    """In a fragmented heap a payload up to the announced max_payload is still taken (it goes
    into the receive buffer reserved at start); a bigger one that finds no free block of its
    size gets PayloadTooLarge, not silence; the node then works as before."""
    a = Agent(tmp_root, mode, broker.port)
    since = client.mark()
    a.start()
    try:
        st = client.status(a.name, "online", since, timeout=20)
        client.ok(a.name, {"type": "exec", "to_exec":
                           "frag = []\ntry:\n    while True:\n        frag.append(bytearray(1500))\n"
                           "except MemoryError:\n    pass\nfor i in range(0, len(frag), 2):\n    frag[i] = None"})
        mp = st["max_payload"]
        # what the node announced it takes, even now: its receive buffer was reserved at start
        n = mp - 400
        r = client.request(a.name, {"type": "file", "filename": "big.txt", "content": "x" * n})
        if mode == "py" and not r["ok"]:  # received, but as .py handling it compiles pfiles, which
            assert r["error"]["kind"] == "MemoryError", r  # needs a 1.5 KB block (64-bit port): answered
        else:
            assert r["ok"] and r["result"]["complete"], r
        r = client.request(a.name, {"type": "file", "filename": "big.txt", "content": "x" * (mp + 1000)})
        assert r["ok"] is False and r["error"]["kind"] == "PayloadTooLarge", r
        client.ok(a.name, {"type": "exec", "to_exec": "del frag"})
        assert client.ok(a.name, {"type": "file", "filename": "big.txt", "content": "y" * n})["complete"]
    finally:
        a.kill()


def test_memory_report(client, node):
    info = client.ok(node.name, cmd("info"))
    assert set(info) == INFO_KEYS
    assert info["name"] == node.name and info["protocol"] == 1 and info["groups"] == ["lab"]
    print("\nHEAP[%s] heap=%d free_memory=%d mem_peak=%d" % (node.mode, info["heap"], info["free_memory"], info["mem_peak"]))
    assert info["mem_peak"] < info["heap"]


# ---- presence and reconnection ------------------------------------------------------------------

def boot_of(st):
    """The presence's `boot`: 8 or more lowercase hex digits, random per start of the agent."""
    b = st.get("boot")
    assert isinstance(b, str) and len(b) >= 8 and all(c in "0123456789abcdef" for c in b), st
    return b


def test_presence_online_offline_and_lost(tmp_root, broker, client, mode):
    a = Agent(tmp_root, mode, broker.port, GROUPS=["lab", "g2"])
    since = client.mark()
    a.start()
    try:
        st = client.status(a.name, "online", since, timeout=20)
        assert st["name"] == a.name and st["protocol"] == 1 and st["groups"] == ["lab", "g2"]
        assert set(st) >= {"name", "state", "platform", "version", "protocol", "address", "groups", "since", "boot"}
        # its duplicate memory's size: clients keep no more requests than that in flight to it
        assert st["window"] in (8, 16), st
        # its uptime (seconds, monotonic) and free heap when it announced itself
        assert 0 <= st["uptime"] < 60 and st["mem_free"] > 0, st
        boot1 = boot_of(st)
        # a small heap announces the largest message it can take now (and takes it)
        assert 2048 <= st["max_payload"] < 262144, st
        n = st["max_payload"] - 400
        big = {"type": "file", "filename": "fits.txt", "content": "x" * n}
        assert client.ok(a.name, big) == {"filename": "fits.txt", "received": n, "total": n, "complete": True,
                                          "sha256": hashlib.sha256(b"x" * n).hexdigest()}
        # group and broadcast inboxes are subscribed
        for topic in ("plastic/group/g2/in", "plastic/all/in"):
            s2 = client.mark()
            client.publish(topic, json.dumps({"type": "command", "command": "ping", "need_result": True,
                                              "sender": client.name, "message_id": "b-" + topic[-5:-3]}))
            r = client.wait(lambda tp, t, rt: '"correlation_id": "b-%s"' % topic[-5:-3] in t and a.name in t, s2)
            assert json.loads(r[1])["result"] == "pong"
        since = client.mark()
        a.interrupt()  # Ctrl-C: clean shutdown
        st = client.status(a.name, "offline", since)
        assert st["name"] == a.name and boot_of(st) == boot1
        # started again (a new boot id) then killed: the broker publishes the retained will
        since = client.mark()
        a.start()
        boot2 = boot_of(client.status(a.name, "online", since, timeout=20))
        assert boot2 != boot1
        since = client.mark()
        a.kill()
        st = client.status(a.name, "lost", since, timeout=20)
        assert st["state"] == "lost" and boot_of(st) == boot2
        late = Client(broker.port)  # a newcomer sees the retained state
        try:
            t = late.wait(lambda tp, x, rt: tp == "plastic/%s/status" % a.name)
            assert json.loads(t[1])["state"] == "lost" and t[2] is True and boot_of(json.loads(t[1])) == boot2
        finally:
            late.close()
    finally:
        a.kill()


def test_reconnects_after_broker_restart(tmp_root, client, mode):
    b = Broker(tmp_root).start()
    c = Client(b.port)
    a = Agent(tmp_root, mode, b.port)
    try:
        since = c.mark()
        a.start()
        boot = boot_of(c.status(a.name, "online", since, timeout=20))
        assert c.ok(a.name, {"type": "exec", "to_exec": "kept = 'state survives'"}) is None
        c.close()
        b.stop()
        b.start()  # same port
        c = Client(b.port)
        st = c.status(a.name, "online", 0, timeout=30)  # re-announced (the broker kept no retained state)
        assert st["name"] == a.name
        assert boot_of(st) == boot  # the same program, reconnected: it remembers what it ran
        assert c.ok(a.name, {"type": "eval", "to_evaluate": "kept"}) == "state survives"
        assert a.alive()
    finally:
        a.kill()
        c.close()
        b.stop()


def test_reset_restarts_the_node_program(tmp_root, broker, client, mode):
    a = Agent(tmp_root, mode, broker.port)
    since = client.mark()
    a.start()
    try:
        boot = boot_of(client.status(a.name, "online", since, timeout=20))
        client.ok(a.name, {"type": "exec", "to_exec": "before_reset = 1"})
        since = client.mark()
        assert client.ok(a.name, cmd("reset")) == {"resetting": True}
        assert boot_of(client.status(a.name, "offline", since)) == boot
        assert boot_of(client.status(a.name, "online", since, timeout=20)) != boot  # it forgot what it ran
        r = client.request(a.name, {"type": "eval", "to_evaluate": "before_reset"})
        assert r["ok"] is False and r["error"]["kind"] == "NameError"
    finally:
        a.kill()


def test_round_trip_is_fast_with_tcp_nodelay(client, node):
    import statistics
    import time
    times = []
    for _ in range(30):
        t = time.perf_counter()
        ping(client, node)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print("\nRTT[%s] median %.2f ms, max %.2f ms" % (node.mode, med * 1000, max(times) * 1000))
    assert med < 0.035, "QoS 1 round trip %.1f ms: Nagle's algorithm still on?" % (med * 1000)


def test_duplicate_delivery_runs_once_and_gets_the_same_reply(client, node):
    client.ok(node.name, {"type": "exec", "to_exec": "dup_n = 0"})
    msg = {"type": "exec", "to_exec": "dup_n += 1", "need_result": True, "message_id": "d" * 31 + "1",
           "sender": client.name}
    since = client.mark()
    client.send(node.name, msg)
    client.send(node.name, msg)
    ping(client, node)
    replies = [t for (tp, t, _) in client.seen[since:] if tp.endswith("/in") and '"correlation_id": "%s"' % msg["message_id"] in t]
    assert len(replies) == 2 and replies[0] == replies[1]  # byte for byte
    assert client.ok(node.name, {"type": "eval", "to_evaluate": "dup_n"}) == 1


def test_a_flood_of_replies_does_not_push_requests_out_of_the_duplicate_memory(client, node):
    """docs/protocol.md: replies are never remembered, so a duplicate of a request still runs
    once after more replies than the agent's duplicate memory holds (DEDUP, 8 or 16)."""
    client.ok(node.name, {"type": "exec", "to_exec": "flood_n = 0"})
    msg = {"type": "exec", "to_exec": "flood_n += 1", "need_result": True,
           "message_id": uuid.uuid4().hex, "sender": client.name}
    client.ok(node.name, msg)
    for _ in range(40):  # replies nobody waits for: dropped, and never remembered
        client.send(node.name, {"type": "result", "correlation_id": uuid.uuid4().hex, "ok": True,
                                "result": None})
    again = client.request(node.name, msg)  # the very same request, delivered again
    assert again["ok"] is True
    assert client.ok(node.name, {"type": "eval", "to_evaluate": "flood_n"}) == 1


# ---- abort ------------------------------------------------------------------------------------

def replies_to(client, mid, since):
    return [json.loads(t) for (tp, t, _) in client.seen[since:]
            if tp == "plastic/%s/in" % client.name and '"correlation_id": "%s"' % mid in t]


def test_abort_before_a_request_arrives_refuses_it_when_it_does(client, node):
    """docs/protocol.md, `abort`: an id the node has not seen is remembered as aborted; the
    request is then answered Aborted (a copy gets the same reply), never runs, and is finished."""
    mid = uuid.uuid4().hex
    assert client.ok(node.name, cmd("abort", id=mid)) == {"aborted": mid, "was": "unseen"}
    assert client.ok(node.name, cmd("abort", id=mid)) == {"aborted": mid, "was": "unseen"}  # still so
    msg = {"type": "exec", "to_exec": "abort_ran = 1", "need_result": False, "message_id": mid,
           "sender": client.name}
    since = client.mark()
    client.send(node.name, msg)  # (an error is answered even without need_result)
    r = client.reply(node.name, mid, since)
    assert r["ok"] is False and r["error"]["kind"] == "Aborted", r
    assert r["error"]["message"] == "aborted before it arrived; it was not run", r
    assert r["sender"] == node.name and r["receiver"] == client.name and len(r["message_id"]) == 32
    client.send(node.name, dict(msg, need_result=True))  # a duplicate: not run
    ping(client, node)
    got = replies_to(client, mid, since)
    # The first reply, or (over DEDUP_REPLY_MAX, as this one may be with long names) nothing.
    assert got[0]["error"]["kind"] == "Aborted" and got[1:] in ([], [got[0]]), got
    assert client.ok(node.name, cmd("abort", id=mid)) == {"aborted": mid, "was": "finished"}
    assert client.ok(node.name, {"type": "eval", "to_evaluate": "'abort_ran' in globals()"}) is False
    assert client.log_kinds(node.name, since) == []


def test_abort_of_a_finished_request_leaves_it_as_it_is(client, node):
    mid = client.send(node.name, {"type": "exec", "to_exec": "abort_done = 1", "need_result": True})
    ping(client, node)
    assert client.ok(node.name, cmd("abort", id=mid)) == {"aborted": mid, "was": "finished"}
    since = client.mark()  # its duplicate still gets the kept reply, not Aborted
    client.send(node.name, {"type": "exec", "to_exec": "abort_done = 2", "need_result": True, "message_id": mid})
    r = client.reply(node.name, mid, since)
    assert r["ok"] is True and r["result"] is None, r
    assert client.ok(node.name, {"type": "eval", "to_evaluate": "abort_done"}) == 1


def test_abort_of_an_async_function_still_running_says_running(client, node):
    """An `async` function's coroutine runs as a task: the agent leaves it to end (like
    `interrupt`, it cannot reach it) and says so; its reply comes as usual."""
    client.ok(node.name, {"type": "exec", "to_exec":
                          "import asyncio\nabort_go = asyncio.Event()\nasync def abort_wait():\n"
                          "    await abort_go.wait()\n    return 'ended'"})
    since = client.mark()
    mid = client.send(node.name, {"type": "function", "function": "abort_wait", "need_result": True})
    assert client.ok(node.name, cmd("abort", id=mid)) == {"aborted": mid, "was": "running"}
    client.ok(node.name, {"type": "exec", "to_exec": "abort_go.set()"})
    r = client.reply(node.name, mid, since)
    assert r["ok"] is True and r["result"] == "ended", r
    assert client.ok(node.name, cmd("abort", id=mid)) == {"aborted": mid, "was": "finished"}


@pytest.mark.parametrize("kwargs,words", [({}, "missing field `id`"), ({"id": 5}, "field `id` must be"),
                                          ({"id": ""}, "1 to 128"), ({"id": "x" * 129}, "1 to 128"), ({"id": None}, "missing field `id`")])
def test_abort_needs_an_id(client, node, kwargs, words):
    r = client.request(node.name, {"type": "command", "command": "abort", "kwargs": kwargs})
    assert r["ok"] is False and r["error"]["kind"] == "ProtocolError" and words in r["error"]["message"], r


def test_a_taken_notice_is_ignored(client, node):
    since = client.mark()
    mid = client.send(node.name, {"type": "taken", "correlation_id": uuid.uuid4().hex, "sender": "w-1"})
    client.send(node.name, {"type": "taken"})  # malformed: ignored all the same
    ping(client, node)
    assert not replies_to(client, mid, since) and client.log_kinds(node.name, since) == []


# ---- pools --------------------------------------------------------------------------------------

def test_a_pool_gives_each_request_to_one_member(tmp_root, broker, client, node, mode):
    """docs/protocol.md, "Pools": two members of a pool share 20 requests through the broker's
    shared subscription (Mosquitto takes turns); each is answered once, by the member whose
    `taken` came first, and both members get some."""
    pool = "workers-" + uuid.uuid4().hex[:8]  # (a past run's persistent sessions share nothing here)
    members = [Agent(tmp_root, mode, broker.port, POOLS=[pool, "other"]) for _ in range(2)]
    since = client.mark()
    for a in members:
        a.start()
    try:
        for a in members:
            st = client.status(a.name, "online", since, timeout=20)
            assert st["pools"] == [pool, "other"] and st["groups"] == ["lab"], st
        assert "pools" not in client.status(node.name, "online")  # in no pool: no `pools`
        since = client.mark()
        mids = []
        for i in range(20):
            m = {"type": "eval", "to_evaluate": "%d * 2" % i, "need_result": True, "message_id": uuid.uuid4().hex,
                 "sender": client.name, "receiver": "pool:" + pool, "time_stamp": 1.0}
            client.publish("plastic/pool/%s/in" % pool, json.dumps(m))
            mids.append(m["message_id"])
        for mid in mids:
            client.reply(node.name, mid, since)
        for a in members:  # anything still on its way to a member has arrived by its ping
            ping(client, a)
        names = {a.name for a in members}
        took = {a.name: 0 for a in members}
        for i, mid in enumerate(mids):
            got = replies_to(client, mid, since)
            assert [d["type"] for d in got] == ["taken", "result"], got
            t, r = got
            assert t["sender"] == r["sender"] and r["sender"] in names, got
            assert set(t) == {"type", "correlation_id", "sender", "message_id", "time_stamp"}, t
            assert len(t["message_id"]) == 32 and t["message_id"] != mid and isinstance(t["time_stamp"], (int, float))
            assert r["ok"] is True and r["result"] == i * 2 and r["receiver"] == client.name, r
            took[r["sender"]] += 1
        print("\nPOOL[%s] requests per member: %s" % (mode, sorted(took.values())))
        assert all(took.values()), took
        # no id, or no address: no notice (the request is handled all the same)
        since = client.mark()
        client.publish("plastic/pool/%s/in" % pool, json.dumps({"type": "eval", "to_evaluate": "1", "need_result": True,
                                                                "sender": client.name}))
        client.publish("plastic/pool/%s/in" % pool, json.dumps({"type": "eval", "to_evaluate": "pool_x",
                                                                "message_id": uuid.uuid4().hex}))
        r = client.wait(lambda tp, t, rt: tp == "plastic/%s/in" % client.name and '"correlation_id": ""' in t, since)
        assert json.loads(r[1])["result"] == 1
        line = client.wait(lambda tp, t, rt: tp.endswith("/log") and "NameError" in t and "pool_x" in t, since)
        assert line[0] in ("plastic/%s/log" % a.name for a in members)
        for a in members:
            ping(client, a)
        assert not [t for (tp, t, _) in client.seen[since:] if '"taken"' in t]
    finally:
        for a in members:
            a.kill()


def test_pool_names_are_checked(tmp_root, broker, client, mode):
    import time
    a = Agent(tmp_root, mode, broker.port, POOLS=["no/slash"])
    a.start()
    try:
        end = time.monotonic() + TIMEOUT
        while "invalid pool 'no/slash'" not in a.output():  # main.py reports it and starts again
            assert time.monotonic() < end, a.output()
            time.sleep(0.05)  # polling a process's output, which has no event to wait on
    finally:
        a.kill()


def test_stale_request_is_refused_with_expired(client, node):
    import time
    r = client.request(node.name, {"type": "exec", "to_exec": "stale_ran = 1", "ttl": 5, "time_stamp": time.time() - 60})
    assert r["ok"] is False and r["error"]["kind"] == "Expired"
    r = client.request(node.name, {"type": "eval", "to_evaluate": "'stale_ran' in globals()", "ttl": 30})
    assert r["ok"] is True and r["result"] is False


def test_unrequested_output_is_logged(client, node):
    since = client.mark()
    client.send(node.name, {"type": "exec", "to_exec": "print('nobody asked')"})
    line = client.log_line(node.name, lambda d: d["text"] == "nobody asked", since)
    assert line["source"] == "node" and line["level"] == "info"
