"""A real nginx (Debian's package) serving the shipped deploy/nginx.conf, in front of chatapp.

It runs as the current user in the foreground (`daemon off`), with a temporary prefix for its
pid file, temporary files and configuration, on free ports of 127.0.0.1, with a certificate from
a throwaway CA. The site is deploy/nginx.conf itself with only the lines an operator edits
swapped (upstream servers, listen addresses, certificate paths): when one of those lines is not
found, `ShippedSiteChanged` says which, so that a test never passes against a stale copy.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path

from harness.processes import ROOT, ServerProcess, free_port, tcp_open
from harness.tls import ServerCertificate, throwaway_certificate

SHIPPED_SITE = ROOT / "deploy" / "nginx.conf"


class ShippedSiteChanged(RuntimeError):
    """deploy/nginx.conf no longer has a line the harness swaps for a test value."""


def find_nginx() -> str:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if binary is None:
        raise RuntimeError("nginx is not installed: scripts/test installs Debian's nginx")
    return binary


def site_for_test(
    site: str, upstreams: Sequence[str], http_port: int, https_port: int, certificate: ServerCertificate
) -> str:
    """The shipped site with its operator-edited lines set for a test: `upstreams` as host:port."""
    swaps = [
        ("server 127.0.0.1:8000;", [f"server {address};" for address in upstreams]),
        ("listen 80;", [f"listen 127.0.0.1:{http_port};"]),
        ("listen [::]:80;", []),  # IPv6 and every address: tests listen on 127.0.0.1 only
        ("listen 443 ssl http2;", [f"listen 127.0.0.1:{https_port} ssl http2;"]),
        ("listen [::]:443 ssl http2;", []),
        (
            "ssl_certificate /etc/ssl/certs/chat.example.com.pem;",
            [f"ssl_certificate {certificate.cert_path};"],
        ),
        (
            "ssl_certificate_key /etc/ssl/private/chat.example.com.key;",
            [f"ssl_certificate_key {certificate.key_path};"],
        ),
    ]
    for line, replacements in swaps:
        # The whole line, once, outside comments: the directive nginx really reads.
        pattern = re.compile(rf"^([ \t]*){re.escape(line)}[ \t]*\n", re.MULTILINE)

        def indented(m: re.Match[str], r: list[str] = replacements) -> str:
            return "".join(f"{m.group(1)}{x}\n" for x in r)

        site, found = pattern.subn(indented, site)
        if found != 1:
            raise ShippedSiteChanged(f"the site should have the line {line!r} once; found it {found} times")
    return site


def _main_config(prefix: Path) -> str:
    """nginx.conf around the site: what /etc/nginx/nginx.conf would hold, all paths in `prefix`."""
    # As root nginx would run its workers as "nobody", who cannot read the 0700 prefix.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}
daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log stderr warn;
events {{
    worker_connections 1024;
}}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
{temp}
    include {prefix / "site.conf"};
}}
"""


class NginxServer(ServerProcess):
    """nginx with deploy/nginx.conf in front of gunicorn instances on `upstream_ports` of 127.0.0.1
    (several: nginx balances between them, as between machines). `url` is the HTTPS server,
    `http_url` the plain one that redirects; clients trust `certificate.ca_path`."""

    name = "nginx"

    def __init__(self, upstream_ports: Sequence[int], *, site: Path = SHIPPED_SITE) -> None:
        if not upstream_ports:
            raise ValueError("nginx needs at least one upstream port")
        binary = find_nginx()
        self.prefix = Path(tempfile.mkdtemp(prefix="nginx-"))
        weakref.finalize(self, shutil.rmtree, self.prefix, ignore_errors=True)
        self.http_port, self.https_port = free_port(), free_port()
        self.certificate = throwaway_certificate(self.prefix / "tls")
        upstreams = [f"127.0.0.1:{port}" for port in upstream_ports]
        (self.prefix / "site.conf").write_text(
            site_for_test(site.read_text(), upstreams, self.http_port, self.https_port, self.certificate)
        )
        config = self.prefix / "nginx.conf"
        config.write_text(_main_config(self.prefix))
        # -e: the error log before the configuration is read (the package's default is a file).
        argv = [binary, "-p", f"{self.prefix}/", "-c", str(config), "-e", "stderr"]
        super().__init__(argv, tcp_open(self.https_port))

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ca_path(self) -> Path:
        return self.certificate.ca_path
