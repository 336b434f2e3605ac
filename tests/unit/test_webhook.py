"""webhook.py's certificates: the CA is a CA and nothing else; a serving certificate is for
the Service's names only, for serving only, signed by the CA, and never outlives it."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from vulcan_operator import webhook


def test_a_serving_certificate_is_the_services_and_signed_by_the_ca() -> None:
    ca_pem, ca_key = webhook.new_ca()
    ca = x509.load_pem_x509_certificate(ca_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature

    names = webhook.hostnames("vulcan-system")
    cert_pem, key_pem = webhook.issue(ca_pem, ca_key, names)
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(ca)  # raises when it is not
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == names
    assert names[0] == "vulcan-operator-webhook.vulcan-system.svc"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.not_valid_after_utc <= ca.not_valid_after_utc
    assert b"PRIVATE KEY" in key_pem and b"PRIVATE KEY" not in cert_pem


def test_each_call_makes_a_new_key() -> None:
    ca_pem, ca_key = webhook.new_ca()
    names = webhook.hostnames("ns")
    assert webhook.issue(ca_pem, ca_key, names)[1] != webhook.issue(ca_pem, ca_key, names)[1]
    assert webhook.new_ca()[1] != ca_key
