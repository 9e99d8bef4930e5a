"""The agent's memory on the 32-bit MicroPython port (ESP8266 object sizes; docs/agent.md,
"Memory on a board"): the frozen agent's idle heap (fresh, and with its duplicate memory full);
the seed's demo frozen on 32 KB and as .mpy files (what `mpremote cp` puts on stock firmware) at
the smallest heap it passes at, rounded up, and, expected to fail until it fits, on an ESP8266's
38 KB. Skipped on a 64-bit interpreter, whose figures say little about a board. A change that
grows the agent past these bounds fails here; scripts/test runs the whole suite frozen at 32k."""
import base64
import hashlib
import json
import os
import subprocess

import pytest

from conftest import MICROPYTHON, MICROPYTHON_FROZEN, TIMEOUT, Agent, Client
from test_agent import cmd, pin_states, run_seed_script

# Measured on the 32-bit port (docs/agent.md, "Memory on a board"); the bounds have a little room,
# so a change that grows the agent fails here. Override the heaps to look for the smallest.
IDLE_FROZEN_MAX = 14 * 1024  # measured 13.2 KB with its 2 KB receive buffer; the goal is 8 KB (not reached)
IDLE_FULL_FROZEN_MAX = 17 * 1024  # with the duplicate memory full (8 ids and replies): measured 16.3 KB
DEMO_HEAP_FROZEN = os.environ.get("PLASTIC_DEMO_HEAP_FROZEN", "32k")
DEMO_HEAP_MPY = os.environ.get("PLASTIC_DEMO_HEAP_MPY", "56k")  # passes at 54k; 52k runs out
ESP8266_HEAP = "38k"  # an ESP8266's MicroPython heap: the goal for the .mpy demo (not reached)


def word_bits():
    out = subprocess.run([MICROPYTHON, "-c", "import sys; print(sys.maxsize)"], capture_output=True, text=True)
    return 32 if out.stdout.strip() == str(2 ** 31 - 1) else 64


pytestmark = pytest.mark.skipif(not MICROPYTHON or word_bits() != 32,
                                reason="heap figures need the 32-bit port (shared/micropython32)")


def in_use(client, a):
    """Heap in use after a full collection, measured by the node itself."""
    return client.ok(a.name, {"type": "eval", "to_evaluate": "[__import__('gc').collect(), __import__('gc').mem_alloc()][1]"})


def start(tmp_root, port, client, mode, heap, **cfg):
    # as on a board: without the unix port's Ctrl-C goodbye (agent/pbye.py, ~0.5 KB)
    a = Agent(tmp_root, mode, port, heap=heap, CTRL_C_GOODBYE=False, **cfg)
    since = client.mark()
    a.start()
    try:
        st = client.status(a.name, "online", since, timeout=20)
    except TimeoutError:
        a.kill()
        raise AssertionError("agent (%s, %s) did not come online:\n%s" % (mode, heap, a.output()[-3000:]))
    return a, st


@pytest.mark.skipif(not MICROPYTHON_FROZEN, reason="needs micropython-frozen (PLASTIC_FREEZE=agent)")
def test_frozen_agent_idle_heap(tmp_root, broker, client):
    a, st = start(tmp_root, broker.port, client, "frozen", "32k")
    try:
        idle = in_use(client, a)
        for _ in range(10):  # more requests than DEDUP (8 on this heap) remembers, each with its reply
            client.ok(a.name, cmd("ping"))
        full = in_use(client, a)
        info = client.ok(a.name, cmd("info"))
        print("\nIDLE[frozen 32k] in use %d (%d with the duplicate memory full), heap %d, max_payload %s"
              % (idle, full, info["heap"], st.get("max_payload")))
        assert idle <= IDLE_FROZEN_MAX, "the frozen agent idles at %d bytes (at most %d)" % (idle, IDLE_FROZEN_MAX)
        assert full <= IDLE_FULL_FROZEN_MAX, "with its duplicate memory full: %d bytes (at most %d)" % (
            full, IDLE_FULL_FROZEN_MAX)
    finally:
        a.kill()


def seed_demo(client, a, peer):
    """The seed's demo: eval, exec, GPIO, blink, a 12 KB upload, deploy and stop, node to node."""
    assert client.ok(a.name, {"type": "eval", "to_evaluate": "2+3"}) == 5
    r = client.request(a.name, {"type": "exec", "to_exec": "print('Testing exec !')"})
    assert r["ok"] and r["stdout"] == "Testing exec !\n", r
    assert client.ok(a.name, cmd("write GPIOs", pins_and_values=[[2, 0], [2, 1], [2, 0]])) == [[2, 0]]
    assert dict(client.ok(a.name, cmd("read GPIOs")))[2] == 0
    assert client.ok(a.name, cmd("blink led", forever=True, on_seconds=0.05, off_seconds=0.05)) == {"blinking": True}
    assert pin_states(client, a, 2) == {0, 1}
    assert client.ok(a.name, cmd("stop"))["blink_stopped"] is True
    # 12 KB in chunks sized to what the node announced, as `plastic cp` does
    data = bytes((i * 31 + i // 97) % 256 for i in range(12 * 1024))
    sha = hashlib.sha256(data).hexdigest()
    mp = client.status(a.name, "online").get("max_payload", 262144)
    chunk = (mp - 400) // 4 * 3
    assert chunk >= 512, mp
    off = 0
    while off < len(data):
        piece = data[off:off + chunk]
        r = client.ok(a.name, {"type": "file", "filename": "demo.bin", "encoding": "base64", "offset": off,
                               "content": base64.b64encode(piece).decode(), "total": len(data), "sha256": sha})
        off += len(piece)
        assert r["received"] == off
    assert r["complete"] and r["sha256"] == sha
    run_seed_script(client, a)
    # node to node: the board asks another node (blocking plastic.request from exec)
    r = client.ok(a.name, {"type": "exec", "to_exec": "import plastic\nfrom_peer = plastic.request(%r, "
                           "{'type': 'eval', 'to_evaluate': '6*7'})" % peer.name})
    assert client.ok(a.name, {"type": "eval", "to_evaluate": "from_peer"}) == 42
    return client.ok(a.name, cmd("info"))


def run_demo(tmp_root, broker, client, mode, heap):
    a, _ = start(tmp_root, broker.port, client, mode, heap, KEEPALIVE=4)
    a.keepalive = 4
    peer, _ = start(tmp_root, broker.port, client, "mpy", "64k")
    try:
        idle = in_use(client, a)
        info = seed_demo(client, a, peer)
        print("\nDEMO[%s %s] idle %d, peak %d, heap %d" % (mode, heap, idle, info["mem_peak"], info["heap"]))
        assert not [ln for ln in a.output().splitlines() if "MemoryError" in ln], a.output()[-2000:]
    finally:
        a.kill()
        peer.kill()


@pytest.mark.skipif(not MICROPYTHON_FROZEN, reason="needs micropython-frozen (PLASTIC_FREEZE=agent)")
def test_seed_demo_frozen_at_32k(tmp_root, broker, client):
    run_demo(tmp_root, broker, client, "frozen", DEMO_HEAP_FROZEN)


def test_seed_demo_as_mpy(tmp_root, broker, client):
    run_demo(tmp_root, broker, client, "mpy", DEMO_HEAP_MPY)


@pytest.mark.xfail(strict=True, reason="not reached yet: the .mpy agent idles at ~33 KB on 38k (its bytecode "
                   "and names are in the heap), which leaves no room for the demo (docs/agent.md)")
def test_seed_demo_as_mpy_on_an_esp8266_heap(tmp_root, broker, client):
    run_demo(tmp_root, broker, client, "mpy", ESP8266_HEAP)
