"""Fixture: the scripted OpenAI-compatible server (``fake_openai_server.py``) in its own process
on 127.0.0.1 and an ephemeral port, one per test module, re-scripted by each test."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SERVER = Path(__file__).with_name("fake_openai_server.py")


class FakeOpenAI:
    """Handle on the server process: its base URL, its script and the requests it saw."""

    def __init__(self, port: int) -> None:
        self.root = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.root}/v1"

    def script(self, *steps: dict[str, Any]) -> None:
        """Replace the script (the last step repeats) and clear the request log."""
        req = urllib.request.Request(f"{self.root}/_script", data=json.dumps({"steps": list(steps)}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200

    def log(self) -> dict[str, Any]:
        """``{"requests": [...], "max_in_flight": n}``."""
        with urllib.request.urlopen(f"{self.root}/_requests", timeout=5) as resp:
            return json.loads(resp.read())

    def requests(self) -> list[dict[str, Any]]:
        """Bodies and authorization headers of the chat requests since the last script."""
        return self.log()["requests"]


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    """Start the server process; stop it after the module."""
    proc = subprocess.Popen([sys.executable, str(SERVER)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"fake OpenAI server did not start: {line!r}")
        yield FakeOpenAI(int(line.split()[1]))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
