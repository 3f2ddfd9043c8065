"""Starting real ``livebase serve`` processes on free 127.0.0.1 ports, and stopping them by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from livebase.settings import Settings


def environment(**settings: str) -> dict[str, str]:
    """A livebase subprocess's environment: ours without livebase settings, plus ``settings``.

    (The autouse ``clean_environment`` fixture already removes them during a
    test; this holds wherever a server is started from.)
    """
    inherited = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    return {**inherited, **settings}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[str]
    base_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text()


@contextmanager
def running_server(
    workdir: Path, env: dict[str, str], timeout: float = 60, args: tuple[str, ...] = ()
) -> Iterator[Server]:
    """Run ``livebase serve [args]`` in ``workdir`` until the block ends."""
    port = free_port()
    log = workdir / f"server-{port}.log"
    defaults = {"HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "info"}
    full_env = environment(**{**defaults, **env})
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "livebase", "serve", *args],
            cwd=workdir,
            env=full_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = Server(process=process, base_url=f"http://127.0.0.1:{port}", log=log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"livebase exited with {process.returncode}:\n{server.output()}")
            try:
                if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"livebase did not become healthy:\n{server.output()}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
