import base64
import hashlib
import json
import os

import pytest

from conftest import PROTOCOL_KINDS, TIMEOUT, Agent, Broker, Client

VECTORS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "tests", "vectors", "requests.json")


def cmd(command, **kwargs):
    return {"type": "command", "command": command, "kwargs": kwargs}


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
    line = client.log_line(node.name, lambda t: '"result"' in t and '[16, ' in t, since)
    d = json.loads(line)
    assert d["ok"] is True and [2, 1] in d["result"]


def test_seed_blink_led(client, node):
    r = client.request(node.name, {'type': 'command', 'command': 'blink led',
                                   'kwargs': {'times': 10, 'forever': False, 'on_seconds': 0.05, 'off_seconds': 0.05}})
    assert r["result"] == {"blinking": True}
    # the agent keeps answering while the LED blinks in the background
    ping(client, node)
    states = set()
    for _ in range(40):
        states.add(dict(client.ok(node.name, cmd("read GPIOs", pins=[2])))[2])
        if states == {0, 1}:
            break
    assert states == {0, 1}, "LED pin 2 never toggled"
    assert client.ok(node.name, cmd("stop")) == {"stopped": []}
    assert dict(client.ok(node.name, cmd("read GPIOs", pins=[2])))[2] == 1  # off (active low)


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
            logs = [json.loads(t) for (tp, t, _) in client.seen[since:]
                    if tp == "plastic/%s/log" % node.name and t.startswith("{")]
            errs = [d["error"]["kind"] for d in logs if d.get("ok") is False]
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
        is_result = (p.get("type") or p.get("message_type")) == "result"
        mid = client.send(node.name, p)
        if is_result:  # a reply is never answered; refusals are logged
            ping(client, node)
            logs = [t for (tp, t, _) in client.seen[since:] if tp == "plastic/%s/log" % node.name]
            got = [json.loads(t)["error"]["kind"] for t in logs if '"ok": false' in t]
            if exp["parse"] == "ok" and got or exp["parse"] == "error" and exp["kind"] not in got:
                failures.append((v["name"], got))
            if [m for m in client.seen[since:] if m[0].endswith("/in") and '"correlation_id": "%s"' % mid in m[1]]:
                failures.append((v["name"], "a result was answered"))
            continue
        if p.get("need_result") is not True:  # no reply on success: only an error can come
            ping(client, node)
            r = [json.loads(t) for (tp, t, _) in client.seen[since:] if ('"correlation_id": "%s"' % mid) in t]
            kinds = [d["error"]["kind"] for d in r if d.get("type") == "result" and not d["ok"]]
            if exp["parse"] == "ok" and set(kinds) & PROTOCOL_KINDS or exp["parse"] == "error" and exp["kind"] not in kinds:
                failures.append((v["name"], kinds))
            continue
        try:
            r = client.reply(node.name, mid, since)
        except TimeoutError:
            failures.append((v["name"], "no reply"))
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
