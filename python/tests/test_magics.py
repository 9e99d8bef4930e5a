"""The IPython extension, run through IPython's own InteractiveShell in this process."""

from __future__ import annotations

import pytest

import plastic

IPython = pytest.importorskip("IPython")


@pytest.fixture(scope="module")
def shell(client):
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    assert plastic.Client._last is client  # the magics use the session's client
    sh.run_line_magic("load_ext", "plastic")
    yield sh


def run(shell, cell):
    result = shell.run_cell(cell, store_history=True)
    return result


def test_line_magic_evaluates_on_a_target(shell):
    assert run(shell, "%plastic pi-1 2+3").result == 5
    assert run(shell, "%plastic pi-* __import__('plastic').name").result == {"pi-1": "pi-1", "pi-2": "pi-2"}
    assert run(shell, "%plastic esp-1 [0, False, None]").result == [0, False, None]


def test_cell_magic_streams_each_nodes_output_with_its_name(shell, capsys):
    result = run(shell, "%%plastic group:lab\nimport machine, plastic\nprint(machine.Pin(2).value() in (0, 1), plastic.name)")
    assert result.success, result.error_in_exec
    out = capsys.readouterr().out.splitlines()
    assert sorted(out) == [
        "[stdout:esp-1] True esp-1",
        "[stdout:pi-1] True pi-1",
        "[stdout:pi-2] True pi-2",
    ]


def test_default_target(shell, capsys):
    run(shell, "%plastic_target pi-2")
    assert run(shell, "%plastic 2+3").result == 5
    assert run(shell, "%plastic __import__('plastic').name").result == "pi-2"
    capsys.readouterr()  # the Out[] lines so far
    result = run(shell, "%%plastic\nimport plastic\nprint('default', plastic.name)")
    assert result.success
    assert capsys.readouterr().out.splitlines() == ["[stdout:pi-2] default pi-2"]


def test_remote_errors_show_the_nodes_traceback(shell, capsys):
    result = run(shell, "%plastic esp-1 1/0")
    assert isinstance(result.error_in_exec, plastic.RemoteError)
    assert result.error_in_exec.kind == "ZeroDivisionError"
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "[esp-1]" in text and "ZeroDivisionError" in text
