"""A private CA and a TLS server certificate for the update server, made with ``cryptography``.

The CA certificate is what devices pin: ``DATA/server_cert.pem`` is embedded into the firmware
with ``EMBED_TXTFILES`` exactly as ESP-IDF's OTA examples embed ``server_certs/ca_cert.pem``.
The leaf certificate carries every hostname and IP address in its subjectAltName, so a device
connecting to a name that is not listed is refused by mbedTLS (and by httpx in the tests).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from otaforge.errors import InputError

DEFAULT_HOSTNAMES = ("localhost", "127.0.0.1")
CA_YEARS = 20
LEAF_YEARS = 10


@dataclass(frozen=True)
class ServerPki:
    """PEM bytes of a fresh CA and of a server certificate it issued.

    Attributes:
        ca_cert: the CA certificate (devices pin this one).
        ca_key: the CA private key (keep offline after ``server init``; needed to re-issue).
        cert: the server certificate followed by the CA certificate (the TLS chain).
        key: the server private key.
    """

    ca_cert: bytes
    ca_key: bytes
    cert: bytes
    key: bytes


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            if not name or any(c.isspace() or c in "/:@" for c in name):
                raise InputError(f"--hostname {name!r}: not a host name or IP address") from None
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def create_pki(hostnames: list[str] | None = None, *, org: str = "otaforge") -> ServerPki:
    """Create a CA and a server certificate valid for ``hostnames``.

    ECDSA P-256 keys: mbedTLS on every ESP32 handles them, and handshakes are cheap.

    Args:
        hostnames: DNS names and IP addresses for the subjectAltName
            (default ``localhost`` and ``127.0.0.1``).
        org: organisation name in both subjects.

    Raises:
        InputError: a host name is empty or malformed.
    """
    names = list(dict.fromkeys(hostnames or DEFAULT_HOSTNAMES))
    _san(names)  # refuse a malformed name before making any key
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"{org} update server CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert, key = _leaf(ca_cert, ca_key, names, LEAF_YEARS * 365, org)
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    return ServerPki(ca_cert=ca_pem, ca_key=_pem_key(ca_key), cert=cert + ca_pem, key=key)


def _leaf(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, names: list[str],
          days: int, org: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a fresh server certificate for ``names``."""
    san = _san(names)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                                 x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                     False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return leaf.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def cert_names(cert_pem: bytes) -> list[str]:
    """The DNS names and IP addresses in a certificate's subjectAltName."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [*san.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]


def reissue(ca_cert_pem: bytes, ca_key_pem: bytes, names: list[str], days: int,
            org: str = "otaforge") -> tuple[bytes, bytes, dt.datetime]:
    """A new server certificate (chain PEM, key PEM, expiry) from the existing CA: devices
    that embed the CA keep trusting the server.

    Raises:
        InputError: a name is malformed, ``days`` is out of range, or the CA files do not
            belong together.
    """
    if not 1 <= days <= 3650 * 2:
        raise InputError(f"--days {days}: expected 1..7300")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey) or \
            ca_key.public_key().public_numbers() != ca_cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise InputError("tls/ca.key does not belong to server_cert.pem: cannot reissue")
    cert, key = _leaf(ca_cert, ca_key, list(dict.fromkeys(names)), days, org)
    expiry = x509.load_pem_x509_certificate(cert).not_valid_after_utc
    return cert + ca_pem_of(ca_cert), key, expiry


def ca_pem_of(ca_cert: x509.Certificate) -> bytes:
    return ca_cert.public_bytes(serialization.Encoding.PEM)
