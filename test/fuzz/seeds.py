#!/usr/bin/env python3
"""seeds.py: write the seed corpora of test/fuzz/corpus/<target>/.

    python3 test/fuzz/seeds.py        # from the top of the tree

The seeds are small and each says one thing (its file name says which):
docs/FORMAT.md's test vectors, cut and tampered ones, keyring files that
keyring_load must take or refuse, schema_migrations tables, exporter rows.
Keys are FORMAT.md's published vector keys or made-up bytes, never real.
Files the fuzzer found (regressions) live beside these, named
crash-<target>-<what>; this script neither writes nor removes them.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# docs/FORMAT.md, "Test vectors"
V1 = bytes.fromhex("01013f2a9b10000102030405060708090a0b0c0d0e0f101112131415161756571d1e2f3acf0e3dd9ab39d33ff698")
V2 = bytes.fromhex("01019c0e51d26a1f0c9e3b7d2a5f8e4c1b9d7a3e6f2c5b8d1e4a7c0f3b6e4c7000e00ab6a931ce4f09f68bee825f9a3d989234ce1ac31b6f6d4da0b71fc7f6dca6c744a3972aa1fd1ee7fbf2f31f4b6ed4b8ab6545d6f3940e08d7b1170a9c82e337f6d4c1")
V2_AD = b"oauth_tokens.access_token:0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b"
V3 = bytes.fromhex("01010a77b3e0f0e1d2c3b4a5968778695a4b3c2d1e0ff1e2d3c4b5a697881f07bca36ee377d545e65dc64f2151c57ba98115201607c595ec571909a1da30bb5d5f695c6bd03c0b96d8f58803b8563c74386b01fcae51fd7ff20f163de25c5f59853569ebe083ea4427a141e28ff2bb")
V3_AD = "oauth_tokens.refresh_token:Zürich-東京-🔑".encode()
V4 = bytes.fromhex("0101e4d1c2b39999999999999999999999999999999999999999999999aa39fddecd883c607c1ef24445f2af11a93370890182832a2b5236f02c8a9d1dbe23a77963403eaa476f076f963b2ec95c")
V4_AD = bytes.fromhex("00ff")

K_PRIMARY = "9c0e51d2 5f1c3e8a9b2d4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8"
K_ACTIVE = "0a77b3e0 a3e9d2c71b8f4e6a05d9c3b7e1f2a4d6c8b0e2f4a6c8d0e2f4b6a8c0d2e4f6a8"
K_RETIRED = "3f2a9b10 c5b8a1f4e2d3079618a4bf0e5d27c9e3a1b05f6d4c28e7193b6a0fd2e845c71b"
KEY_HEX = "5f1c3e8a9b2d4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8"

def u16(n):
    return struct.pack(">H", n)

def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def with_ad(mode, ad, rest):
    return bytes([mode]) + u16(len(ad)) + ad + rest

def flip(b, i, mask=1):
    b = bytearray(b)
    b[i] ^= mask
    return bytes(b)

# ---- fuzz_seal_open: mode (even open, odd round trip), AD, value ----------
t = "fuzz_seal_open"
write(t, "vector1-retired-key", with_ad(0, b"", V1))
write(t, "vector2-opens", with_ad(0, V2_AD, V2))
write(t, "vector3-opens-utf8-ad", with_ad(0, V3_AD, V3))
write(t, "vector4-opens-binary", with_ad(0, V4_AD, V4))
write(t, "vector2-other-row-ad", with_ad(0, V2_AD[:-1] + b"c", V2))
write(t, "vector2-refresh-column-ad", with_ad(0, V2_AD.replace(b"access", b"refresh"), V2))
write(t, "vector2-no-ad", with_ad(0, b"", V2))
write(t, "vector2-cut-to-45", with_ad(0, V2_AD, V2[:45]))
write(t, "vector2-cut-to-46", with_ad(0, V2_AD, V2[:46]))
write(t, "vector2-header-only", with_ad(0, V2_AD, V2[:6]))
write(t, "vector2-one-byte", with_ad(0, V2_AD, V2[:1]))
write(t, "empty-value", with_ad(0, b"", b""))
write(t, "vector2-version-2", with_ad(0, V2_AD, flip(V2, 0, 3)))
write(t, "vector2-algorithm-2", with_ad(0, V2_AD, flip(V2, 1, 3)))
write(t, "vector2-unknown-key", with_ad(0, V2_AD, V2[:2] + b"\xff\xff\xff\xff" + V2[6:]))
write(t, "vector2-key-id-of-vector3", with_ad(0, V2_AD, V2[:2] + V3[2:6] + V2[6:]))
write(t, "vector2-tag-flipped", with_ad(0, V2_AD, flip(V2, len(V2) - 1)))
write(t, "vector2-nonce-flipped", with_ad(0, V2_AD, flip(V2, 10)))
write(t, "vector2-byte-appended", with_ad(0, V2_AD, V2 + b"\x00"))
write(t, "roundtrip-empty", with_ad(1, b"", b""))
write(t, "roundtrip-access-token", with_ad(3, V2_AD, b"ya29.a0AfB_byDq7X3kP9vT2mLs8wQeR4nY6uJh1oZcVb0aKiGf5dSx"))
write(t, "roundtrip-binary", with_ad(0x81, V4_AD, bytes(range(256))))
write(t, "roundtrip-long-ad", with_ad(5, b"a" * 600, b"token"))

# ---- fuzz_keyring: the file itself ----------------------------------------
t = "fuzz_keyring"
write(t, "format-md-example",
      "# key id  key (32 bytes, 64 hex digits)                                    status\n"
      + K_PRIMARY + "  primary\n" + K_ACTIVE + "  active   # since 2025-01\n"
      + K_RETIRED + "  retired\n")
write(t, "one-primary", K_PRIMARY + " primary\n")
write(t, "no-final-newline", K_PRIMARY + " primary")
write(t, "crlf-tabs-comments", "# ring\r\n\r\n\t" + K_PRIMARY.replace(" ", "\t") + "\tprimary\t# main\r\n"
      + "   # indented comment\r\n" + K_ACTIVE + " active\r\n")
write(t, "byte-order-mark", "\ufeff# written by an editor that adds one\n" + K_PRIMARY + " primary\n")
write(t, "byte-order-mark-not-at-start", K_PRIMARY + " primary\n\ufeff" + K_ACTIVE + " active\n")
write(t, "uppercase-key-hex", "9c0e51d2 " + KEY_HEX.upper() + " primary\n")
write(t, "empty", "")
write(t, "only-comments", "# nothing\n\n   \n# here\n")
write(t, "no-primary", K_ACTIVE + " active\n")
write(t, "two-primaries", K_PRIMARY + " primary\n" + K_ACTIVE + " primary\n")
write(t, "duplicate-id", K_PRIMARY + " primary\n9c0e51d2 " + "ab" * 32 + " active\n")
write(t, "uppercase-id", "9C0E51D2 " + KEY_HEX + " primary\n")
write(t, "short-id", "9c0e51 " + KEY_HEX + " primary\n")
write(t, "short-key", "9c0e51d2 " + KEY_HEX[:62] + " primary\n")
write(t, "long-key", "9c0e51d2 " + KEY_HEX + "00 primary\n")
write(t, "non-hex-key", "9c0e51d2 " + KEY_HEX[:63] + "g primary\n")
write(t, "zero-key", "9c0e51d2 " + "0" * 64 + " primary\n")
write(t, "unknown-status", K_PRIMARY + " primry\n")
write(t, "text-after-status", K_PRIMARY + " primary extra\n")
write(t, "two-fields", K_PRIMARY + "\n")
write(t, "key-in-id-column", KEY_HEX + " 9c0e51d2 primary\n")
write(t, "key-as-status", "9c0e51d2 " + KEY_HEX + " " + KEY_HEX + "\n")
write(t, "comment-glued-to-key", "9c0e51d2 " + KEY_HEX + "#primary\n")
write(t, "nul-byte", K_PRIMARY + " primary\n\x00\n")
write(t, "line-4097-bytes", "#" + "x" * 4096 + "\n" + K_PRIMARY + " primary\n")
write(t, "many-keys", "".join("%08x %s %s\n" % (0x10000000 + i, "%064x" % (i + 1),
                                                "primary" if i == 0 else "active")
                              for i in range(40)))

# ---- fuzz_sql_tokens: flags, AD, value ------------------------------------
# flags: bits 0-1 value type (0 BLOB, 1 TEXT, 3 scalar/NULL); bits 2-3 AD
# (0 absent, 1 TEXT, 2 BLOB, 3 NULL, or INTEGER with bit 5); bit 4 REAL.
t = "fuzz_sql_tokens"
write(t, "vector2-text-ad", with_ad(0x04, V2_AD, V2))
write(t, "vector3-text-ad", with_ad(0x04, V3_AD, V3))
write(t, "vector4-blob-ad", with_ad(0x08, V4_AD, V4))
write(t, "vector1-retired-no-ad", with_ad(0x00, b"", V1))
write(t, "vector1-null-ad", with_ad(0x0c, b"", V1))
write(t, "vector2-wrong-ad", with_ad(0x04, b"oauth_tokens.access_token:x", V2))
write(t, "vector2-cut", with_ad(0x04, V2_AD, V2[:40]))
write(t, "vector2-as-text", with_ad(0x05, V2_AD, V2))
write(t, "vector2-integer-ad", with_ad(0x2c, b"", V2))
write(t, "token-text", with_ad(0x05, V2_AD, b"ya29.a0AfB_byDq7X3kP9vT2mLs8wQeR4nY6uJh1oZcVb0aKiGf5dSx"))
write(t, "token-blob-not-utf8", with_ad(0x08, b"\xff", b"\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80 ok"))
write(t, "text-with-nul", with_ad(0x05, b"", b"abc\x00def"))
write(t, "empty-blob", with_ad(0x00, b"", b""))
write(t, "null-value", with_ad(0x07, b"ad", b""))
write(t, "integer-value", with_ad(0x03, b"", struct.pack(">q", -42)))
write(t, "real-value", with_ad(0x13, b"", struct.pack(">d", 1.5)))
write(t, "long-ascii-then-utf8", with_ad(0x06, b"ad", b"A" * 45 + "é€😀".encode()))

# ---- fuzz_migrations: shape + actions, then rows --------------------------
t = "fuzz_migrations"
write(t, "none", "0\n")
write(t, "none-migrate", "0m\n")
write(t, "none-migrate-down", "0md\n")
write(t, "strict-at-1-migrate", "1m\ni1|n1|c1|i1700000000\n")
write(t, "strict-at-2-down", "1md\ni1|n1|c1|i1700000000\ni2|n2|c2|i1700000000\n")
write(t, "loose-at-2", "2\ni1|n1|c1|\ni2|n2|c2|\n")
write(t, "strict-changed-checksum", "1m\ni1|n1|t" + "0" * 64 + "|i1\n")
write(t, "strict-unknown-version", "1m\ni1|n1|c1|i1\ni3|tfuture|c1|i1\n")
write(t, "strict-gap", "1m\ni2|n2|c2|i1\n")
write(t, "loose-duplicate-version", "2m\ni1|n1|c1|\ni1|n1|c1|\n")
write(t, "loose-real-version", "2m\nr1.0|n1|c1|\n")
write(t, "loose-text-version", "2m\nt1|n1|c1|\n")
write(t, "text-affinity-version", "8m\ni1|n1|c1|\n")
write(t, "loose-wrong-name", "2m\ni1|tschema2|c1|\n")
write(t, "loose-blob-checksum", "2m\ni1|n1|x00ff|\n")
write(t, "loose-null-checksum", "2m\ni1|n1||\n")
write(t, "loose-checksum-of-2", "2m\ni1|n1|c2|\n")
write(t, "without-rowid-migrate", "3md\ni1|n1|c1|\n")
write(t, "reordered-columns-down", "4md\n")
write(t, "no-checksum-column", "5m\ni1|n1||\n")
write(t, "view", "6m\ni1|n1|c1|\n")
write(t, "generated-checksum", "7m\ni1|n1|c1|\n")
write(t, "negative-version", "2m\ni-1|n1|c1|\n")
write(t, "version-2-to-the-32-plus-1", "2m\ni4294967297|n1|c1|\n")
write(t, "loose-checksum-as-blob", "2m\ni1|n1|C1|\n")

# ---- fuzz_export_row: flags, then a value per column per row --------------
# flags: bits 0-1 secrets (0 keep, 1 reseal, 2 omit); 4 --verify;
# 8 --all-errors; 16 the id column is text.
t = "fuzz_export_row"
USER = "0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b"

def NULL(): return b"\x00"
def INT(v): return b"\x01" + struct.pack(">q", v)
def REAL(v): return b"\x02" + struct.pack(">d", v)
def TEXT(s):
    s = s.encode() if isinstance(s, str) else s
    return b"\x03" + u16(len(s)) + s
def BLOB(b): return b"\x04" + u16(len(b)) + b
def SEAL(s):
    s = s.encode() if isinstance(s, str) else s
    return b"\x05" + u16(len(s)) + s
def USER_ID(): return b"\x06"
def SMALL(v): return b"\x07" + struct.pack(">b", v)

def row(**over):
    cols = dict(
        id=TEXT("01938a6e-7c2b-7d4e-8f10-112233445566"),
        user_id=USER_ID(),
        access_token=SEAL("ya29.a0AfB_byDq7X3kP9vT2mLs8wQeR4nY6uJh1oZcVb0aKiGf5dSx"),
        refresh_token=SEAL("1//0gLxR7vQ2kT9sW4pZ8mN3bY6cF1hJ5dA0eU"),
        id_token=NULL(),
        scope=TEXT("https://www.googleapis.com/auth/gmail.readonly"),
        meta=TEXT('{"a":1,"b":[true,null]}'),
        extra=TEXT('{"b":[1,2.50,"x"],"a":null,"aa":{"z":1e2}}'),
        expires_at=INT(1700000000),
        seen_at=INT(0),
        active=SMALL(1),
        small=SMALL(-5),
        medium=INT(123456),
        big=INT(-2**63),
        raw=BLOB(b"\x00\xff"),
    )
    cols.update(over)
    order = ["id", "user_id", "access_token", "refresh_token", "id_token", "scope", "meta", "extra",
             "expires_at", "seen_at", "active", "small", "medium", "big", "raw"]
    return b"".join(cols[c] for c in order)

ID2 = TEXT("01938a6e-7c2b-7d4e-8f10-aabbccddeeff")
write(t, "valid-keep", b"\x00" + row())
write(t, "valid-reseal-verify", b"\x05" + row())
write(t, "valid-omit-verify", b"\x06" + row())
write(t, "valid-two-rows-reseal", b"\x01" + row() + row(id=ID2, refresh_token=NULL()))
write(t, "valid-nulls-where-allowed", b"\x04" + row(refresh_token=NULL(), scope=NULL(), meta=NULL(),
      extra=NULL(), expires_at=NULL(), seen_at=NULL(), small=NULL(), medium=NULL(), big=NULL(), raw=NULL()))
IDT = SEAL("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2FjY291bnRzLmdvb2dsZS5jb20ifQ.c2ln")
write(t, "valid-id-token-keep", b"\x00" + row(id_token=IDT))
write(t, "valid-id-token-reseal-verify", b"\x05" + row(id_token=IDT) + row(id=ID2, id_token=IDT))
write(t, "valid-id-token-omit", b"\x02" + row(id_token=IDT))
write(t, "bad-id-token-not-sealed", b"\x00" + row(id_token=BLOB(b"eyJhbGciOiJub25lIn0.plaintext")))
write(t, "valid-text-id", b"\x10" + row(id=TEXT("not-a-uuid")))
write(t, "valid-limits", b"\x04" + row(expires_at=INT(253402300799), small=INT(32767), medium=INT(-2**31),
      big=INT(2**63 - 1), extra=TEXT('[1.0e+2, -0, 0.00, "\\ud83d\\ude00", "\\u00e9\\n"]')))
write(t, "bad-uuid", b"\x00" + row(id=TEXT("01938A6E-7C2B-7D4E-8F10-112233445566")))
write(t, "bad-nul-in-text", b"\x00" + row(scope=TEXT(b"gmail\x00readonly")))
write(t, "bad-utf8", b"\x00" + row(scope=TEXT(b"\xc3\x28")))
write(t, "bad-json", b"\x00" + row(meta=TEXT("{a:1}")))
write(t, "bad-jsonb-nul-escape", b"\x00" + row(extra=TEXT('"a\\u0000b"')))
write(t, "bad-jsonb-lone-surrogate", b"\x00" + row(extra=TEXT('"\\ud800"')))
write(t, "bad-jsonb-too-many-decimals", b"\x00" + row(extra=TEXT("1e-20000")))
write(t, "bad-timestamp-ms", b"\x00" + row(expires_at=INT(1700000000000)))
write(t, "bad-timestamp-negative", b"\x00" + row(seen_at=INT(-1)))
write(t, "bad-bool-2", b"\x00" + row(active=SMALL(2)))
write(t, "bad-int2-overflow", b"\x00" + row(small=INT(40000)))
write(t, "bad-int4-overflow", b"\x00" + row(medium=INT(2**31)))
write(t, "bad-real-in-integer", b"\x00" + row(big=REAL(1.5)))
write(t, "bad-text-in-bytea", b"\x00" + row(raw=TEXT("00ff")))
write(t, "bad-foreign-key", b"\x00" + row(user_id=TEXT("01938a6e-0000-7000-8000-000000000000")))
write(t, "bad-not-sealed", b"\x00" + row(access_token=BLOB(b"ya29.plaintext")))
write(t, "bad-sealed-for-other-row", b"\x01" + row(access_token=BLOB(V2)))
write(t, "bad-null-not-null", b"\x00" + row(active=NULL()))
write(t, "bad-all-errors", b"\x08" + row(small=INT(40000), medium=INT(2**31)) + row(id=ID2, active=SMALL(3)))
