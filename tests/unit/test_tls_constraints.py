"""airgate's local CA is name-constrained: clients that trust its bundle trust it for
`localhost`, loopback and the listen address only; a CA from before the constraints is
replaced at start, at the same path."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from airgate.tls import TlsFiles, ensure_certificates

LOOPBACK = {x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
            x509.IPAddress(ipaddress.ip_network("::1/128"))}


def permitted(ca_bundle: Path) -> tuple[bool, set[x509.GeneralName]]:
    ca = x509.load_pem_x509_certificate(ca_bundle.read_bytes())
    extension = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert extension.value.excluded_subtrees is None
    return extension.critical, set(extension.value.permitted_subtrees or ())


@pytest.mark.parametrize(("host", "more"), [
    ("127.0.0.1", set()),
    ("0.0.0.0", set()),
    ("10.1.2.3", {x509.IPAddress(ipaddress.ip_network("10.1.2.3/32"))}),
    ("2001:db8::7", {x509.IPAddress(ipaddress.ip_network("2001:db8::7/128"))}),
    ("gate.example.internal", {x509.DNSName("gate.example.internal")}),
])
def test_the_ca_permits_loopback_and_the_listen_address_only(tmp_path: Path, host: str,
                                                             more: set[x509.GeneralName]
                                                             ) -> None:
    files = ensure_certificates(tmp_path, host)
    assert permitted(files.ca_bundle) == (True, LOOPBACK | more)


def leaf(ca_folder: Path, out: Path, *names: x509.GeneralName) -> tuple[Path, Path]:
    """A server certificate for `names`, signed with the key of the CA in `ca_folder`."""
    ca_key = serialization.load_pem_private_key((ca_folder / "ca-key.pem").read_bytes(),
                                                password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate((ca_folder / "ca.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
        .issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256()))
    out.mkdir(exist_ok=True)
    (out / "leaf.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (out / "leaf-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return out / "leaf.pem", out / "leaf-key.pem"


@contextlib.contextmanager
def presenting(certificate: Path, key: Path) -> Iterator[int]:
    """A TLS server on loopback presenting `certificate` to one client; its port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            with context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"hello")
        except (ssl.SSLError, OSError):
            connection.close()  # the client refused the certificate

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        thread.join(timeout=10)
        listener.close()


def fetch(port: int, ca_bundle: Path, hostname: str) -> bytes:
    """What the server says to a client that trusts only `ca_bundle`."""
    context = ssl.create_default_context(cafile=ca_bundle)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, \
            context.wrap_socket(sock, server_hostname=hostname) as tls:
        return tls.recv(5)


def test_a_certificate_for_another_name_from_the_ca_is_refused(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "tls", "127.0.0.1")
    evil = leaf(tmp_path / "tls", tmp_path / "evil", x509.DNSName("evil.example.com"))
    with presenting(*evil) as port, pytest.raises(ssl.SSLCertVerificationError) as refused:
        fetch(port, files.ca_bundle, "evil.example.com")
    assert refused.value.verify_message == "permitted subtree violation"
    # The CA's own server certificate still verifies, by address and by name.
    for hostname in ("127.0.0.1", "localhost"):
        with presenting(files.certificate, files.private_key) as port:
            assert fetch(port, files.ca_bundle, hostname) == b"hello"


def old_unconstrained_ca(folder: Path) -> None:
    """What airgate wrote before the CA was name-constrained: a CA and a server
    certificate from it."""
    folder.mkdir(parents=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airgate local CA")])
    now = datetime.datetime.now(datetime.UTC)
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
          .public_key(key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(key, hashes.SHA256()))
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "ca-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    server, server_key = leaf(folder, folder, x509.DNSName("localhost"),
                              x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    server.rename(folder / "server.pem")
    server_key.rename(folder / "server-key.pem")


def test_an_unconstrained_ca_from_an_older_airgate_is_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    old_unconstrained_ca(folder)
    old_ca = (folder / "ca.pem").read_bytes()
    evil = leaf(folder, tmp_path / "evil", x509.DNSName("evil.example.com"))
    with presenting(*evil) as port:  # what the old CA allowed
        assert fetch(port, folder / "ca.pem", "evil.example.com") == b"hello"

    files = ensure_certificates(folder, "127.0.0.1")
    assert files == TlsFiles(folder / "ca.pem", folder / "server.pem",
                             folder / "server-key.pem")
    assert files.ca_bundle.read_bytes() != old_ca
    assert permitted(files.ca_bundle) == (True, LOOPBACK)
    with presenting(files.certificate, files.private_key) as port:
        assert fetch(port, files.ca_bundle, "127.0.0.1") == b"hello"  # re-issued from it
    evil = leaf(folder, tmp_path / "evil-again", x509.DNSName("evil.example.com"))
    with presenting(*evil) as port, pytest.raises(ssl.SSLCertVerificationError):
        fetch(port, files.ca_bundle, "evil.example.com")


def test_the_ca_is_kept_across_starts_and_replaced_for_another_listen_address(
        tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path, "127.0.0.1")
    ca, server = first.ca_bundle.read_bytes(), first.certificate.read_bytes()
    again = ensure_certificates(tmp_path, "127.0.0.1")
    assert (again.ca_bundle.read_bytes(), again.certificate.read_bytes()) == (ca, server)
    moved = ensure_certificates(tmp_path, "10.1.2.3")
    assert moved.ca_bundle.read_bytes() != ca
    assert permitted(moved.ca_bundle)[1] == LOOPBACK | {
        x509.IPAddress(ipaddress.ip_network("10.1.2.3/32"))}
