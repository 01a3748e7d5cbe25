"""SHA256withRSA (RSASSA-PKCS1-v1_5 with SHA-256) with ``cryptography``: the merchant's
private key signs requests, the platform's public key verifies answers and callbacks.
Signatures are standard base64 with padding."""

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .errors import BadSignatureError, KassaError

MIN_KEY_BITS = 2048
MAX_KEY_BITS = 4096
MAX_SIGNATURE_BASE64 = 684


def _check_rsa(key):
    if not isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        raise KassaError("the key is not an RSA key")
    if not MIN_KEY_BITS <= key.key_size <= MAX_KEY_BITS:
        raise KassaError(f"the key has {key.key_size} bits; kassa accepts 2048 to 4096")
    return key


class SigningKey:
    """A merchant's private key (PKCS#8 or PKCS#1 PEM). ``repr`` never shows key material."""

    def __init__(self, pem):
        data = pem.encode() if isinstance(pem, str) else pem
        self._key = _check_rsa(serialization.load_pem_private_key(data, password=None))

    @classmethod
    def from_file(cls, path):
        with open(path, "rb") as file:
            return cls(file.read())

    def sign(self, message):
        """The base64 signature of ``message`` (text or bytes)."""
        data = message.encode("utf-8") if isinstance(message, str) else message
        signature = self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode("ascii")

    def __repr__(self):
        return f"SigningKey(RSA-{self._key.key_size}, ***)"


class VerifyingKey:
    """A public key: PEM (``PUBLIC KEY`` or ``RSA PUBLIC KEY``) or bare base64 DER."""

    def __init__(self, text):
        text = text.decode("ascii") if isinstance(text, bytes) else text
        stripped = text.strip()
        if stripped.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(stripped.encode("ascii"))
        else:
            try:
                der = base64.b64decode("".join(stripped.split()), validate=True)
            except binascii.Error:
                raise KassaError("the key is neither PEM nor base64 DER") from None
            key = serialization.load_der_public_key(der)
        self._key = _check_rsa(key)

    @classmethod
    def from_file(cls, path):
        with open(path, "rb") as file:
            return cls(file.read())

    def verify(self, message, signature_b64):
        """Raises :class:`BadSignatureError` unless ``signature_b64`` signs ``message``."""
        if not isinstance(signature_b64, str) or not signature_b64:
            raise BadSignatureError("sign is missing")
        if len(signature_b64) > MAX_SIGNATURE_BASE64:
            raise BadSignatureError("sign is too long")
        try:
            signature = base64.b64decode(signature_b64, validate=True)
        except binascii.Error:
            raise BadSignatureError("sign is not standard base64 with padding") from None
        data = message.encode("utf-8") if isinstance(message, str) else message
        try:
            self._key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise BadSignatureError("sign does not match the message") from None

    def __repr__(self):
        return f"VerifyingKey(RSA-{self._key.key_size})"
