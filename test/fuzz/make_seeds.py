#!/usr/bin/env python3
"""Write the seed inputs of build/fuzz/bin/fuzz_session into test/fuzz/corpus-fuzz_session/.

The input format is in test/fuzz/harness.h: byte 0 the mode (0 raw, 1 login, 2 live);
mode 0: a chunk size byte, then raw bytes; modes 1 and 2: records [u16 ctl][u16 len][body]
whose plaintext the harness seals with the fixed test keys. Protobuf bodies are encoded
by hand (proto3 wire format, src/proto/cim.proto) so that this needs only Python's
standard library. The values below must match harness.h (user, device, secret, expiry).

Usage: test/fuzz/make_seeds.py  (rewrites every seed; deterministic output)
"""
import base64
import hashlib
import hmac
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus-fuzz_session')

USER, DEVICE = b'fuzz', b'fuzzdev'
SECRET = bytes([0x5a]) * 32             # FUZZ_SECRET_BYTE
EXPIRY = 4102444800                     # FUZZ_TOKEN_EXPIRY

FT = dict(HELLO=0x0001, BYE=0x0003, LOGIN=0x0101, LOGOUT=0x0103, PING=0x0105, PONG=0x0106,
          SEND=0x0201, PUSH_ACK=0x0204, SYNC=0x0205, RECALL=0x0207, CONV_LIST=0x0301,
          HISTORY=0x0303, READ=0x0305, GROUP_CREATE=0x0401, GROUP_JOIN=0x0403,
          GROUP_LEAVE=0x0405, GROUP_ADD=0x0407, GROUP_KICK=0x0409, GROUP_DISMISS=0x040B,
          GROUP_MEMBERS=0x040D, GROUP_LIST=0x040F, CONTACT_ADD=0x0501,
          CONTACT_REMOVE=0x0503, CONTACT_LIST=0x0505, BLOCK=0x0507, UNBLOCK=0x0509)

# Record control bits (harness.h).
RAW_TYPE, TAMPER, RAW, REPLAY, SPLIT, BYTEWISE = 0x0800, 0x1000, 0x2000, 0x3000, 0x4000, 0x8000


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7f
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_int(num, v):
    return varint(num << 3) + varint(v) if v else b''


def f_bytes(num, v):
    return varint(num << 3 | 2) + varint(len(v)) + v


def token(user, app=b'default', expiry=EXPIRY):
    mac = hmac.new(SECRET, b'v1|' + app + b'|' + user + b'|' + str(expiry).encode(),
                   hashlib.sha256).digest()
    return b'v1.%d.' % expiry + base64.urlsafe_b64encode(mac).rstrip(b'=')


def login_req(req_id=1, user=USER, tok=None, device=DEVICE, kind=2):
    return (f_int(1, req_id) + f_bytes(3, user) + f_bytes(4, tok or token(user)) +
            f_bytes(5, device) + f_int(6, kind) + f_bytes(7, b'seed'))


def req(req_id):
    return f_int(1, req_id)


def frame(ftype, body):
    return struct.pack('>II', 8 + len(body), ftype) + body


def rec(ftype, body, flags=0):
    return struct.pack('>HH', RAW_TYPE | ftype | flags, len(body)) + body


def raw_rec(data):
    return struct.pack('>HH', RAW, len(data)) + data


# RFC 7748's Alice public key: a valid X25519 point, so the handshake completes.
CLIENT_KEY = bytes.fromhex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a')
HELLO = f_int(1, 1) + f_bytes(2, CLIENT_KEY) + f_bytes(3, bytes(range(32)))
PING = f_int(1, 1767225600000)

EVERY_REQUEST = [
    ('SEND', f_int(1, 2) + f_bytes(2, b'c1') + f_int(3, 1) + f_bytes(4, USER) + f_int(5, 1) +
     f_bytes(6, b'hello')),
    ('PUSH_ACK', f_int(1, 5)),
    ('SYNC', f_int(1, 3) + f_int(3, 10)),
    ('RECALL', f_int(1, 4) + f_int(2, 12345)),
    ('CONV_LIST', req(5)),
    ('HISTORY', f_int(1, 6) + f_int(2, 1) + f_bytes(3, USER) + f_int(5, 20)),
    ('READ', f_int(1, 7) + f_int(2, 1) + f_bytes(3, USER) + f_int(4, 1)),
    ('GROUP_CREATE', f_int(1, 8) + f_bytes(2, b'g') + f_bytes(3, USER) + f_int(4, 1)),
    ('GROUP_JOIN', f_int(1, 9) + f_bytes(2, b'1')),
    ('GROUP_ADD', f_int(1, 10) + f_bytes(2, b'1') + f_bytes(3, USER)),
    ('GROUP_KICK', f_int(1, 11) + f_bytes(2, b'1') + f_bytes(3, USER)),
    ('GROUP_MEMBERS', f_int(1, 12) + f_bytes(2, b'1')),
    ('GROUP_LIST', req(13)),
    ('GROUP_LEAVE', f_int(1, 14) + f_bytes(2, b'1')),
    ('GROUP_DISMISS', f_int(1, 15) + f_bytes(2, b'1')),
    ('CONTACT_ADD', f_int(1, 16) + f_bytes(2, USER)),
    ('CONTACT_LIST', req(17)),
    ('CONTACT_REMOVE', f_int(1, 18) + f_bytes(2, USER)),
    ('BLOCK', f_int(1, 19) + f_bytes(2, USER)),
    ('UNBLOCK', f_int(1, 20) + f_bytes(2, USER)),
]

SEEDS = {
    # mode 0: raw bytes from the HELLO state
    'raw-hello': b'\0\0' + frame(FT['HELLO'], HELLO),
    'raw-hello-twice-chunked': b'\0\x05' + frame(FT['HELLO'], HELLO) * 2,
    'raw-short-length': b'\0\0' + struct.pack('>II', 4, FT['HELLO']),
    'raw-over-handshake-max': b'\0\0' + struct.pack('>II', 2000, FT['HELLO']) + HELLO,
    'raw-not-hello': b'\0\0' + frame(FT['PING'], PING),
    # mode 1: sealed frames from the LOGIN state
    'login-ok-ping': b'\1' + rec(FT['LOGIN'], login_req()) + rec(FT['PING'], PING),
    'login-bad-token': b'\1' + rec(FT['LOGIN'], login_req(tok=token(USER)[:-2] + b'AA')),
    'login-bad-device': b'\1' + rec(FT['LOGIN'], login_req(device=b'bad device')),
    'login-not-first': b'\1' + rec(FT['PING'], PING),
    # mode 2: sealed frames after the harness's own LOGIN
    'live-ping': b'\2' + rec(FT['PING'], PING),
    'live-every-request': b'\2' + b''.join(rec(FT[n], body) for n, body in EVERY_REQUEST) +
                          rec(FT['LOGOUT'], req(21)),
    # byte 0 = 5: mode 2 with a slow reader (answers queue in libuv's write queue)
    'live-every-request-slow-reader': b'\5' + b''.join(rec(FT[n], body)
                                                       for n, body in EVERY_REQUEST * 3),
    'live-login-again': b'\2' + rec(FT['LOGIN'], login_req(req_id=2)),
    'live-server-type': b'\2' + rec(FT['PONG'], b''),
    'live-hello-again': b'\2' + rec(FT['HELLO'], HELLO),
    'live-unknown-type': b'\2' + rec(0x0777, req(1)),
    'live-bad-ping': b'\2' + rec(FT['PING'], b'\x08'),
    'live-tamper': b'\2' + rec(FT['PING'], PING, TAMPER),
    'live-replay': b'\2' + rec(FT['PING'], PING, REPLAY),
    'live-split-bytewise': b'\2' + rec(FT['PING'], PING, SPLIT) + rec(FT['PING'], PING, BYTEWISE),
    'live-raw-frames': b'\2' + raw_rec(struct.pack('>II', 8, FT['PING'])) +
                       raw_rec(struct.pack('>II', 0x7fffffff, FT['PING'])),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(OUT, name), 'wb') as f:
            f.write(data)
    print('%d seeds in %s' % (len(SEEDS), OUT))


if __name__ == '__main__':
    main()
