"""A throwaway certificate authority and a server certificate from it, as files, for servers under
test that speak TLS (nginx): the server reads the certificate and key files, clients trust the CA file."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class ServerCertificate:
    ca_path: Path  # the CA's certificate, for clients to trust
    cert_path: Path  # the server's certificate chain
    key_path: Path  # its private key

    def client_context(self) -> ssl.SSLContext:
        """A client-side context that trusts only the throwaway CA."""
        return ssl.create_default_context(cafile=str(self.ca_path))


def throwaway_certificate(
    directory: Path, *hostnames: str, ca: trustme.CA | None = None
) -> ServerCertificate:
    """A new CA (or `ca`) and a certificate for `hostnames` (127.0.0.1 and localhost when none),
    written into `directory`."""
    ca = ca or trustme.CA()
    server = ca.issue_cert(*(hostnames or ("127.0.0.1", "localhost")))
    directory.mkdir(parents=True, exist_ok=True)
    files = ServerCertificate(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca_path))
    server.cert_chain_pems[0].write_to_path(str(files.cert_path))
    for pem in server.cert_chain_pems[1:]:
        pem.write_to_path(str(files.cert_path), append=True)
    server.private_key_pem.write_to_path(str(files.key_path))
    return files
