"""The Python client against real processes on 127.0.0.1: a `plastic hub` on a free port, two
Rust nodes (`plastic node`) and the MicroPython agent on the unix port, bundled with
`plastic agent bundle` exactly as a board gets it. Waits are on lines the processes print
(`plastic watch --json` presence lines), never on fixed sleeps.

PLASTIC_BIN: the `plastic` binary (default: target/debug/plastic, else target/release/plastic).
MICROPYTHON: the MicroPython unix port (default: .venv/bin/micropython).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
WAIT = 30.0


def plastic_bin() -> Path:
    explicit = os.environ.get("PLASTIC_BIN")
    if explicit:
        return Path(explicit)
    for profile in ("debug", "release"):
        candidate = REPO / "target" / profile / "plastic"
        if candidate.exists():
            return candidate
    pytest.exit("no plastic binary: build it (cargo build -p plastic) or set PLASTIC_BIN", 2)


def micropython_bin() -> Path:
    return Path(os.environ.get("MICROPYTHON") or REPO / ".venv" / "bin" / "micropython")


class Proc:
    """A child process whose output lines (stdout and stderr merged) can be awaited."""

    def __init__(self, args: List[str], what: str, cwd: Optional[Path] = None, env=None) -> None:
        self.what = what
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.seen: List[str] = []
        self.proc = subprocess.Popen(
            [str(a) for a in args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.seen.append(line)
            self.lines.put(line)

    def wait_line(self, pred: Callable[[str], bool], why: str, timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise AssertionError(
                    f"{self.what}: no line {why} within {timeout} s; output so far:\n"
                    + "\n".join(self.seen)
                ) from None
            if pred(line):
                return line

    def stop(self, sig: str = "term") -> None:
        if self.proc.poll() is None:
            if sig == "kill":
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Fleet:
    """A hub, Rust nodes and MicroPython agents; `broker` is the URL for clients."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.bin = plastic_bin()
        self.env = dict(os.environ)
        self.env["PLASTIC_HOME"] = str(tmp / "home")
        for var in ("PLASTIC_BROKER", "PLASTIC_PREFIX", "PLASTIC_KEYS", "PLASTIC_CA", "PLASTIC_TTL", "PLASTIC_USERS"):
            self.env.pop(var, None)
        self.procs: List[Proc] = []
        self.hub = self._spawn([self.bin, "hub", "--listen", "127.0.0.1:0"], "plastic hub")
        line = self.hub.wait_line(lambda l: "MQTT broker listening on" in l, "with the port")
        self.port = int(line.rsplit(":", 1)[1].strip())
        self.broker = f"mqtt://127.0.0.1:{self.port}"
        self.watch = self._spawn(
            [self.bin, "watch", "--json", "--broker", self.broker], "plastic watch"
        )
        self.watch.wait_line(lambda l: "watching" in l, "saying it is watching")

    def _spawn(self, args, what, cwd=None) -> Proc:
        proc = Proc(args, what, cwd=cwd, env=self.env)
        self.procs.append(proc)
        return proc

    def wait_presence(self, name: str, state: str) -> None:
        def match(line: str) -> bool:
            try:
                event = json.loads(line)
            except ValueError:
                return False
            return (
                event.get("kind") == "presence"
                and event.get("node") == name
                and event.get("state") == state
            )

        self.watch.wait_line(match, f"saying {name} is {state}")

    def wait_event(self, name: str, topic: str) -> None:
        """Waits for `plastic.publish(topic, ...)` from the node."""

        def match(line: str) -> bool:
            try:
                event = json.loads(line)
            except ValueError:
                return False
            return event.get("kind") == "event" and event.get("node") == name and event.get("topic") == topic

        self.watch.wait_line(match, f"with {name}'s event {topic}")

    def node(self, name: str, *groups: str, pools: tuple = ()) -> Proc:
        args = [self.bin, "node", "--name", name, "--broker", self.broker, "--root", self.tmp / "nodes" / name]
        for g in groups:
            args += ["--group", g]
        for p in pools:
            args += ["--pool", p]
        proc = self._spawn(args, f"node {name}")
        proc.wait_line(lambda l: "online" in l, "saying online")
        return proc

    def agent(self, name: str, *groups: str) -> Proc:
        out = self.tmp / f"board-{name}"
        args = [self.bin, "agent", "bundle", "--out", out, "--broker", self.broker, "--name", name]
        for g in groups:
            args += ["--group", g]
        subprocess.run([str(a) for a in args], check=True, env=self.env, capture_output=True)
        heap = os.environ.get("PLASTIC_HEAP_PY", "224k")
        proc = self._spawn([micropython_bin(), "-X", f"heapsize={heap}", "main.py"], f"agent {name}", cwd=out)
        self.wait_presence(name, "online")
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


@pytest.fixture(scope="session")
def fleet(tmp_path_factory) -> Fleet:
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        f.node("pi-1", "lab")
        f.node("pi-2", "lab")
        f.agent("esp-1", "lab")
        yield f
    finally:
        f.close()


@pytest.fixture(scope="session")
def client(fleet):
    import plastic

    os.environ["PLASTIC_HOME"] = fleet.env["PLASTIC_HOME"]
    c = plastic.Client(fleet.broker, timeout=15)
    yield c
    c.close()
