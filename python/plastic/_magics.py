"""IPython magics (`%load_ext plastic`):

    %plastic TARGET EXPR        evaluates EXPR on TARGET; the value is the cell's output
    %plastic EXPR               ... on the default target (after %plastic_target)
    %%plastic [TARGET]          executes the cell on TARGET, each node's output shown with its
                                name as it arrives, like %%px
    %plastic_target [TARGET]    sets (or shows) the default target

The client is the last `plastic.Client()` made in the session, or one made on first use with
the environment's settings (PLASTIC_BROKER...).
"""

from __future__ import annotations

import re
from typing import Optional

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

import plastic

# A TARGET: names of A-Za-z0-9_.- (comma lists, globs), group:NAME, all.
_TARGET = re.compile(r"^(all|group:[A-Za-z0-9_.\-]+|[A-Za-z0-9_.\-*?\[\],]+)$")


def _looks_like_target(token: str) -> bool:
    return bool(_TARGET.match(token)) and not token.replace(".", "").isdigit()


@magics_class
class PlasticMagics(Magics):
    def __init__(self, shell) -> None:
        super().__init__(shell)
        self.target: Optional[str] = None
        self._client: Optional[plastic.Client] = None

    @property
    def client(self) -> plastic.Client:
        last = plastic.Client._last
        if last is not None and not last.closed:
            return last
        if self._client is None or self._client.closed:
            self._client = plastic.Client()
        return self._client

    def _split(self, line: str):
        line = line.strip()
        first, _, rest = line.partition(" ")
        rest = rest.strip()
        if rest and _looks_like_target(first):
            return first, rest
        if self.target is None:
            raise plastic.NoTarget(
                "usage: %plastic TARGET EXPR (or set a default with %plastic_target TARGET)",
                kind="NoTarget",
            )
        return self.target, line

    @line_magic("plastic_target")
    def plastic_target(self, line: str):
        """%plastic_target TARGET: the default target of %plastic and %%plastic."""
        line = line.strip()
        if not line:
            print(self.target if self.target else "no default target (set one: %plastic_target TARGET)")
            return None
        if not _looks_like_target(line):
            raise ValueError(f"`{line}` is not a TARGET (a name, a,b, a glob, group:NAME or all)")
        self.target = line
        return None

    @line_magic("plastic")
    def plastic_line(self, line: str):
        """%plastic TARGET EXPR: EXPR's value on each node of TARGET."""
        target, expr = self._split(line)
        return self.client[target].eval(expr)

    @cell_magic("plastic")
    def plastic_cell(self, line: str, cell: str):
        """%%plastic [TARGET]: runs the cell on each node, output per node as it arrives."""
        target = line.strip() or self.target
        if not target:
            raise plastic.NoTarget(
                "usage: %%plastic TARGET (or set a default with %plastic_target TARGET)",
                kind="NoTarget",
            )
        self.client[target].exec(cell)
        return None
