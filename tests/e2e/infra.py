"""An independent implementation of the Infra server's formats, used as the test oracle.

It is written from docs/infra-format.md, not from infra-keys' C++ code, and checks itself against the
vectors the Infra server's own code produced (tests/vectors) before any test trusts it.
"""
import base64
import hashlib
import json
import os
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

EMPTY_KEY_ID = hashlib.sha256(b"").digest()[:4]


def key_id_of(wrapped: bytes) -> bytes:
    return hashlib.sha256(wrapped).digest()[:4]


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def b64decode(text: str) -> bytes:
    if "=" in text:
        raise ValueError("padded base64")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def seal(key: bytes, plaintext: bytes, key_id: bytes, root_key_id: str = "", nonce: bytes = None) -> str:
    nonce = nonce or os.urandom(12)
    ct = AESGCM(key).encrypt(nonce, plaintext, None)
    rk = root_key_id.encode()
    out = struct.pack(">I", len(ct)) + ct
    for field in (b"aesgcm", key_id, rk, nonce):
        out += bytes([len(field)]) + field
    return b64encode(out)


def parse(text: str):
    raw = b64decode(text)
    (n,) = struct.unpack(">I", raw[:4])
    pos = 4 + n
    if len(raw) < pos:
        raise ValueError("truncated")
    fields = [raw[4:pos]]
    for _ in range(4):
        if pos >= len(raw):
            raise ValueError("truncated")
        length = raw[pos]
        fields.append(raw[pos + 1:pos + 1 + length])
        pos += 1 + length
        if pos > len(raw):
            raise ValueError("truncated")
    if pos != len(raw):
        raise ValueError("trailing bytes")
    ct, algorithm, key_id, root_key_id, nonce = fields
    return {"ciphertext": ct, "algorithm": algorithm, "key_id": key_id, "root_key_id": root_key_id, "nonce": nonce}


def unseal(key: bytes, text: str, expected_key_id: bytes) -> bytes:
    """The server's rules: key id check, then GCM. Raises ValueError on any failure."""
    p = parse(text)
    if p["key_id"] != expected_key_id:
        raise ValueError("supplied key cannot decrypt this message; wrong key was used")
    return AESGCM(key).decrypt(p["nonce"], p["ciphertext"], None)


def self_check(vectors_dir: str):
    """Refuses to act as an oracle unless it agrees with every server-made vector."""
    with open(os.path.join(vectors_dir, "infra-seal.json")) as f:
        for v in json.load(f)["vectors"]:
            if v["kind"] == "seal-error":
                continue
            key = bytes.fromhex(v["key_hex"])
            kid = key_id_of(v["key_encrypted"].encode()) if v["kind"] == "field" else EMPTY_KEY_ID
            try:
                got = unseal(key, v["sealed"], kid)
                ok = got == bytes.fromhex(v["plaintext_hex"])
            except Exception:
                ok = False
            assert ok == (v["expect"] == "ok"), v["name"]
    with open(os.path.join(vectors_dir, "infra-seal-golden.json")) as f:
        for v in json.load(f)["vectors"]:
            if v["group"] == "wrap":
                key, kid = bytes.fromhex(v["root_key_hex"]), EMPTY_KEY_ID
            else:
                key, kid = bytes.fromhex(v["db_key_hex"]), key_id_of(v["db_key_encrypted"].encode())
            if v["expect"] == "ok" and "nonce_hex" in v:
                again = seal(key, bytes.fromhex(v["plaintext_hex"]), kid, v.get("payload_root_key_id", ""),
                             bytes.fromhex(v["nonce_hex"]))
                assert again == v["sealed"], v["name"]
            try:
                ok = unseal(key, v["sealed"], kid) == bytes.fromhex(v["plaintext_hex"])
            except Exception:
                ok = False
            assert ok == (v["expect"] == "ok"), v["name"]
