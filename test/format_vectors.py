#!/usr/bin/python3
"""format_vectors.py: docs/FORMAT.md checked by a second implementation.

Written from the text of docs/FORMAT.md alone, on PyNaCl's raw libsodium
bindings (Debian: python3-nacl) and hashlib, with none of the extension's
code, so the format the document promises is the format the C code writes.
test/seal.test runs it; by hand:

  format_vectors.py check docs/FORMAT.md
      rebuild every ```vector block's sealed hex from its key, nonce,
      plaintext and AD, open it again, and recompute every ```fingerprint
  format_vectors.py open KEYHEX SEALEDHEX ADHEX
      print the plaintext (hex) of a value sealed by the extension
  format_vectors.py seal KEYID KEYHEX PLAINTEXTHEX ADHEX
      print a value sealed here (fresh random nonce) for the extension to open

Hex arguments may be "" (empty). Exit status 0 only when every check held.
"""
import hashlib
import os
import re
import sys

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)

VERSION = 0x01
ALGORITHM = 0x01  # XChaCha20-Poly1305-IETF
HEADER = 6
NONCE = 24
TAG = 16


def header(key_id):
    return bytes([VERSION, ALGORITHM]) + key_id.to_bytes(4, "big")


def seal(key_id, key, nonce, plaintext, ad):
    h = header(key_id)
    # FORMAT.md: the AEAD's additional data is the header followed by the AD.
    return h + nonce + crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, h + ad, nonce, key)


def unseal(key, sealed, ad):
    if len(sealed) < HEADER + NONCE + TAG:
        raise ValueError("truncated")
    if sealed[0] != VERSION or sealed[1] != ALGORITHM:
        raise ValueError("not version 1, algorithm 1")
    h, nonce, ct = sealed[:HEADER], sealed[HEADER:HEADER + NONCE], sealed[HEADER + NONCE:]
    return crypto_aead_xchacha20poly1305_ietf_decrypt(ct, h + ad, nonce, key)


def fingerprint(primary_key, data):
    # FORMAT.md: crypto_kdf_derive_from_key(32, 1, "oauthfp1", primary) is
    # BLAKE2b-256 keyed with the primary key over no message, salt = subkey
    # id as 8 little-endian bytes then 8 zero bytes, personal = the context
    # then 8 zero bytes; the fingerprint is BLAKE2b-128 keyed with that.
    subkey = hashlib.blake2b(b"", digest_size=32, key=primary_key,
                             salt=(1).to_bytes(8, "little") + bytes(8),
                             person=b"oauthfp1" + bytes(8)).digest()
    return subkey, hashlib.blake2b(data, digest_size=16, key=subkey).digest()


def unhex(s):
    s = s.strip()
    return b"" if s in ("", "(empty)") else bytes.fromhex(s)


def blocks(text, kind):
    """Each ```KIND block of the document as a dict of its `name: value` lines."""
    out = []
    for body in re.findall(r"^```" + kind + r"\n(.*?)^```", text, re.S | re.M):
        fields = {}
        for line in body.splitlines():
            m = re.match(r"^([a-z ]+):\s*(.*)$", line)
            if m:
                fields[m.group(1)] = m.group(2)
        out.append(fields)
    return out


def check(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    vectors = blocks(text, "vector")
    prints = blocks(text, "fingerprint")
    failed = 0
    for i, v in enumerate(vectors, 1):
        key_id = int(v["key id"], 16)
        key, nonce = unhex(v["key"]), unhex(v["nonce"])
        pt, ad, want = unhex(v["plaintext hex"]), unhex(v["ad hex"]), unhex(v["sealed"])
        # The human-readable lines must say the same as the hex ones.
        if "plaintext" in v and v["plaintext"] != "(empty)" and v["plaintext"].encode() != pt:
            print(f"vector {i}: plaintext text and hex differ"); failed += 1
        if "ad" in v and v["ad"] != "(empty)" and v["ad"].encode() != ad:
            print(f"vector {i}: ad text and hex differ"); failed += 1
        got = seal(key_id, key, nonce, pt, ad)
        if got != want:
            print(f"vector {i}: sealed differs\n  doc:  {want.hex()}\n  here: {got.hex()}")
            failed += 1
        elif unseal(key, want, ad) != pt:
            print(f"vector {i}: does not open to its plaintext"); failed += 1
    for i, v in enumerate(prints, 1):
        subkey, fp = fingerprint(unhex(v["primary key"]), unhex(v["input hex"]))
        if subkey != unhex(v["subkey"]) or fp != unhex(v["fingerprint"]):
            print(f"fingerprint {i}: differs (subkey {subkey.hex()}, fingerprint {fp.hex()})")
            failed += 1
    if not vectors or not prints:
        print("no vectors found"); failed += 1
    if failed == 0:
        print(f"ok {len(vectors)} vectors {len(prints)} fingerprints")
    return 1 if failed else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "check":
        return check(argv[2])
    if len(argv) == 5 and argv[1] == "open":
        print(unseal(unhex(argv[2]), unhex(argv[3]), unhex(argv[4])).hex())
        return 0
    if len(argv) == 6 and argv[1] == "seal":
        print(seal(int(argv[2], 16), unhex(argv[3]), os.urandom(NONCE),
                   unhex(argv[4]), unhex(argv[5])).hex())
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
