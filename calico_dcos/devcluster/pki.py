"""A certificate authority made at start-up, for the devcluster's HTTPS (strict mode).

A DC/OS cluster has its own CA; its bundle is `/run/dcos/pki/CA/ca-bundle.crt` on every node
(DC/OS documentation, "Establishing trust in your cluster"). The devcluster makes one the
same way, with the `cryptography` package: a self-signed CA, and a server certificate it
signs for `localhost` and the loopback addresses. `ca_bundle` is what a client is pointed at.

    pki = Pki.create(directory)
    pki.ca_bundle          # <directory>/ca-bundle.crt: the CA certificate, PEM
    pki.server_context()   # ssl.SSLContext with the server certificate and key
    pki.context_for(ip)    # the same for a certificate of its own (an agent's address)
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LIFETIME = datetime.timedelta(days=2)


@dataclass(frozen=True)
class Pki:
    """Where the CA bundle, server certificate and server key were written."""

    ca_bundle: Path
    certificate: Path
    key: Path
    ca_key: Path  # the CA's private key, for `context_for`

    @classmethod
    def create(cls, directory: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> Pki:
        """A new CA and a server certificate for `hosts` (names or IP addresses)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devcluster CA")])
        ca = (
            _builder(ca_name, ca_name, ca_key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        pki = cls(
            directory / "ca-bundle.crt",
            directory / "server.crt",
            directory / "server.key",
            directory / "ca.key",
        )
        _write(pki.ca_bundle, ca.public_bytes(serialization.Encoding.PEM), 0o644)
        _write(pki.ca_key, _private_pem(ca_key), 0o600)
        pki._issue(hosts, pki.certificate, pki.key)
        return pki

    def _issue(self, hosts: tuple[str, ...], certificate_path: Path, key_path: Path) -> None:
        """A server certificate for `hosts` (names or IP addresses), signed by the CA."""
        ca = x509.load_pem_x509_certificate(self.ca_bundle.read_bytes())
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
        now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
        certificate = (
            _builder(subject, ca.subject, key.public_key(), now)
            .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write(certificate_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
        _write(key_path, _private_pem(key), 0o600)

    def server_context(self) -> ssl.SSLContext:
        """TLS 1.2 or later with the server certificate, for aiohttp's `ssl_context`."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.certificate, self.key)
        return context

    def context_for(self, host: str) -> ssl.SSLContext:
        """A server context with a certificate of its own for `host` (an agent's address)."""
        certificate = self.certificate.with_name(f"{host}.crt")
        key = self.key.with_name(f"{host}.key")
        if not certificate.exists():
            self._issue((host,), certificate, key)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certificate, key)
        return context


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key, now: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + LIFETIME)
    )


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
