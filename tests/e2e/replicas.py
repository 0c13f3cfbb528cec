"""Three `citygate serve` replicas on one PostgreSQL database, Debian's nginx in front: the set-up
of tests/e2e/test_replicas.py, as an operator would run it (docs/operators.md, "Deployment").

Everything here is real: a database of its own (`citygate_lb_<random>`, dropped at the end), the
demo city's connectors folder and policy (with secrets made for the run), the demo's partner
subgraphs on loopback, three gateway processes, and an nginx process on an ephemeral port with its
configuration, logs and pid file in a temporary folder (no root needed). It must never touch
another database than its own: the listener connections it terminates are looked up in its own
database only, and belong to the replica it names.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from gateway.demo import CLIENTS, ISSUER, demo_policy
from gateway.registry import new_key
from tests.world.server import free_port

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def postgres_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=0.5).close()
        return True
    except OSError:
        return False


@contextmanager
def fresh_database() -> Iterator[str]:
    """A database of this test's own, dropped at the end (connections and all)."""
    import asyncio

    name = f"citygate_lb_{secrets.token_hex(4)}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(f"{POSTGRES}/postgres", timeout=5)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@dataclass
class City:
    """The demo city's credentials for this run, and its policy file (shared by the replicas)."""

    folder: Path
    operator_key: str = field(default_factory=lambda: new_key("cgo"))
    client_keys: dict[str, str] = field(default_factory=lambda: {client: new_key("cgc") for client in CLIENTS})

    def __post_init__(self) -> None:
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(self._signing_key.public_key()))
        jwk.update(kid=secrets.token_hex(4), use="sig", alg="RS256")
        self._kid = jwk["kid"]
        self.jwks_file = self.folder / "jwks.json"
        self.jwks_file.write_text(json.dumps({"keys": [jwk]}))
        self.policy_file = self.folder / "policy.yaml"
        self.policy = demo_policy(self.client_keys, self.jwks_file)
        self.write_policy()

    def write_policy(self) -> None:
        # written whole then renamed: a replica reloading never reads half a file
        partial = self.policy_file.with_suffix(".part")
        partial.write_text(yaml.safe_dump(self.policy, sort_keys=False))
        partial.replace(self.policy_file)

    def resident_token(self, resident: str) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": "citygate", "sub": resident, "azp": "city-app", "iat": now, "exp": now + 3600}
        return jwt.encode(claims, self._signing_key, algorithm="RS256", headers={"kid": self._kid})


class Replica:
    """One `citygate serve --connectors` process; its output goes to a log file (never a pipe that fills)."""

    def __init__(self, name: str, folder: Path, store: str, city: City, partners_url: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"{name}.log"
        command = [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--connectors",
            str(ROOT / "connectors"),
            "--store",
            store,
            "--policy",
            str(city.policy_file),
            "--port",
            str(self.port),
        ]
        environment = {**os.environ, "CITYGATE_OPERATOR_KEY": city.operator_key, "CITYGATE_DEMO_URL": partners_url}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=folder)

    def wait_until_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"replica {self.name} exited ({self.process.returncode}):\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"replica {self.name} did not become ready:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def local_tcp_ports(self) -> set[int]:
        """The local ports of this process's TCP sockets (its connections to PostgreSQL among them),
        from /proc: which backend in pg_stat_activity is this replica's is told by its client_port."""
        inodes = set()
        fd_folder = Path(f"/proc/{self.process.pid}/fd")
        for entry in fd_folder.iterdir():
            try:
                target = os.readlink(entry)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        ports = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                rows = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                columns = row.split()
                if columns[9] in inodes:
                    ports.add(int(columns[1].rsplit(":", 1)[1], 16))
        return ports

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


NGINX_CONF = """\
# nginx in front of the replicas, as in docs/operators.md: run unprivileged from a folder of its own.
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream citygate {{
        random;
{servers}
        keepalive 32;
        keepalive_timeout 4s;  # below the gateway's keep-alive timeout (5 s)
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://citygate;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            # which replica answered: the test checks that the balancer spreads the cycles
            add_header X-Citygate-Upstream $upstream_addr always;
        }}
    }}
}}
"""


class Nginx:
    """Debian's nginx as a subprocess (`daemon off;`), its configuration and logs in `folder`."""

    def __init__(self, folder: Path, replicas: list[Replica]) -> None:
        assert Path(NGINX).exists(), (
            "the replicas test needs Debian's nginx: run make (it installs it) or apt-get install nginx"
        )
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        servers = "\n".join(f"        server 127.0.0.1:{replica.port};" for replica in replicas)
        self.conf = folder / "nginx.conf"
        self.conf.write_text(NGINX_CONF.format(folder=folder, port=self.port, servers=servers))
        # -e: the error log before the configuration is read (not /var/log/nginx, which needs root)
        self.process = subprocess.Popen(
            [NGINX, "-c", str(self.conf), "-p", str(folder), "-e", str(folder / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited ({self.process.returncode}): {self.errors()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"nginx did not listen: {self.errors()}") from None
                time.sleep(0.05)

    def errors(self) -> str:
        path = self.folder / "error.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: nginx's fast shutdown, the worker goes with the master
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
