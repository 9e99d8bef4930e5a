"""Type stubs for the native core (`plastic._plastic`, Rust: python/src/). The public API is
`plastic` (Client, View, AsyncResult); this module is its engine."""

from os import PathLike
from typing import Callable, List, Optional, Union

__version__: str

class Pending:
    """A request running in the background."""

    def done(self) -> bool: ...
    def result(self) -> Optional[str]:
        """`{"outcomes": [...], "error": ...}` as JSON text once done, else None."""
    def wait(self, timeout: Optional[float] = None) -> bool: ...
    def add_done_callback(self, callback: Callable[[], object]) -> None: ...
    def cancel(self) -> bool: ...
    def abort(self, timeout: float = 5.0) -> str:
        """Sends `abort` for this request to its nodes; their replies as JSON text."""
    @property
    def elapsed(self) -> float: ...

class Core:
    """One connection to the broker (a plastic-client `Client`)."""

    @staticmethod
    def connect(
        broker: str,
        prefix: str = "plastic",
        name_prefix: str = "py",
        ca: Union[str, PathLike, None] = None,
        keys: Union[str, PathLike, None] = None,
        timeout: float = 10.0,
    ) -> Core: ...
    @property
    def name(self) -> str: ...
    @property
    def broker(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def nodes(self, timeout: float) -> str:
        """Every node's presence, as a JSON list."""
    def resolve(self, target: str, timeout: float) -> str:
        """`{"nodes", "broadcast", "pool", "unreachable"}` as JSON text."""
    def run(
        self,
        target: str,
        op: str,
        args: str,
        timeout: float,
        ttl: Optional[float] = None,
        data: Optional[bytes] = None,
        on_each: Optional[Callable[[str], object]] = None,
    ) -> str:
        """Runs `op` (eval, exec, call, apply, script, stop, gpio_read, gpio_write, blink,
        ping, info, reset, list_files, remove_file, put, get) with JSON `args`; blocks with
        the GIL released; returns `{"outcomes": [...], "error": ...}` as JSON text. `get`
        (`{"path", "dir"}`): each node's file, sha256-checked; without `dir` an outcome's
        `result` is the bytes as base64 text, with `dir` the file is saved atomically as
        `dir/<node>/<base name>` (via a `.part`) and `result` is that path."""
    def submit(
        self,
        target: str,
        op: str,
        args: str,
        timeout: float,
        ttl: Optional[float] = None,
        data: Optional[bytes] = None,
        on_each: Optional[Callable[[str], object]] = None,
    ) -> Pending: ...
    def submit_map(
        self,
        target: str,
        name: str,
        source: str,
        calls: str,
        timeout: float,
        window: int,
        ttl: Optional[float] = None,
    ) -> Pending:
        """`LoadBalancedView.map`: `name(*args)` for each list of `calls` (JSON), each one
        `apply` request to the pool `target`, at most `window` out at once; the result's
        `outcomes` are in the order of `calls`."""
    def rust_latency(self, node: str, count: int) -> List[float]:
        """Microseconds per `eval 2+3`, timed in Rust on this connection (the bench's baseline)."""
    def rust_throughput(self, nodes: List[str], count: int, window: int) -> float: ...
    def close(self) -> None: ...
