"""examples/fleet.ipynb, executed headless with nbclient in a real kernel against the fleet."""

from __future__ import annotations

import os

import pytest

from conftest import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def outputs(cell) -> str:
    text = []
    for out in cell.get("outputs", []):
        if "text" in out:
            text.append(out["text"])
        data = out.get("data", {})
        if "text/plain" in data:
            text.append(data["text/plain"])
    return "\n".join(text)


def test_fleet_notebook_runs_headless(fleet, client, monkeypatch):
    monkeypatch.setenv("PLASTIC_BROKER", fleet.broker)
    monkeypatch.setenv("PLASTIC_HOME", fleet.env["PLASTIC_HOME"])
    path = REPO / "examples" / "fleet.ipynb"
    nb = nbformat.read(path, as_version=4)
    runner = nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    runner.execute()  # raises CellExecutionError on the first failing cell
    by_source = {c["source"].strip(): outputs(c) for c in nb.cells if c["cell_type"] == "code"}
    assert "'pi-1': 5" in by_source['v.eval("2+3")']
    assert "[stdout:esp-1] Testing exec !" in by_source["v.exec('print(\"Testing exec !\")')"]
    assert "'esp-1': 5" in by_source['v.put("functions.py")\nv.call("functions.add", a=2, b=3)']
    assert "'started': True" in next(v for k, v in by_source.items() if k.startswith("impl ="))
    assert "'esp-1': 42" in by_source["%plastic_target all\n%plastic 6*7"]
