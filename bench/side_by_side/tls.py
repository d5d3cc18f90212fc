"""Key material made fresh for each run: a throwaway CA and a leaf certificate for the CIMD
host, and the ES256 key of the private_key_jwt client (with its assertions)."""

import datetime as dt
import secrets
import time
from base64 import urlsafe_b64encode

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# FastMCP refuses assertions living longer than 300 s; cimdgate's limit is the same order.
ASSERTION_LIFETIME_S = 240


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca_and_leaf(workdir, hostname):
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "side-by-side bench CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(ca_name).public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca_pem": workdir / "ca.pem", "leaf_pem": workdir / "leaf.pem",
             "leaf_key": workdir / "leaf-key.pem"}
    paths["ca_pem"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["leaf_pem"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths["leaf_key"].write_bytes(_pem_key(leaf_key))
    return paths


def _b64(n):
    return urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


class Es256Key:
    def __init__(self, kid):
        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP256R1())

    def jwks(self):
        pub = self.key.public_key().public_numbers()
        return {"keys": [{"kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256",
                          "use": "sig", "x": _b64(pub.x), "y": _b64(pub.y)}]}

    def assertion(self, client_id, audience):
        now = int(time.time())
        claims = {"iss": client_id, "sub": client_id, "aud": audience, "iat": now,
                  "exp": now + ASSERTION_LIFETIME_S, "jti": secrets.token_urlsafe(16)}
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})
