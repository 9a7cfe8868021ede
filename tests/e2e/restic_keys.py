"""A restic repository key that is cheap to open, for the tests' shared repository.

``restic init`` calibrates its scrypt parameters to take half a second of CPU, and every
restic command pays that again to open the repository: over the suite's fifty-odd restic
commands, a fifth of its CPU on two cores. restic's own tests lower the parameters
(TestUseLowSecurityKDFParameters); its command line cannot. So the test repository, made by a
real ``restic init``, gets its master key re-wrapped here under scrypt N=1024, in restic's
key format (design.md of restic: "Keys, Encryption and MAC"): the user key is scrypt's 64
bytes, 32 for AES-256-CTR and 32 for Poly1305-AES (k, then r); the data is
IV || ciphertext || MAC. The repository, its master key and every file in it stay as restic
made them; only the password's wrapping of the master key is cheaper.
"""

import base64
import hashlib
import json
import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.poly1305 import Poly1305

CHEAP = {"N": 1024, "r": 8, "p": 1}
SALT_BYTES = 64
IV_BYTES = 16
MAC_BYTES = 16


def user_key(password, salt, n, r, p):
    """(AES-256 key, Poly1305-AES k, Poly1305 r) derived from ``password`` as restic does."""
    derived = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024,
                             dklen=64)
    return derived[:32], derived[32:48], derived[48:]


def poly1305_aes(message, iv, mac_k, mac_r):
    """Poly1305 keyed with r || AES-128_k(iv), as restic's poly1305MAC."""
    encryptor = Cipher(algorithms.AES(mac_k), modes.ECB()).encryptor()  # noqa: S305 - one block
    one_time = mac_r + encryptor.update(iv) + encryptor.finalize()
    return Poly1305.generate_tag(one_time, message)


def aes_ctr(key, iv, data):
    cipher = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return cipher.update(data) + cipher.finalize()


def open_key(document, password):
    """The master key JSON (bytes) in the key file ``document`` (a dict)."""
    aes, mac_k, mac_r = user_key(password, base64.b64decode(document["salt"]), document["N"],
                                 document["r"], document["p"])
    data = base64.b64decode(document["data"])
    iv, body, mac = data[:IV_BYTES], data[IV_BYTES:-MAC_BYTES], data[-MAC_BYTES:]
    if poly1305_aes(body, iv, mac_k, mac_r) != mac:
        raise ValueError("the password does not open this restic key")
    return aes_ctr(aes, iv, body)


def seal_key(document, master, password, params):
    """A key file (bytes) like ``document`` wrapping ``master`` under ``params``."""
    salt = os.urandom(SALT_BYTES)
    aes, mac_k, mac_r = user_key(password, salt, params["N"], params["r"], params["p"])
    iv = os.urandom(IV_BYTES)
    body = aes_ctr(aes, iv, master)
    data = iv + body + poly1305_aes(body, iv, mac_k, mac_r)
    cheap = dict(document, salt=base64.b64encode(salt).decode(),
                 data=base64.b64encode(data).decode(), **params)
    return json.dumps(cheap).encode()


def cheapen(repository, password):
    """Replace the one key of the local restic ``repository`` by one that wraps the same master
    key under CHEAP parameters; the file is named by its SHA-256, as restic names keys."""
    keys = os.path.join(repository, "keys")
    (name,) = os.listdir(keys)
    with open(os.path.join(keys, name), "rb") as handle:
        document = json.load(handle)
    master = open_key(document, password)
    sealed = seal_key(document, master, password, CHEAP)
    path = os.path.join(keys, hashlib.sha256(sealed).hexdigest())
    with open(path, "wb") as handle:
        handle.write(sealed)
    os.chmod(path, 0o400)
    os.unlink(os.path.join(keys, name))
