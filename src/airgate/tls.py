"""A local certificate authority for `airgate up --tls`.

Clients that hard-code `https://` (the Amazon provider's web-login fallback builds
`https://{WebServerHostname}/...`) need airgate's API and every environment's front on
TLS. airgate makes its own CA once, keeps its key in the home (0600), and issues the server
certificate from it for the listen address, `localhost` and `127.0.0.1`; clients trust the
CA's bundle (AWS_CA_BUNDLE, REQUESTS_CA_BUNDLE, SSL_CERT_FILE).

The CA carries critical X.509 Name Constraints that permit only those names (`localhost`,
127.0.0.0/8, ::1 and the listen address): a client that trusts the bundle trusts it for
nothing else, even if the CA's key were taken. A CA without them (made by an older airgate)
or for another listen address is replaced at start, at the same path.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from airgate.auth.secrets import write_private

CA_DAYS = 3650
SERVER_DAYS = 365
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_bundle: Path  # what clients trust
    certificate: Path  # the server's certificate, then the CA's
    private_key: Path


def ensure_certificates(folder: Path, host: str) -> TlsFiles:
    """The CA and a server certificate valid for `host`, made or renewed as needed."""
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    ca_key, ca_cert = _authority(folder, permitted_names(host))
    names = _names(host)
    if not _still_good(files.certificate, names, ca_cert):
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airgate")]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        write_private(files.private_key, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM)
                                      + ca_cert.public_bytes(serialization.Encoding.PEM))
    return files


def permitted_names(host: str) -> list[x509.GeneralName]:
    """What the CA may vouch for: loopback, `localhost` and the listen address."""
    permitted: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
        x509.IPAddress(ipaddress.ip_network("::1/128"))]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            permitted.append(x509.DNSName(host))
    else:
        if not (address.is_unspecified or address.is_loopback):
            permitted.append(x509.IPAddress(ipaddress.ip_network(address)))
    return permitted


def _authority(folder: Path, permitted: list[x509.GeneralName],
               ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The CA, made again if it does not constrain names to exactly `permitted`."""
    key_file, cert_file = folder / "ca-key.pem", folder / "ca.pem"
    if key_file.exists() and cert_file.exists():
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        if _constrained_to(certificate, permitted):
            return key, certificate
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airgate local CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.NameConstraints(permitted_subtrees=permitted,
                                            excluded_subtrees=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private(key_file, key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key, certificate


def _names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            names.append(x509.DNSName(host))
    else:
        if not address.is_unspecified and str(address) != "127.0.0.1":
            names.append(x509.IPAddress(address))
    return names


def _constrained_to(certificate: x509.Certificate, permitted: list[x509.GeneralName]) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return False
    return (constraints.critical and not constraints.value.excluded_subtrees
            and set(constraints.value.permitted_subtrees or ()) == set(permitted))


def _still_good(path: Path, names: list[x509.GeneralName], ca: x509.Certificate) -> bool:
    if not path.exists():
        return False
    certificate = x509.load_pem_x509_certificates(path.read_bytes())[0]
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):  # issued by a CA since replaced
        return False
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    expires = certificate.not_valid_after_utc
    return (set(san) == set(names)
            and expires - datetime.datetime.now(datetime.UTC) > RENEW_BEFORE)
