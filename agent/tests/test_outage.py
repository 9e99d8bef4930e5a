"""Reliability: the broker goes away and comes back; the agents (both modes at once, to pay
for the 30 s outage once) must come back on their own."""
import json
import os
import signal
import time

import pytest

from conftest import MODES, Agent, Broker, Client


def connect_failures(a):
    return [l for l in a.output().splitlines() if l.startswith("[plastic] connect to")]


def test_agents_come_back_after_a_30_s_broker_crash(tmp_root):
    """Mosquitto is SIGKILLed (a crash: nothing saved, no wills sent), stays down for 30 s, and a
    new one starts on the same port with no state at all. Each agent must notice, keep
    retrying without dying, reconnect, re-subscribe and re-announce itself: its retained
    presence says online again, and it answers from the namespace it had before the crash.

    What a crash loses, honestly: the new broker knows no sessions, so anything published
    while no broker ran, or to the new broker before an agent has re-subscribed, is gone;
    no broker, no delivery. The persistence test below covers a broker that shuts down cleanly."""
    b = Broker(tmp_root).start()
    c = Client(b.port)
    agents = [Agent(tmp_root, m, b.port, RECONNECT_MAX_MS=2000) for m in MODES]
    try:
        since = c.mark()
        for a in agents:
            a.start()
        boots = {}
        for a in agents:
            boots[a.name] = c.status(a.name, "online", since, timeout=20)["boot"]
            assert c.ok(a.name, {"type": "exec", "to_exec": "kept = %r" % a.mode}) is None
        c.close()
        b.stop()  # SIGKILL
        time.sleep(30)  # the outage: nothing to wait for but time itself
        for a in agents:
            assert a.alive(), a.output()[-2000:]
            assert len(connect_failures(a)) >= 5, a.output()[-2000:]  # it kept trying
        tries = {a.mode: len(connect_failures(a)) for a in agents}
        b.start()  # a brand-new broker on the same port
        c = Client(b.port)
        for a in agents:  # the same boot id: the same program run, which remembers what it ran
            assert c.status(a.name, "online", 0, timeout=30)["boot"] == boots[a.name]
        late = Client(b.port)  # a newcomer sees the retained presence
        try:
            for a in agents:
                t = late.wait(lambda tp, x, rt: tp == "plastic/%s/status" % a.name)
                assert json.loads(t[1])["state"] == "online" and t[2] is True
        finally:
            late.close()
        for a in agents:
            assert c.ok(a.name, {"type": "eval", "to_evaluate": "kept"}) == a.mode
            assert c.ok(a.name, {"type": "command", "command": "ping"}) == "pong"
            assert a.alive()
        print("\nOUTAGE connect attempts in 30 s: %s" % tries)
    finally:
        for a in agents:
            a.kill()
        c.close()
        b.stop()


@pytest.mark.parametrize("away", ["in flight", "queued"])
def test_a_request_sent_while_the_agent_is_away_survives_a_clean_broker_restart(tmp_root, tmp_path, away):
    """A request published at QoS 1 while the agent cannot read it is delivered once it is back,
    across a broker restart, and runs exactly once.

    Honest about what makes that possible: Mosquitto keeps sessions and queued messages in
    memory and writes them to disk only at shutdown (or every autosave_interval), so after a
    SIGKILL they are gone even with `persistence true`; the crash test above shows what a
    crash leaves. This test runs Mosquitto with `persistence true` in a temp directory and
    restarts it with SIGTERM, which saves the agent's persistent session (CLEAN_SESSION =
    False) with the unacknowledged request. The agent is "away" by being frozen (SIGSTOP) while
    the request is published and the broker is stopped and started again. Thawed (SIGCONT), it
    may still read the request from its dead connection's buffer and run it, and its reply is
    lost with that connection; it reconnects to its saved session, the broker redelivers the
    request, and the agent answers that duplicate with the reply it kept, without running it
    again. Either way: one run, one reply.

    "queued": the agents' KEEPALIVE is 2 s, and the request is published only after the broker
    gave up on the frozen agents (it publishes their will, `lost`), so it waits in the saved
    session instead of in a dead connection."""
    persist = str(tmp_path)
    b = Broker(tmp_root, persist=persist).start()
    c = Client(b.port)
    ka = 2 if away == "queued" else 10
    agents = [Agent(tmp_root, m, b.port, RECONNECT_MAX_MS=1000, KEEPALIVE=ka) for m in MODES]
    try:
        since = c.mark()
        for a in agents:
            a.start()
        for a in agents:
            c.status(a.name, "online", since, timeout=20)
            assert c.ok(a.name, {"type": "exec", "to_exec": "away_n = 0"}) is None
        since = c.mark()
        for a in agents:
            a.proc.send_signal(signal.SIGSTOP)
        if away == "queued":
            for a in agents:
                c.status(a.name, "lost", since)  # the broker dropped the frozen agent
        mids = {a.name: c.send(a.name, {"type": "exec", "to_exec": "away_n += 1", "need_result": True})
                for a in agents}  # acknowledged by the broker, not delivered to the frozen agents
        c.close()
        b.terminate()  # SIGTERM: the sessions are saved
        assert os.path.exists(os.path.join(persist, "mosquitto.db"))
        b.start()
        c = Client(b.port)
        for a in agents:
            a.proc.send_signal(signal.SIGCONT)
        for a in agents:
            r = c.reply(a.name, mids[a.name], 0, timeout=30)
            assert r["ok"] is True and r["result"] is None, r
            assert c.ok(a.name, {"type": "eval", "to_evaluate": "away_n"}) == 1  # exactly once
    finally:
        for a in agents:
            if a.proc and a.proc.poll() is None:
                a.proc.send_signal(signal.SIGCONT)
            a.kill()
        c.close()
        b.stop()


def test_an_agent_with_two_brokers_moves_to_the_second_when_the_first_dies(tmp_root):
    """BROKER_HOST as a list names the hubs of one cluster (docs/agent.md, docs/scaling.md):
    the agent connects to the first; when that one is SIGKILLed, it tries it once more and then
    the next at once (no backoff while some broker of the list has not failed), announces itself there and
    answers from the namespace it had: the same program run, the same boot id. Then the first
    comes back and the second dies: it moves back."""
    first, second = Broker(tmp_root).start(), Broker(tmp_root).start()
    c1, c2 = Client(first.port), Client(second.port)
    hosts = ["127.0.0.1:%d" % first.port, "127.0.0.1:%d" % second.port]
    a = Agent(tmp_root, MODES[0], 1, BROKER_HOST=hosts, RECONNECT_MIN_MS=5000)
    try:
        since2 = c2.mark()
        a.start()
        boot = c1.status(a.name, "online", 0, timeout=20)["boot"]
        assert c1.ok(a.name, {"type": "exec", "to_exec": "kept = 42"}) is None
        assert not [m for m in c2.seen[since2:] if m[0] == "plastic/%s/status" % a.name]
        c1.close()
        first.stop()  # SIGKILL
        # RECONNECT_MIN_MS is 5 s: the move is the list's, not a retry after a backoff
        t0 = time.monotonic()
        assert c2.status(a.name, "online", since2, timeout=20)["boot"] == boot
        moved_in = time.monotonic() - t0
        # the same broker once more, then the next at once: no backoff (it would be 2.5-7.5 s)
        assert moved_in < 2.0, (moved_in, a.output()[-2000:])
        assert c2.ok(a.name, {"type": "eval", "to_evaluate": "kept"}) == 42
        first.start()
        c1 = Client(first.port)
        c2.close()
        second.stop()
        assert c1.status(a.name, "online", 0, timeout=20)["boot"] == boot
        assert c1.ok(a.name, {"type": "eval", "to_evaluate": "kept + 1"}) == 43
        assert a.alive(), a.output()[-2000:]
        print("\nFAILOVER the agent was online on the second broker %.1f ms after the first died" % (moved_in * 1000))
    finally:
        a.kill()
        c1.close()
        c2.close()
        first.stop()
        second.stop()
