"""Signed requests (docs/protocol.md, "Signed requests"): the agent's own verifier (psign, run
by the MicroPython unix port) against the shared vectors, then end to end through Mosquitto
with a keyed agent. The test signs with Python's hmac, not with the Rust binary."""
import hashlib
import hmac
import json
import os
import subprocess
import time
import uuid

import pytest

from conftest import AGENT_DIR, MICROPYTHON, REPO, Agent, Broker, Client

SIGNING = os.path.join(REPO, "tests", "vectors", "signing.json")
KEY = "5f" * 16 + "a0" * 8 + "0123456789abcdef"  # 64 hex digits, only for these tests
OTHER_KEY = "77" * 32


def sign(body, key=KEY):
    """The protocol's recipe: HMAC-SHA256 over the bytes, then one more member at the end."""
    sig = hmac.new(bytes.fromhex(key), body, hashlib.sha256).hexdigest()
    return body[:-1] + b',"sig":"' + sig.encode() + b'"}'


def envelope(client, node, msg, **over):
    m = dict(msg)
    m.setdefault("need_result", True)
    m.setdefault("message_id", uuid.uuid4().hex)
    m.setdefault("sender", client.name)
    m.setdefault("reply_to", client.name)
    m.setdefault("receiver", node.name)
    m.setdefault("time_stamp", time.time())
    m.update(over)
    return m


def signed(client, node, msg, key=KEY, **over):
    """(payload bytes, message_id) of a signed request."""
    m = envelope(client, node, msg, **over)
    return sign(json.dumps(m, separators=(",", ":")).encode(), key), m["message_id"]


def reply_from(client, node, mid, since, inbox=None):
    """The reply to `mid` from this very node (a broadcast reaches every node)."""
    def match(topic, text, retained):
        if topic != "plastic/%s/in" % (inbox or client.name):
            return False
        d = json.loads(text)
        return d.get("type") == "result" and d.get("correlation_id") == mid and d.get("sender") == node.name
    return json.loads(client.wait(match, since)[1])


def send_raw(client, node, payload, mid, topic=None):
    since = client.mark()
    client.publish(topic or "plastic/%s/in" % node.name, payload)
    return reply_from(client, node, mid, since)


def sreq(client, node, msg, **over):
    payload, mid = signed(client, node, msg, **over)
    return send_raw(client, node, payload, mid)


def sok(client, node, msg):
    r = sreq(client, node, msg)
    assert r["ok"] is True, r
    return r.get("result")


def refused(client, node, payload, mid, kind, text, topic=None):
    """Sends a request that must be refused: checks the reply and the log line."""
    since = client.mark()
    client.publish(topic or "plastic/%s/in" % node.name, payload)
    r = reply_from(client, node, mid, since)
    assert r["ok"] is False and r["error"]["kind"] == kind, r
    assert text in r["error"]["message"], r
    assert r["correlation_id"] == mid and r["sender"] == node.name
    line = client.log_line(node.name, lambda d: d["text"].startswith("refused a message (%s)" % kind), since)
    assert line["level"] == "error" and line["source"] == "node" and text in line["text"]
    return r


def counter(client, node):
    return sok(client, node, {"type": "eval", "to_evaluate": "sig_n"})


# ---- the verifier itself, on the shared vectors ---------------------------------------------

DRIVER = r"""
import sys, json
sys.path.insert(0, sys.argv[1])
import psign
from pproto import PErr
from binascii import hexlify
v = json.load(open(sys.argv[2]))
psign.init(v['key'], 120, 0)
out = []
for c in v['cases']:
    b = c['payload'].encode()
    try:
        psign.verify(b)
        verdict = 'ok'
    except PErr as e:
        verdict = e.kind
    mac = None
    if 'signed_bytes' in c:
        sb = c['signed_bytes'].encode()
        mac = hexlify(psign.mac(sb, len(sb) - 1)).decode()
    out.append([c['name'], verdict, mac])
# the time stamp is read from the text, to the microsecond, whatever the float precision
st = []
for text, f in ((b'{"a":1,"time_stamp":1764057600.25,"x":2}', 1764057600.25),
                (b'{"time_stamp": 1764057601, "kw": {"time_stamp": 5}}', 1764057601.0),
                (b'{"kw": {"time_stamp": 5}, "time_stamp" : 1764057601.1234567}', 1764057601.0),
                (b'{"time_stamp":1764057600.25}', 1764057664.0),
                (b'{"time_stamp":1.76405760025e9}', 1764057600.25)):
    st.append(psign.stamp(bytearray(text), f))
print(json.dumps({'cases': out, 'stamps': st}))
"""


def test_every_signing_vector_gives_its_verdict(tmp_path):
    driver = tmp_path / "sigdriver.py"
    driver.write_text(DRIVER)
    out = subprocess.run([MICROPYTHON, str(driver), AGENT_DIR, SIGNING], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr + out.stdout
    got = json.loads(out.stdout.strip().splitlines()[-1])
    cases = json.load(open(SIGNING))["cases"]
    assert len(got["cases"]) == len(cases) >= 9
    for (name, verdict, mac), c in zip(got["cases"], cases):
        assert name == c["name"]
        assert verdict == c["verdict"], (name, verdict, c["verdict"])
        if "sig" in c:
            assert mac == c["sig"], name
            assert hmac.new(bytes.fromhex(json.load(open(SIGNING))["key"]), c["signed_bytes"].encode(),
                            hashlib.sha256).hexdigest() == c["sig"], name
    assert got["stamps"] == [1764057600250000, 1764057601000000, 1764057601123456,
                             1764057600250000, 1764057600250000]


# ---- end to end: a keyed agent behind Mosquitto -------------------------------------------------

@pytest.fixture(scope="module")
def sbroker(tmp_root):
    """A broker of this module's own: broadcasts reach only the agents here."""
    b = Broker(tmp_root).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def client(sbroker):
    c = Client(sbroker.port)
    yield c
    c.close()


@pytest.fixture(scope="module")
def keyed(tmp_root, sbroker, client, mode):
    a = Agent(tmp_root, mode, sbroker.port, NODE_KEY=KEY)
    a.before = time.time()  # a time stamp from before the agent started
    since = client.mark()
    a.start()
    try:
        client.status(a.name, "online", since, timeout=20)
    except TimeoutError:
        a.kill()
        raise AssertionError("keyed agent did not come online:\n" + a.output())
    assert sok(client, a, {"type": "exec", "to_exec": "sig_n = 0"}) is None
    yield a
    a.kill()


def test_signed_eval_gets_its_result(client, keyed):
    r = sreq(client, keyed, {"type": "eval", "to_evaluate": "2+3"})
    assert r["ok"] is True and r["result"] == 5 and r["sender"] == keyed.name
    # the same with spaces and non-ASCII in the signed text
    m = envelope(client, keyed, {"type": "exec", "to_exec": "sig_s = 'h\u00e9llo' # caf\u00e9"})
    payload = sign(json.dumps(m, ensure_ascii=False).encode())
    r = send_raw(client, keyed, payload, m["message_id"])
    assert r["ok"] is True, r
    assert sok(client, keyed, {"type": "eval", "to_evaluate": "sig_s"}) == "h\u00e9llo"


def test_tampered_signature_is_refused_and_nothing_runs(client, keyed):
    n = counter(client, keyed)
    payload, mid = signed(client, keyed, {"type": "exec", "to_exec": "sig_n += 1"})
    flipped = payload[:-3] + (b"0" if payload[-3:-2] != b"0" else b"1") + payload[-2:]
    refused(client, keyed, flipped, mid, "BadSignature", "does not verify")
    changed = payload.replace(b"sig_n += 1", b"sig_n += 9")
    refused(client, keyed, changed, mid, "BadSignature", "changed after signing")
    other, mid2 = signed(client, keyed, {"type": "exec", "to_exec": "sig_n += 1"}, key=OTHER_KEY)
    refused(client, keyed, other, mid2, "BadSignature", "another key")
    upper = payload[:-66] + payload[-66:-2].upper() + payload[-2:]
    refused(client, keyed, upper, mid, "Unsigned", "signed requests")
    assert counter(client, keyed) == n
    # the untouched payload still runs (a refused id is not remembered)
    assert send_raw(client, keyed, payload, mid)["ok"] is True
    assert counter(client, keyed) == n + 1


def test_unsigned_request_is_refused_and_nothing_runs(client, keyed):
    n = counter(client, keyed)
    m = envelope(client, keyed, {"type": "exec", "to_exec": "sig_n += 1"})
    refused(client, keyed, json.dumps(m).encode(), m["message_id"], "Unsigned", "runs only signed requests")
    # a seed dict with no envelope: nobody to answer, so the refusal is logged
    since = client.mark()
    client.publish("plastic/%s/in" % keyed.name, json.dumps({"type": "exec", "to_exec": "sig_n += 1"}))
    client.log_line(keyed.name, lambda d: d["text"].startswith("refused a message (Unsigned)"), since)
    assert counter(client, keyed) == n


def test_wrong_receiver_and_broadcasts_are_refused(client, keyed):
    n = counter(client, keyed)
    payload, mid = signed(client, keyed, {"type": "exec", "to_exec": "sig_n += 1"}, receiver="someone-else")
    refused(client, keyed, payload, mid, "BadSignature", "signed for `someone-else`")
    payload, mid = signed(client, keyed, {"type": "exec", "to_exec": "sig_n += 1"}, receiver="all")
    refused(client, keyed, payload, mid, "BadSignature", "cannot be broadcast", topic="plastic/all/in")
    payload, mid = signed(client, keyed, {"type": "exec", "to_exec": "sig_n += 1"}, receiver="group:lab")
    refused(client, keyed, payload, mid, "BadSignature", "signed for `group:lab`", topic="plastic/group/lab/in")
    m = envelope(client, keyed, {"type": "exec", "to_exec": "sig_n += 1"}, receiver="all")
    refused(client, keyed, json.dumps(m).encode(), m["message_id"], "Unsigned", "signed", topic="plastic/all/in")
    assert counter(client, keyed) == n


def test_stale_time_stamps_are_refused_and_nothing_runs(client, keyed):
    n = counter(client, keyed)
    exe = {"type": "exec", "to_exec": "sig_n += 1"}
    payload, mid = signed(client, keyed, exe, time_stamp=time.time() - 200)
    refused(client, keyed, payload, mid, "Stale", "at most 120 s allowed")
    payload, mid = signed(client, keyed, exe, time_stamp=time.time() + 200)
    refused(client, keyed, payload, mid, "Stale", "at most 120 s allowed")
    assert time.time() - keyed.before < 100  # still within the skew: only the start time refuses it
    payload, mid = signed(client, keyed, exe, time_stamp=keyed.before)
    refused(client, keyed, payload, mid, "Stale", "before this node started")
    payload, mid = signed(client, keyed, exe, time_stamp=None)
    refused(client, keyed, payload, mid, "Stale", "needs a time_stamp")
    assert counter(client, keyed) == n


def test_replay_of_the_same_bytes_never_runs_again(client, keyed):
    n = counter(client, keyed)
    payload, mid = signed(client, keyed, {"type": "exec", "to_exec": "sig_n += 1"})
    first = send_raw(client, keyed, payload, mid)
    assert first["ok"] is True and counter(client, keyed) == n + 1
    # while the id is remembered it is a duplicate: the very same reply, and it does not run
    since = client.mark()
    client.publish("plastic/%s/in" % keyed.name, payload)
    again = reply_from(client, keyed, mid, since)
    assert again == first
    assert counter(client, keyed) == n + 1
    # once forgotten (more signed requests than DEDUP, 8 or 16), its time stamp is below the floor
    for _ in range(20):
        assert sok(client, keyed, {"type": "command", "command": "ping"}) == "pong"
    refused(client, keyed, payload, mid, "Replayed", "may have run before")
    assert counter(client, keyed) == n + 1


def test_a_duplicate_is_answered_even_after_max_skew(tmp_root, sbroker, client, mode):
    """docs/protocol.md, "Signed requests": a remembered message_id is a duplicate before the
    freshness check, so a client's resend of the very same bytes after MAX_SKEW gets the first
    reply (not Stale) and does not run again."""
    a = Agent(tmp_root, mode, sbroker.port, NODE_KEY=KEY, MAX_SKEW=2)
    since = client.mark()
    a.start()
    try:
        client.status(a.name, "online", since, timeout=20)
        assert sok(client, a, {"type": "exec", "to_exec": "sig_n = 0"}) is None
        payload, mid = signed(client, a, {"type": "exec", "to_exec": "sig_n += 1"})
        first = send_raw(client, a, payload, mid)
        assert first["ok"] is True
        time.sleep(3)  # what is tested is the passing of time itself: the copy is older than MAX_SKEW
        assert send_raw(client, a, payload, mid) == first
        assert counter(client, a) == 1
        payload, mid = signed(client, a, {"type": "exec", "to_exec": "sig_n += 1"}, time_stamp=time.time() - 3)
        refused(client, a, payload, mid, "Stale", "at most 2 s allowed")  # a new id is still checked
    finally:
        a.kill()


def test_signed_request_without_message_id_is_refused(client, keyed):
    n = counter(client, keyed)
    m = envelope(client, keyed, {"type": "exec", "to_exec": "sig_n += 1"})
    del m["message_id"]
    payload = sign(json.dumps(m).encode())
    since = client.mark()
    client.publish("plastic/%s/in" % keyed.name, payload)
    r = reply_from(client, keyed, "", since)
    assert r["ok"] is False and r["error"]["kind"] == "Replayed" and "needs a message_id" in r["error"]["message"]
    assert counter(client, keyed) == n


def test_a_burst_of_signed_requests_is_never_taken_for_a_replay(client, keyed):
    """60 requests published back to back (stamps microseconds apart), far more than DEDUP."""
    since = client.mark()
    mids = []
    for i in range(60):
        payload, mid = signed(client, keyed, {"type": "eval", "to_evaluate": "%d * 2" % i})
        client.publish("plastic/%s/in" % keyed.name, payload)
        mids.append(mid)
    for i, mid in enumerate(mids):
        r = reply_from(client, keyed, mid, since)
        assert r["ok"] is True and r["result"] == i * 2, r


def test_replies_need_no_signature(client, keyed, sbroker):
    """A keyed node's own plastic.request gets its (unsigned) reply; a stray result is dropped."""
    responder = Client(sbroker.port)
    try:
        def answer(c, u, m):
            d = json.loads(m.payload)
            reply = {"type": "result", "correlation_id": d["message_id"], "ok": True, "result": "unsigned answer",
                     "sender": responder.name, "message_id": uuid.uuid4().hex}
            c.publish("plastic/%s/in" % d["reply_to"], json.dumps(reply), qos=1)
        responder.c.message_callback_add("plastic/%s/in" % responder.name, answer)
        r = sok(client, keyed, {"type": "exec", "to_exec":
                "import plastic\nsig_r = plastic.request(%r, {'type': 'eval', 'to_evaluate': 'q'})" % responder.name})
        assert r is None
        assert sok(client, keyed, {"type": "eval", "to_evaluate": "sig_r"}) == "unsigned answer"
        since = client.mark()
        client.publish("plastic/%s/in" % keyed.name, json.dumps(
            {"type": "result", "correlation_id": "nobody-waits", "ok": True, "result": 1, "sender": client.name}))
        assert sok(client, keyed, {"type": "command", "command": "ping"}) == "pong"
        assert client.log_kinds(keyed.name, since) == []
    finally:
        responder.close()


def test_signing_vectors_end_to_end(tmp_path, sbroker, client, mode):
    """Every vector, published as is to an agent named esp-1 with the vectors' key. The bytes
    decide first; the signed ones are then refused as Stale (stamped in 2025)."""
    v = json.load(open(SIGNING))
    a = Agent(str(tmp_path), mode, sbroker.port, name="esp-1", NODE_KEY=v["key"])
    since = client.mark()
    a.start()
    try:
        client.status(a.name, "online", since, timeout=20)
        for c in v["cases"]:
            since = client.mark()
            client.publish("plastic/esp-1/in", c["payload"].encode())
            d = json.loads(c["payload"])
            r = reply_from(client, a, d["message_id"], since, inbox=d.get("reply_to") or d["sender"])
            want = "Stale" if c["verdict"] == "ok" else c["verdict"]
            assert r["ok"] is False and r["error"]["kind"] == want, (c["name"], r)
    finally:
        a.kill()


def test_a_replay_after_a_restart_is_refused(tmp_path, sbroker, client, mode):
    """The node forgets its ids when it restarts; the start time then refuses anything older."""
    a = Agent(str(tmp_path), mode, sbroker.port, NODE_KEY=KEY)
    since = client.mark()
    a.start()
    try:
        client.status(a.name, "online", since, timeout=20)
        payload, mid = signed(client, a, {"type": "exec", "to_exec": "sig_r = 1"})
        assert send_raw(client, a, payload, mid)["ok"] is True
        since = client.mark()
        assert sok(client, a, {"type": "command", "command": "reset"}) == {"resetting": True}
        client.status(a.name, "offline", since)
        client.status(a.name, "online", since, timeout=20)
        refused(client, a, payload, mid, "Stale", "before this node started")
        r = sreq(client, a, {"type": "eval", "to_evaluate": "sig_r"})
        assert r["ok"] is False and r["error"]["kind"] == "NameError"  # it did not run again
    finally:
        a.kill()


def test_a_signed_abort_refuses_the_signed_request_it_names(client, keyed):
    n = counter(client, keyed)
    payload, mid = signed(client, keyed, {"type": "exec", "to_exec": "sig_n += 1"})
    assert sok(client, keyed, {"type": "command", "command": "abort", "kwargs": {"id": mid}}) == \
        {"aborted": mid, "was": "unseen"}
    m = envelope(client, keyed, {"type": "exec", "to_exec": "sig_n += 1"}, message_id=mid)
    refused(client, keyed, json.dumps(m).encode(), mid, "Unsigned", "signed")  # checked first, as ever
    r = send_raw(client, keyed, payload, mid)  # then the signed one: Aborted, not run
    assert r["ok"] is False and r["error"]["kind"] == "Aborted", r
    # Its copy is a duplicate of a finished request: the kept reply again, or nothing when the
    # reply was over DEDUP_REPLY_MAX; never a run.
    assert sok(client, keyed, {"type": "command", "command": "abort", "kwargs": {"id": mid}}) == \
        {"aborted": mid, "was": "finished"}
    assert counter(client, keyed) == n


def test_a_keyed_pool_member_refuses_pool_requests(tmp_root, sbroker, client, mode):
    """docs/protocol.md, "Pools": a signed request names one node, so a node with a key refuses
    a pool's requests (BadSignature) without a `taken` notice (it did not take them); nothing runs."""
    pool = "keyed-" + uuid.uuid4().hex[:8]
    a = Agent(tmp_root, mode, sbroker.port, NODE_KEY=KEY, POOLS=[pool])
    since = client.mark()
    a.start()
    try:
        assert client.status(a.name, "online", since, timeout=20)["pools"] == [pool]
        assert sok(client, a, {"type": "exec", "to_exec": "sig_n = 0"}) is None
        topic = "plastic/pool/%s/in" % pool
        since = client.mark()
        payload, mid = signed(client, a, {"type": "exec", "to_exec": "sig_n += 1"}, receiver="pool:" + pool)
        refused(client, a, payload, mid, "BadSignature", "signed for `pool:%s`" % pool, topic=topic)
        m = envelope(client, a, {"type": "exec", "to_exec": "sig_n += 1"}, receiver="pool:" + pool)
        refused(client, a, json.dumps(m).encode(), m["message_id"], "Unsigned", "signed", topic=topic)
        for i in (mid, m["message_id"]):
            got = [json.loads(t)["type"] for (tp, t, _) in client.seen[since:]
                   if tp == "plastic/%s/in" % client.name and '"correlation_id": "%s"' % i in t]
            assert got == ["result"], got  # refused: it never took it, as a Rust node
        assert counter(client, a) == 0
    finally:
        a.kill()


def test_keyed_agent_memory(client, keyed):
    info = sok(client, keyed, {"type": "command", "command": "info"})
    print("\nHEAP[keyed %s] heap=%d free_memory=%d mem_peak=%d" % (keyed.mode, info["heap"], info["free_memory"], info["mem_peak"]))
    assert info["mem_peak"] < info["heap"]


# ---- the clock: NTP on a board with a key ---------------------------------------------------------

NTP_DRIVER = r"""
import sys, asyncio
sys.path.insert(0, sys.argv[1])
calls = []
fail = [False]
class WLAN:
    def __init__(self, i): pass
    def isconnected(self): return True
    def active(self, *a): return True
class network:
    STA_IF = 0
    WLAN = WLAN
class ntptime:
    @staticmethod
    def settime():
        calls.append(1)
        if fail[0]:
            raise OSError(110)
sys.modules['network'] = network
sys.modules['ntptime'] = ntptime
import pnet, psign
class Cfg:
    WIFI_SSID = ''
    NODE_KEY = ''
out = {}
asyncio.run(pnet.up(Cfg))           # clock already set (the unix clock), no key: no NTP
out['no key'] = len(calls)
Cfg.NODE_KEY = 'ab' * 32
fail[0] = True
asyncio.run(pnet.up(Cfg))           # with a key: NTP at boot even though the year looks right
out['key, failed'] = [len(calls), pnet.synced]
sleeps = []
class FastAsyncio:                   # keep_time's minutes pass at once
    @staticmethod
    async def sleep(s):
        sleeps.append(s)
        if len(sleeps) == 3:
            fail[0] = False
        if len(sleeps) > 70:
            raise KeyboardInterrupt
psign.asyncio = FastAsyncio
try:
    asyncio.run(psign.keep_time(pnet))
except KeyboardInterrupt:
    pass
out['retries'] = len(calls)
out['synced'] = pnet.synced
print(out)
"""


def test_a_keyed_board_sets_its_clock_by_ntp_and_retries(tmp_path):
    """pnet with stand-ins for `network` and `ntptime` (the unix port has neither)."""
    driver = tmp_path / "ntpdriver.py"
    driver.write_text(NTP_DRIVER)
    out = subprocess.run([MICROPYTHON, str(driver), AGENT_DIR], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr + out.stdout
    got = eval(out.stdout.strip().splitlines()[-1])
    assert got["no key"] == 0
    assert got["key, failed"] == [1, False]
    # failed at boot, then retried each minute: the 2nd retry works; then hourly (60 minutes on)
    assert got["synced"] is True and got["retries"] == 1 + 3 + 1, got
