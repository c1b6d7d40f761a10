"""The Forge servers a batch is dispatched to: the Settings list read and checked, and this Forge's own address."""
from __future__ import annotations

from typing import List, Optional
from urllib.parse import quote, urlsplit

from ..errors import OrchestratorError

AUTH_ENV = "ORCHESTRATOR_SERVER_AUTH"  # user:password for the listed servers started with --api-auth
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


def parse_servers(text: str, where: str = "Servers", credentials: bool = True) -> List[str]:
    """One URL a line (or comma-separated): `http://host:port`, `http://user:pass@host:port` for `--api-auth`
    (unless `credentials` is False). Blank lines and `#` comments are skipped; a server listed twice counts once."""
    found: List[str] = []
    seen = set()
    for number, line in enumerate(text.splitlines(), 1):
        for item in line.split("#", 1)[0].split(","):
            url = item.strip()
            if not url:
                continue
            parts = urlsplit(url if "://" in url else "http://" + url)
            try:
                port = parts.port
            except ValueError:
                port = -1
            if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or parts.path not in ("", "/"):
                raise OrchestratorError(
                    f"{where}, line {number}: {item.strip()!r} is not a Forge server address",
                    hint="write one like http://192.168.1.20:7860 (http://user:pass@host:port with --api-auth)")
            if not credentials and (parts.username or parts.password):
                raise OrchestratorError(
                    f"{where}, line {number}: no user or password here: Forge shows its settings to every API client",
                    hint=f"set {AUTH_ENV}=user:password in the environment Forge starts in instead")
            url = parts._replace(path="").geturl()
            if same_server_key(url) not in seen:
                seen.add(same_server_key(url))
                found.append(url)
    return found


def same_server_key(url: str) -> str:
    """Two addresses of one server compare equal: case, a trailing slash, the default port, loopback names and
    credentials do not matter."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    host = "127.0.0.1" if host in _LOOPBACK else host
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{host}:{port}"


def own_server(local_url: Optional[str], port: Optional[int], tls: bool, api_auth: Optional[str]) -> str:
    """This Forge's API as another process reaches it on this machine: the address its web server reports when
    known (Forge picks a free port when `--port` is not given), else the port it was told, else 7860; with the
    first user of `--api-auth`."""
    if local_url:
        base = local_url.rstrip("/")
    else:
        base = f"{'https' if tls else 'http'}://127.0.0.1:{port or 7860}"
    if api_auth:
        user, _, password = api_auth.split(",")[0].partition(":")
        parts = urlsplit(base)
        base = parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc}").geturl()
    return base


def fleet(listed: str, here: Optional[str], auth: Optional[str]) -> List[str]:
    """The servers of *Run on all servers*: this Forge first (when it takes part), then the Settings list, which
    holds no secrets; `auth` (user:password, from the environment) goes to each listed server."""
    servers = [here] if here else []
    seen = {same_server_key(url) for url in servers}
    for url in parse_servers(listed, "Settings › Orchestrator › Servers", credentials=False):
        if same_server_key(url) in seen:
            continue
        seen.add(same_server_key(url))
        if auth:
            user, _, password = auth.partition(":")
            parts = urlsplit(url)
            url = parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc}").geturl()
        servers.append(url)
    return servers
