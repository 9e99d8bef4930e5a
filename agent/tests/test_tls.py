"""TLS to the broker (BROKER_TLS, BROKER_CA): Mosquitto with a TLS listener and a throwaway CA
made by the `openssl` command. The agent (MicroPython unix port, mbedTLS) connects over TLS
only; the test client uses the broker's plain listener. Agent output has no event to wait on, so
the tests that read it poll the file."""
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import TIMEOUT, Agent, Broker, Client, free_port

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(not OPENSSL, reason="needs the openssl command")


def _ssl(*args, cwd):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    _ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", name + ".key", "-out", name + ".pem", "-days", "2", "-subj", "/CN=plastic test " + name,
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """ca.pem signs server.pem (for 127.0.0.1 and localhost) and elsewhere.pem (for another
    name only); other.pem is an unrelated CA."""
    d = str(tmp_path_factory.mktemp("tls"))
    make_ca(d, "ca")
    make_ca(d, "other")
    _ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    _ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.pem", "-days", "2", "-extfile", "server.ext", cwd=d)
    with open(os.path.join(d, "elsewhere.ext"), "w") as f:
        f.write("subjectAltName=DNS:elsewhere.example\nbasicConstraints=CA:FALSE\n")
    _ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "elsewhere.pem", "-days", "2", "-extfile", "elsewhere.ext", cwd=d)
    return d


@pytest.fixture(scope="module")
def tls_broker(tmp_root, certs):
    """Plain listener (.port) for the test client, TLS listener (.tls_port) for the agents, and
    one whose certificate names another host (.elsewhere_port)."""
    tls_port, elsewhere_port = free_port(), free_port()
    key = os.path.join(certs, "server.key")
    b = Broker(tmp_root, extra="listener %d 127.0.0.1\ncertfile %s\nkeyfile %s\n"
               "listener %d 127.0.0.1\ncertfile %s\nkeyfile %s\n"
               % (tls_port, os.path.join(certs, "server.pem"), key,
                  elsewhere_port, os.path.join(certs, "elsewhere.pem"), key))
    b.tls_port, b.elsewhere_port = tls_port, elsewhere_port
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def tls_client(tls_broker):
    c = Client(tls_broker.port)
    yield c
    c.close()


def tls_agent(tmp_root, mode, port, certs, ca):
    """An agent for the TLS port; `ca` is the file (in certs) copied to the board as ca.pem."""
    a = Agent(tmp_root, mode, port, BROKER_TLS=True, BROKER_CA="ca.pem" if ca else "")
    if ca:
        shutil.copy(os.path.join(certs, ca), os.path.join(a.dir, "ca.pem"))
    return a


def wait_output(a, pred, timeout=TIMEOUT):
    """Polls the agent's output file (no event to wait on) until pred(text)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = a.output()
        if pred(text):
            return text
        assert a.alive(), "agent died:\n" + text
        time.sleep(0.05)
    raise TimeoutError("agent output never matched:\n" + a.output()[-3000:])


def failures(text):
    return [l for l in text.splitlines() if l.startswith("[plastic] connect to")]


def test_tls_with_ca_verification_answers_eval(tmp_root, tls_broker, tls_client, certs, mode):
    a = tls_agent(tmp_root, mode, tls_broker.tls_port, certs, "ca.pem")
    since = tls_client.mark()
    a.start()
    try:
        st = tls_client.status(a.name, "online", since, timeout=20)
        assert tls_client.ok(a.name, {"type": "eval", "to_evaluate": "6 * 7"}) == 42
        # bigger messages both ways: more than one TLS record (16 KB) when the heap allows it
        n = min(20000, st.get("max_payload", 262144) - 400)
        r = tls_client.ok(a.name, {"type": "file", "filename": "big.txt", "content": "x" * n})
        assert r["received"] == n and r["complete"] is True
        assert len(tls_client.ok(a.name, {"type": "eval", "to_evaluate": "'y' * 5000"})) == 5000
        print("\nTLS[%s] max_payload %s, sent %d bytes" % (mode, st.get("max_payload"), n))
        assert not failures(a.output())
        info = tls_client.ok(a.name, {"type": "command", "command": "info"})
        print("\nHEAP[tls %s] heap=%d free_memory=%d mem_peak=%d" % (mode, info["heap"], info["free_memory"], info["mem_peak"]))
    finally:
        a.kill()


def test_tls_with_a_wrong_ca_never_connects_and_keeps_retrying(tmp_root, tls_broker, tls_client, certs, mode):
    a = tls_agent(tmp_root, mode, tls_broker.tls_port, certs, "other.pem")
    since = tls_client.mark()
    a.start()
    try:
        text = wait_output(a, lambda t: len(failures(t)) >= 3)
        assert "not correctly signed by the trusted CA" in failures(text)[0], failures(text)[0]
        assert not [m for m in tls_client.seen[since:] if m[0] == "plastic/%s/status" % a.name]
        # the right CA put in place: the next attempt connects (the file is read at each connect)
        shutil.copy(os.path.join(certs, "ca.pem"), os.path.join(a.dir, "ca.pem"))
        tls_client.status(a.name, "online", since, timeout=20)
        assert tls_client.ok(a.name, {"type": "command", "command": "ping"}) == "pong"
    finally:
        a.kill()


def test_tls_refuses_a_certificate_for_another_host(tmp_root, tls_broker, tls_client, certs, mode):
    """Signed by the trusted CA, but not for 127.0.0.1: the host name is checked too."""
    a = tls_agent(tmp_root, mode, tls_broker.elsewhere_port, certs, "ca.pem")
    since = tls_client.mark()
    a.start()
    try:
        text = wait_output(a, lambda t: len(failures(t)) >= 2)
        assert "CN" in failures(text)[0] and "not match" in failures(text)[0], failures(text)[0]
        assert not [m for m in tls_client.seen[since:] if m[0] == "plastic/%s/status" % a.name]
    finally:
        a.kill()


def test_tls_without_ca_connects_unverified(tmp_root, tls_broker, tls_client, certs, mode):
    a = tls_agent(tmp_root, mode, tls_broker.tls_port, certs, None)
    since = tls_client.mark()
    a.start()
    try:
        tls_client.status(a.name, "online", since, timeout=20)
        assert tls_client.ok(a.name, {"type": "eval", "to_evaluate": "1 + 1"}) == 2
    finally:
        a.kill()


def test_tls_handshake_with_a_silent_server_times_out_and_retries(tmp_root, certs):
    """A server that accepts TCP and never says a word: each attempt gives up after the 10 s
    connect deadline (not hanging forever) and the agent tries again."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    accepted = []
    held = []

    def accept():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            held.append(c)  # keep it open, say nothing
            accepted.append(time.monotonic())

    threading.Thread(target=accept, daemon=True).start()
    a = tls_agent(tmp_root, "py", port, certs, "ca.pem")
    a.start()
    try:
        text = wait_output(a, lambda t: len(failures(t)) >= 2, timeout=40)
        f = failures(text)
        assert "110" in f[0] or "ETIMEDOUT" in f[0], f
        assert len(accepted) >= 2
        gap = accepted[1] - accepted[0]
        assert 9 < gap < 14, gap  # the 10 s deadline plus the reconnect backoff
    finally:
        a.kill()
        srv.close()
        for c in held:
            c.close()
