"""The one exception for every failed decryption, authentication or parse."""


class CryptoError(Exception):
    """Decryption or authentication failed, or the input is malformed.

    Messages are fixed strings: they never carry key, plaintext or ciphertext material.
    """
