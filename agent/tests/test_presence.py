"""Presence that tells the truth after blips and at shutdown (docs/protocol.md, "Presence"): the
agent watches its own status topic and says `online` again when it sees itself `lost` or
`offline` while connected (a broker publishing a dead connection's will late), and a clean
shutdown leaves `offline`, not the will that an RST would let the broker publish."""
import json

import pytest

from conftest import TIMEOUT, Agent, Client, Proxy


def cmd(command, **kwargs):
    return {"type": "command", "command": command, "kwargs": kwargs}


def states(client, name, since):
    t = "plastic/%s/status" % name
    return [json.loads(text)["state"] for (topic, text, _) in client.seen[since:] if topic == t]


def retained_status(broker, name):
    """The retained presence a newcomer sees."""
    late = Client(broker.port)
    try:
        t = late.wait(lambda tp, x, rt: tp == "plastic/%s/status" % name)
        assert t[2] is True, t
        return json.loads(t[1])
    finally:
        late.close()


def quiet(client, name):
    """A round trip through the agent: it handles what reached it before our ping first, and
    whatever it published meanwhile reaches us before the pong."""
    assert client.ok(name, cmd("ping")) == "pong"


def online_after_lost(name):
    t = "plastic/%s/status" % name
    lost = []

    def pred(topic, text, retained):
        if topic != t:
            return False
        st = json.loads(text)["state"]
        if st == "lost":
            lost.append(st)
        return st == "online" and bool(lost)
    return pred


@pytest.mark.parametrize("state,separators", [("lost", (",", ":")), ("offline", (", ", ": "))])
def test_a_late_will_is_answered_with_online(client, node, broker, state, separators):
    """Another client publishes (retained) the agent's presence as `lost` or `offline`, as a
    broker does when it publishes a dead connection's will after the new connection said
    `online`. The agent sees it on its own status topic and announces `online` again, with its
    boot id, exactly once: its own `online` echo starts nothing."""
    t = "plastic/%s/status" % node.name
    quiet(client, node.name)
    now = retained_status(broker, node.name)
    assert now["state"] == "online"
    since = client.mark()
    fake = dict(now, state=state)  # the will carries the node's own fields
    client.c.publish(t, json.dumps(fake, separators=separators), qos=1, retain=True).wait_for_publish(TIMEOUT)
    st = client.status(node.name, "online", since)
    assert st["boot"] == now["boot"] and st["name"] == node.name, st
    quiet(client, node.name)
    assert states(client, node.name, since) == [state, "online"]  # no loop
    assert retained_status(broker, node.name)["state"] == "online"
    assert "presence says %s: online again" % state in node.output()


def test_stale_presence_at_connect_is_not_answered(tmp_root, broker, client, mode):
    """The retained `lost` of an earlier run is history, not news: the agent says `online` once.
    (It subscribes to its own presence only after publishing `online`, so what subscribing
    brings back is its own `online`.)"""
    a = Agent(tmp_root, mode, broker.port)
    t = "plastic/%s/status" % a.name
    old = {"name": a.name, "state": "lost", "platform": "unix", "version": "0", "protocol": 1,
           "address": "", "groups": [], "since": 1, "boot": "0badb00d"}
    since = client.mark()
    client.c.publish(t, json.dumps(old), qos=1, retain=True).wait_for_publish(TIMEOUT)
    client.status(a.name, "lost", since)
    a.start()
    try:
        client.status(a.name, "online", since, timeout=20)
        quiet(client, a.name)
        assert states(client, a.name, since) == ["lost", "online"]
        assert "presence says" not in a.output()
    finally:
        a.kill()


@pytest.mark.parametrize("how", ["Ctrl-C", "reset"])
def test_a_clean_shutdown_stays_offline(tmp_root, broker, client, mode, how):
    """The agent says `offline` and disconnects; the broker echoes that `offline` to the agent's
    own subscription (and acknowledges it) right then. Had the agent closed its socket with that
    input unread, Linux would send RST, the broker would drop the connection without reading the
    DISCONNECT, and publish the will (`lost`) after the `offline`. Ctrl-C ends the process;
    `reset` starts a new agent program in the same process, which must be announced `online`
    once (its persistent session still holds the subscription to its own presence, so it sees
    its `online` come back, and then the retained one again when it subscribes: neither starts
    anything)."""
    a = Agent(tmp_root, mode, broker.port)
    since = client.mark()
    a.start()
    try:
        boot = client.status(a.name, "online", since, timeout=20)["boot"]
        quiet(client, a.name)
        log = broker.log_size()
        since = client.mark()
        if how == "Ctrl-C":
            a.interrupt()
        else:
            assert client.ok(a.name, cmd("reset")) == {"resetting": True}
        assert client.status(a.name, "offline", since)["boot"] == boot
        # the broker is done with that connection: the will, had it come, is out before this line
        line = broker.wait_log(lambda l: "Client %s " % a.name in l and ("disconnect" in l or "closed" in l), log)
        assert line.endswith("Client %s disconnected." % a.name), line  # it read the DISCONNECT
        if how == "Ctrl-C":
            st = retained_status(broker, a.name)
            assert st["state"] == "offline" and st["boot"] == boot, st
            assert states(client, a.name, since) == ["offline"]
        else:
            st = client.status(a.name, "online", since, timeout=20)
            assert st["boot"] != boot
            quiet(client, a.name)
            assert states(client, a.name, since) == ["offline", "online"]
            assert retained_status(broker, a.name) == st
            assert "presence says" not in a.output()
    finally:
        a.kill()


@pytest.mark.parametrize("cut", ["both sides", "the agent's side"])
def test_a_blip_ends_online(tmp_root, broker, client, mode, cut):
    """A real blip: a TCP proxy between the agent and the broker resets the agent's connection.
    "both sides": the broker sees the RST too and publishes the will (`lost`); the agent
    reconnects at once and says `online`, in whichever order the broker handles the two.
    "the agent's side": the broker's side stays open (a half-open connection, as when Wi-Fi
    drops) until the agent's new connection with the same client id takes the session over.
    Either way the retained presence ends `online`, with the same boot id (the same program:
    its namespace is still there)."""
    proxy = Proxy(broker.port)
    a = Agent(tmp_root, mode, proxy.port)
    since = client.mark()
    a.start()
    try:
        boot = client.status(a.name, "online", since, timeout=20)["boot"]
        assert client.ok(a.name, {"type": "exec", "to_exec": "kept = 7"}) is None
        since = client.mark()
        proxy.cut(broker_side=cut == "both sides")
        if cut == "both sides":
            st = json.loads(client.wait(online_after_lost(a.name), since, timeout=20)[1])
        else:
            st = client.status(a.name, "online", since, timeout=20)
        assert st["boot"] == boot
        assert proxy.accepted == 2  # it did reconnect
        quiet(client, a.name)
        assert client.ok(a.name, {"type": "eval", "to_evaluate": "kept"}) == 7
        seen = states(client, a.name, since)
        assert seen[-1] == "online" and "offline" not in seen, seen
        st = retained_status(broker, a.name)
        assert st["state"] == "online" and st["boot"] == boot, st
        assert "connection lost" in a.output()
    finally:
        a.kill()
        proxy.close()
