"""The Python API against a real hub, two Rust nodes (pi-1, pi-2) and the MicroPython agent on
the unix port (esp-1), all in group `lab` (fixtures in conftest.py)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

import plastic

NODES = ["esp-1", "pi-1", "pi-2"]


def test_nodes_lists_presence_platform_groups_since(client):
    nodes = {n["name"]: n for n in client.nodes()}
    for name in NODES:
        assert nodes[name]["state"] == "online"
        assert nodes[name]["groups"] == ["lab"]
        assert nodes[name]["since"] > 1.7e9
    assert nodes["esp-1"]["platform"] != nodes["pi-1"]["platform"]
    assert client.name.startswith("py-")


def test_eval_on_one_node_and_on_every_target_form(client):
    assert client["pi-1"].eval("2+3") == 5
    assert client["esp-1"].eval("2+3") == 5
    assert client["pi-*"].eval("2+3") == {"pi-1": 5, "pi-2": 5}
    assert client["pi-1,esp-1"].eval("2+3") == {"esp-1": 5, "pi-1": 5}
    assert client[["pi-2", "esp-1"]].eval("__import__('plastic').name") == {"esp-1": "esp-1", "pi-2": "pi-2"}
    assert client["group:lab"].eval("2+3") == {n: 5 for n in NODES}
    assert client[:].eval("2+3") == {n: 5 for n in NODES}
    assert client["group:lab"].targets == NODES


@pytest.mark.parametrize("node", ["pi-1", "esp-1"])
def test_falsy_results_come_back_intact(client, node):
    v = client[node]
    assert v.eval("0") == 0 and v.eval("0") is not False
    assert v.eval("False") is False
    assert v.eval("[]") == []
    assert v.eval("''") == ""
    assert v.eval("None") is None
    assert v.eval("{'a': [1, 2.5, None]}") == {"a": [1, 2.5, None]}


def test_values_json_cannot_hold_come_back_as_their_repr(client):
    value = client["pi-1"].eval("{1, 2}")
    assert isinstance(value, plastic.Repr)
    assert repr(value) == "{1, 2}"


def test_exec_prints_each_nodes_output_with_its_name(client, capsys):
    assert client["pi-1,esp-1"].exec("import plastic\nprint('hi from', plastic.name)") is None
    out = capsys.readouterr().out.splitlines()
    assert sorted(out) == ["[stdout:esp-1] hi from esp-1", "[stdout:pi-1] hi from pi-1"]
    # The namespace persists between requests.
    client["pi-1"].exec("x_from_exec = 41")
    assert client["pi-1"].eval("x_from_exec + 1") == 42


def test_put_then_call(client, tmp_path):
    functions = plastic_examples() / "functions.py"
    assert client["group:lab"].put(functions, "functions.py") == {
        n: {"filename": "functions.py", "received": functions.stat().st_size,
            "total": functions.stat().st_size, "complete": True,
            "sha256": sha256(functions)}
        for n in NODES
    }
    v = client["group:lab"]
    assert v.call("functions.add", a=2, b=3) == {n: 5 for n in NODES}
    assert client["esp-1"].call("functions.add", 2, 3) == 5
    files = dict(map(tuple, client["pi-1"].files()))
    assert files["functions.py"] == functions.stat().st_size


def test_put_remove_and_list_files(client, tmp_path):
    data = tmp_path / "data.txt"
    data.write_bytes(b"x" * 40000)  # several chunks
    client["pi-2,esp-1"].put(data)
    for node in ("pi-2", "esp-1"):
        assert ["data.txt", 40000] in client[node].files()
    assert client["pi-2"].remove("data.txt") == {"removed": "data.txt"}
    assert "data.txt" not in dict(map(tuple, client["pi-2"].files()))


def area(r):
    return 3.14159 * r * r


def test_apply_ships_a_function_that_runs_on_micropython_too(client):
    assert client["pi-1"].apply(area, 2) == pytest.approx(12.56636)
    assert client["pi-1,esp-1"].apply(area, r=1) == {"esp-1": 3.14159, "pi-1": 3.14159}
    ar = client["esp-1"].apply_async(area, 3)
    assert ar.get(timeout=10) == pytest.approx(28.27431)


def test_apply_refuses_what_it_cannot_ship_before_sending_anything(client):
    v = client["pi-1"]
    k = 3

    def closure_fn(x):
        return x * k

    def plain_fn(x):
        return x

    with pytest.raises(TypeError, match="closure over k"):
        v.apply(closure_fn, 1)
    with pytest.raises(TypeError, match="lambda"):
        v.apply(lambda x: x, 1)
    with pytest.raises(TypeError, match="set"):
        v.apply(plain_fn, {1, 2})
    with pytest.raises(TypeError, match="key 2"):
        v.apply(plain_fn, {2: 0})
    with pytest.raises(TypeError, match="plain functions"):
        v.apply(len, [1])
    exec_globals: dict = {}
    exec("def no_source(x):\n    return x", exec_globals)
    with pytest.raises(TypeError, match="source"):
        v.apply(exec_globals["no_source"], 1)
    # Nothing reached the node: none of these functions is defined there.
    assert v.eval("[n in globals() for n in ('closure_fn', 'plain_fn')]") == [False, False]


def test_gpio_read_and_write(client):
    v = client["pi-1,esp-1"]
    assert v.gpio.write({2: 0}) == {"esp-1": {2: 0}, "pi-1": {2: 0}}
    assert v.gpio.read([2]) == {"esp-1": {2: 0}, "pi-1": {2: 0}}
    # Pairs keep their order: the seed's 2=0 2=1 2=0 ends at 0.
    assert client["pi-1"].gpio.write([(2, 1), (2, 0), (2, 1)]) == {2: 1}
    pins = client["esp-1"].gpio.read()
    assert {0, 2, 16} <= set(pins) and set(pins.values()) <= {0, 1}
    with pytest.raises(plastic.RemoteError) as e:
        client["pi-1"].gpio.read([99])
    assert e.value.kind == "ValueError"


def test_blink(client):
    assert client["group:lab"].blink(times=3, on=0.01, off=0.01) == {n: {"blinking": True} for n in NODES}


def test_run_and_stop_a_script(client, tmp_path):
    script = tmp_path / "ticker.py"
    script.write_text(
        "import asyncio\n"
        "async def main():\n"
        "    while True:\n"
        "        await asyncio.sleep(0.05)\n"
    )
    assert client["pi-2,esp-1"].run(script) == {
        n: {"name": "ticker", "started": True} for n in ("esp-1", "pi-2")
    }
    assert client["pi-2"].info()["scripts"] == ["ticker"]
    stopped = client["pi-2,esp-1"].stop()
    for node in ("esp-1", "pi-2"):
        assert stopped[node]["stopped"] == ["ticker"]
    assert client["pi-2"].info()["scripts"] == []


def test_async_result(client):
    ar = client["pi-2"].eval("__import__('time').sleep(0.4) or 7", block=False)
    assert not ar.ready()
    with pytest.raises(plastic.Timeout):
        ar.get(timeout=0.05)
    assert ar.get(timeout=10) == 7
    assert ar.ready() and ar.successful()
    assert ar.elapsed >= 0.4
    assert ar.errors == {}
    ex = client["pi-1,esp-1"].exec("import plastic\nprint(plastic.name)", block=False)
    assert ex.get(timeout=10) == {"esp-1": None, "pi-1": None}
    assert ex.stdout == {"esp-1": "esp-1\n", "pi-1": "pi-1\n"}
    bad = client["pi-1,pi-2"].eval("1/0 if __import__('plastic').name == 'pi-2' else 1", block=False)
    assert bad.wait(10)
    assert not bad.successful()
    assert list(bad.errors) == ["pi-2"] and bad.errors["pi-2"].kind == "ZeroDivisionError"
    assert bad.results == {"pi-1": 1}


def test_get_downloads_each_nodes_file_as_bytes(client, tmp_path):
    original = bytes(range(256)) * 390 + os.urandom(161)  # 100,001 bytes: several chunks
    blob = tmp_path / "blob.bin"
    blob.write_bytes(original)
    v = client["pi-1,pi-2"]
    v.put(blob, "dl/blob.bin")
    assert v.get("dl/blob.bin") == {"pi-1": original, "pi-2": original}
    # A one-node view: the bytes alone; small and empty files too.
    assert client["pi-1"].get("dl/blob.bin") == original
    for data in (b"", b"a", b"ab", b"abc"):
        small = tmp_path / "small.bin"
        small.write_bytes(data)
        client["pi-2"].put(small)
        assert client["pi-2"].get("small.bin") == data
    # In the background.
    ar = v.get("dl/blob.bin", block=False)
    assert ar.get(timeout=30) == {"pi-1": original, "pi-2": original}


def test_get_into_a_directory(client, tmp_path):
    original = os.urandom(100_000)
    blob = tmp_path / "blob2.bin"
    blob.write_bytes(original)
    v = client["pi-1,pi-2"]
    v.put(blob, "dl/blob2.bin")
    out = tmp_path / "out" / "deeper"  # created
    saved = v.get("dl/blob2.bin", out)
    assert saved == {n: str(out / n / "blob2.bin") for n in ("pi-1", "pi-2")}
    for node, path in saved.items():
        assert Path(path).read_bytes() == original
        assert sorted(p.name for p in (out / node).iterdir()) == ["blob2.bin"]  # no .part
    # Again: replaced in place; a one-node view returns the path alone.
    assert client["pi-1"].get("dl/blob2.bin", str(out)) == str(out / "pi-1" / "blob2.bin")
    # A .part left by a cut download is resumed, or started afresh when it is of another file.
    part = out / "pi-2" / "blob2.bin.part"
    part.write_bytes(original[:30000])
    assert client["pi-2"].get("dl/blob2.bin", out) == str(out / "pi-2" / "blob2.bin")
    part.write_bytes(b"not this file at all")
    client["pi-2"].get("dl/blob2.bin", out)
    assert (out / "pi-2" / "blob2.bin").read_bytes() == original and not part.exists()


def test_get_errors(client, tmp_path):
    with pytest.raises(plastic.RemoteError) as e:
        client["pi-1"].get("no-such-file.bin")
    assert e.value.kind == "FileNotFoundError" and e.value.node == "pi-1"
    # Nothing is left behind when saving fails.
    out = tmp_path / "out"
    with pytest.raises(plastic.RemoteError) as e:
        client["pi-1"].get("no-such-file.bin", out)
    assert e.value.kind == "FileNotFoundError"
    assert list((out / "pi-1").iterdir()) == []
    # Several nodes failing: one CompositeError with each node's error.
    with pytest.raises(plastic.CompositeError) as e:
        client["pi-1,pi-2"].get("no-such-file.bin")
    assert sorted(e.value.errors) == ["pi-1", "pi-2"]
    assert all(x.kind == "FileNotFoundError" for x in e.value.errors.values())
    # A bad path is refused before anything is sent, as for put and remove.
    for bad in ("../x", "/etc/passwd", ""):
        with pytest.raises(ValueError):
            client["pi-1"].get(bad)
    with pytest.raises(plastic.NodeNotOnline):
        client["nobody-here"].get("x.bin")


def test_abort_interrupts_the_running_request(client, fleet):
    fleet.node("abort-1")
    ar = client["abort-1"].eval(
        "__import__('plastic').publish('started', 1) or __import__('time').sleep(30)", block=False
    )
    fleet.wait_event("abort-1", "started")  # the node is running it
    assert ar.abort() is None
    with pytest.raises(plastic.RemoteError) as e:
        ar.get(timeout=10)
    assert e.value.kind == "KeyboardInterrupt" and e.value.node == "abort-1"
    assert ar.elapsed < 10
    # The node is free again; a finished request's abort does nothing.
    assert client["abort-1"].eval("2+3") == 5
    assert ar.abort() is None


def test_abort_drops_a_queued_request_which_never_runs(client, fleet):
    fleet.node("abort-2")
    v = client["abort-2"]
    busy = v.eval(
        "__import__('plastic').publish('busy', 1) or __import__('time').sleep(30)", block=False
    )
    fleet.wait_event("abort-2", "busy")
    queued = v.exec("ran = True", block=False)
    queued.abort()
    with pytest.raises(plastic.Aborted) as e:
        queued.get(timeout=10)
    assert e.value.node == "abort-2" and not busy.ready()
    busy.abort()
    with pytest.raises(plastic.RemoteError):
        busy.get(timeout=10)
    assert v.eval("'ran' in globals()") is False


def test_a_load_balanced_view_maps_each_task_onto_one_member(client, fleet):
    fleet.node("lb-1", pools=("crunch",))
    fleet.node("lb-2", pools=("crunch",))
    lb = client.load_balanced_view("crunch")
    assert repr(lb).startswith("<LoadBalancedView 'pool:crunch'")

    def area(r):
        global done
        done = globals().get("done", 0) + 1
        return 3 * r * r

    assert lb.map(area, range(40)) == [3 * r * r for r in range(40)]
    done = [client[n].eval("globals().get('done', 0)") for n in ("lb-1", "lb-2")]
    assert sum(done) == 40 and all(done), done
    assert lb.apply_sync(area, 5) == 75
    assert lb.eval("6*7") == 42
    mapped = lb.map(area, [1, 2], block=False)
    assert mapped.get(timeout=15) == [3, 12]
    assert [o["node"] for o in mapped.outcomes] and {o["node"] for o in mapped.outcomes} <= {"lb-1", "lb-2"}

    async def awaited():
        return await lb.map(area, [3], block=False)

    assert asyncio.run(awaited()) == [27]
    with pytest.raises(plastic.RemoteError) as e:
        lb.map(area, [1, "x"])
    assert e.value.task == 1 and e.value.kind == "TypeError"
    with pytest.raises(plastic.NoTarget):
        client.load_balanced_view("nobody").map(area, [1])
    with pytest.raises(ValueError):
        plastic.LoadBalancedView(client, "pi-1")
    assert lb.map(area, []) == [] and lb.map(area, [], block=False).get() == []
    with pytest.raises(ValueError):
        lb.map(area, [1, 2], [3])
    with pytest.raises(ValueError):
        lb.map(area, [1], in_flight=0)
    assert isinstance(client["pool:crunch"], plastic.LoadBalancedView)
    assert client.view(" pool:crunch").eval("1+1") == 2
    slow = lb.eval("__import__('time').sleep(30)", block=False)
    slow.abort()  # every member is asked: the one with it interrupts it, or never runs it
    with pytest.raises(plastic.PlasticError) as e:
        slow.get(timeout=10)
    assert e.value.kind in ("KeyboardInterrupt", "Aborted"), e.value


def test_eval_async_with_asyncio(client):
    async def main():
        one = await client["pi-1"].eval_async("2+3")
        many = await asyncio.gather(
            client["esp-1"].eval_async("__import__('plastic').name"),
            client["pi-*"].eval_async("1+1"),
            client["pi-1"].call_async("functions.add", 1, 2),
        )
        try:
            await client["pi-2"].eval_async("1/0")
        except plastic.RemoteError as e:
            failed = e.kind
        return one, many, failed

    one, many, failed = asyncio.run(main())
    assert one == 5
    assert many == ["esp-1", {"pi-1": 2, "pi-2": 2}, 3]
    assert failed == "ZeroDivisionError"


@pytest.mark.parametrize("node", ["pi-1", "esp-1"])
def test_a_nodes_exception_is_a_remote_error_with_its_traceback(client, node):
    with pytest.raises(plastic.RemoteError) as e:
        client[node].exec("def f():\n    return 1/0\nf()")
    err = e.value
    assert err.node == node and err.kind == "ZeroDivisionError"
    assert "Traceback" in err.traceback and "ZeroDivisionError" in err.traceback
    assert err.traceback.count("line") >= 2  # the node's frames, as it printed them
    assert node in str(err) and "ZeroDivisionError" in str(err)


def test_several_failing_nodes_raise_one_composite_error(client):
    with pytest.raises(plastic.CompositeError) as e:
        client["group:lab"].eval("1/0 if __import__('plastic').name != 'pi-1' else 'fine'")
    err = e.value
    assert isinstance(err, plastic.RemoteError)
    assert sorted(err.errors) == ["esp-1", "pi-2"]
    assert all(x.kind == "ZeroDivisionError" for x in err.errors.values())
    assert err.results == {"pi-1": "fine"}
    text = str(err)
    assert "2 of 3 nodes failed" in text and "[esp-1]" in text and "[pi-2]" in text


def test_timeout_is_its_own_exception(client, fleet):
    fleet.node("slow-1")
    with pytest.raises(plastic.Timeout) as e:
        client["slow-1"].eval("__import__('time').sleep(1)", timeout=0.2)
    assert isinstance(e.value, TimeoutError) and e.value.node == "slow-1"


def test_expired_when_the_node_gets_to_it_too_late(client, fleet):
    fleet.node("queue-1")
    busy = client["queue-1"].eval(
        "__import__('plastic').publish('started', 1) or __import__('time').sleep(1) or 1", block=False
    )
    fleet.wait_event("queue-1", "started")  # the node is busy with it
    with pytest.raises(plastic.Expired):
        client.view("queue-1", ttl=0.2).eval("2+3")
    assert busy.get(timeout=10) == 1


def test_node_lost_when_the_node_dies_while_running(client, fleet):
    node = fleet.node("doomed-1")
    ar = client["doomed-1"].eval(
        "__import__('plastic').publish('started', 1) or __import__('time').sleep(30)", block=False
    )
    fleet.wait_event("doomed-1", "started")  # the node is running it
    node.stop("kill")
    with pytest.raises(plastic.NodeLost) as e:
        ar.get(timeout=15)
    assert e.value.node == "doomed-1"


def test_unreachable_and_unmatched_targets(client):
    with pytest.raises(plastic.NodeNotOnline, match="unknown node"):
        client["nobody-here"].eval("1")
    with pytest.raises(plastic.NoTarget, match="zzz"):
        client["zzz-*"].eval("1")
    with pytest.raises(ValueError):
        client["bad/name"].eval("1")


def test_error_kinds_map_to_their_exceptions():
    # Forbidden (a hub with users) and Busy (1,024 requests in progress) are the node's or
    # hub's refusals; their mapping is the same table as the kinds exercised above.
    for kind, cls in [("Forbidden", plastic.Forbidden), ("Busy", plastic.Busy),
                      ("Expired", plastic.Expired), ("NodeLost", plastic.NodeLost),
                      ("Aborted", plastic.Aborted),
                      ("Timeout", plastic.Timeout), ("NameError", plastic.RemoteError)]:
        e = plastic._error("n", {"kind": kind, "message": "m", "traceback": ""})
        assert type(e) is cls and e.kind == kind


def test_ping_info_and_client_repr(client):
    assert client["group:lab"].ping() == {n: "pong" for n in NODES}
    info = client["esp-1"].info()
    assert info["name"] == "esp-1" and info["groups"] == ["lab"]
    assert "py-" in repr(client)


def plastic_examples():
    from conftest import REPO

    return REPO / "examples"


def sha256(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_unreachable_broker_is_a_clear_error(fleet):
    with pytest.raises(plastic.Disconnected, match="cannot connect to the broker at mqtt://127.0.0.1:1"):
        plastic.Client("mqtt://127.0.0.1:1", connect_timeout=0.5)
    with pytest.raises(ValueError, match="unknown scheme"):
        plastic.Client("http://127.0.0.1:1")


def test_a_list_of_brokers_skips_a_dead_first_one(fleet):
    """`Client("URL,URL")` names the brokers of one cluster (docs/scaling.md): with the first
    one down, the client connects to the next and reaches the fleet there."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    session_client = plastic.Client._last  # the magics' default: this test must not change it
    c = plastic.Client(f"mqtt://127.0.0.1:{dead},{fleet.broker}", timeout=15)
    try:
        assert c.broker == fleet.broker
        assert c["pi-1"].eval("2+3") == 5
    finally:
        c.close()
        plastic.Client._last = session_client
    with pytest.raises(ValueError, match="empty entry"):
        plastic.Client(f"{fleet.broker},,{fleet.broker}")
