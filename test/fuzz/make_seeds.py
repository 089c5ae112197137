#!/usr/bin/env python3
"""Write the seed inputs of every fuzz target into test/fuzz/corpus-<target>/.

Targets and input formats (docs/FUZZING.md):
  fuzz_session, fuzz_auth, fuzz_msg, fuzz_conv, fuzz_group: test/fuzz/harness.h. Byte 0
    the mode (0 raw, 1 login, 2 live; +3 slow reader; +6 setup: a group FUZZ_GROUP and two
    messages before the records); mode 0: a chunk size byte, then raw bytes; modes 1 and
    2: records [u16 ctl][u16 len][body] whose plaintext the harness seals with the fixed
    test keys.
  fuzz_handshake: test/fuzz/fuzz_handshake.c (byte 0 bit 0: 0 server, then a mode-0
    session input; 1 client, with its trust in bits 2..3).
  fuzz_frame: test/fuzz/fuzz_frame.c.   fuzz_token: test/fuzz/fuzz_token.c.
  fuzz_bus: test/fuzz/fuzz_bus.c (byte 0 % 5 picks the decoder, then its bytes; the bus
    formats are those of src/actors/xhome.h and src/actors/xonline.h).
Protobuf bodies are encoded by hand (proto3 wire format, src/proto/cim.proto) so that this
needs only Python's standard library. The values below must match harness.h (user, peer,
group, device, secret, expiry) and fuzz_token.c (its secret).

Usage: test/fuzz/make_seeds.py  (rewrites every seed; deterministic output)
"""
import base64
import hashlib
import hmac
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

USER, PEER, GROUP, DEVICE = b'fuzz', b'peer', b'1000', b'fuzzdev'
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


def f_fixed64(num, v):
    return varint(num << 3 | 1) + struct.pack('<Q', v)


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
    ('GROUP_JOIN', f_int(1, 9) + f_bytes(2, GROUP)),
    ('GROUP_ADD', f_int(1, 10) + f_bytes(2, GROUP) + f_bytes(3, USER)),
    ('GROUP_KICK', f_int(1, 11) + f_bytes(2, GROUP) + f_bytes(3, USER)),
    ('GROUP_MEMBERS', f_int(1, 12) + f_bytes(2, GROUP)),
    ('GROUP_LIST', req(13)),
    ('GROUP_LEAVE', f_int(1, 14) + f_bytes(2, GROUP)),
    ('GROUP_DISMISS', f_int(1, 15) + f_bytes(2, GROUP)),
    ('CONTACT_ADD', f_int(1, 16) + f_bytes(2, USER)),
    ('CONTACT_LIST', req(17)),
    ('CONTACT_REMOVE', f_int(1, 18) + f_bytes(2, USER)),
    ('BLOCK', f_int(1, 19) + f_bytes(2, USER)),
    ('UNBLOCK', f_int(1, 20) + f_bytes(2, USER)),
]

LIVE, SETUP = b'\2', b'\x08'   # mode 2; mode 2 with the setup (group FUZZ_GROUP, 2 messages)

SESSION = {
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
    'setup-every-request': SETUP + b''.join(rec(FT[n], body) for n, body in EVERY_REQUEST),
}


def send(req_id, cmid, conv, to, body=f_bytes(6, b'hi'), msg_type=1, extra=b''):
    return (f_int(1, req_id) + f_bytes(2, cmid) + f_int(3, conv) + f_bytes(4, to) +
            f_int(5, msg_type) + body + extra)


AUTH = {
    'login-ok-ping': b'\1' + rec(FT['LOGIN'], login_req()) + rec(FT['PING'], PING),
    'login-ok-logout': b'\1' + rec(FT['LOGIN'], login_req()) + rec(FT['LOGOUT'], req(2)),
    'login-bad-token': b'\1' + rec(FT['LOGIN'], login_req(tok=token(USER)[:-2] + b'AA')),
    'login-other-users-token': b'\1' + rec(FT['LOGIN'], login_req(tok=token(PEER))),
    'login-unknown-app': b'\1' + rec(FT['LOGIN'], login_req() + f_bytes(2, b'nope')),
    'login-bad-device': b'\1' + rec(FT['LOGIN'], login_req(device=b'bad device')),
    'login-device-kind-1000': b'\1' + rec(FT['LOGIN'], login_req(kind=1000)),
    'login-not-first': b'\1' + rec(FT['PING'], PING),
    'login-twice': b'\1' + rec(FT['LOGIN'], login_req()) + rec(FT['LOGIN'], login_req(2)),
    'live-ping-logout': LIVE + rec(FT['PING'], PING) + rec(FT['LOGOUT'], req(2)),
    'live-bad-ping': LIVE + rec(FT['PING'], b'\x08'),
}

MSG = {
    'send-direct': SETUP + rec(FT['SEND'], send(1, b'm1', 1, PEER)),
    'send-group': SETUP + rec(FT['SEND'], send(1, b'm1', 2, GROUP)),
    'send-self': LIVE + rec(FT['SEND'], send(1, b'm1', 1, USER)),
    'send-transient': SETUP + rec(FT['SEND'], send(1, b't1', 1, PEER, msg_type=7,
                                                   extra=f_int(7, 1))),
    'send-dup': SETUP + rec(FT['SEND'], send(1, b'setup-direct', 1, PEER)),
    # issue 8, item 1: the body with a scalar wire type must be BAD_REQUEST
    'send-body-fixed64': SETUP + rec(FT['SEND'], send(1, b'm2', 1, PEER,
                                                      body=f_fixed64(6, 0x4847464544434241))),
    'send-body-varint': SETUP + rec(FT['SEND'], send(1, b'm3', 1, PEER, body=f_int(6, 300))),
    'send-then-sync': SETUP + rec(FT['SEND'], send(1, b'm4', 1, PEER)) +
                      rec(FT['SYNC'], f_int(1, 2) + f_int(3, 10)),
    'push-ack-max': SETUP + rec(FT['PUSH_ACK'], f_int(1, (1 << 64) - 1)) +
                    rec(FT['SYNC'], f_int(1, 2)),
    'sync-limits': SETUP + rec(FT['SYNC'], f_int(1, 1) + f_int(3, 1000)) +
                   rec(FT['SYNC'], f_int(1, 2) + f_int(2, 1) + f_int(3, 1)),
}

CONV = {
    'conv-list': SETUP + rec(FT['CONV_LIST'], req(1)),
    'history-direct': SETUP + rec(FT['HISTORY'], f_int(1, 1) + f_int(2, 1) + f_bytes(3, PEER) +
                                  f_int(5, 100)),
    'history-group': SETUP + rec(FT['HISTORY'], f_int(1, 1) + f_int(2, 2) + f_bytes(3, GROUP)),
    'read-direct': SETUP + rec(FT['READ'], f_int(1, 1) + f_int(2, 1) + f_bytes(3, PEER) +
                               f_int(4, (1 << 64) - 1)),
    'read-group': SETUP + rec(FT['READ'], f_int(1, 1) + f_int(2, 2) + f_bytes(3, GROUP) +
                              f_int(4, 1)),
    'recall': SETUP + rec(FT['RECALL'], f_int(1, 1) + f_int(2, 12345)),
    'contacts': SETUP + rec(FT['CONTACT_ADD'], f_int(1, 1) + f_bytes(2, PEER)) +
                rec(FT['CONTACT_LIST'], req(2)) +
                rec(FT['CONTACT_REMOVE'], f_int(1, 3) + f_bytes(2, PEER)),
    'blocks': SETUP + rec(FT['BLOCK'], f_int(1, 1) + f_bytes(2, PEER)) +
              rec(FT['UNBLOCK'], f_int(1, 2) + f_bytes(2, PEER)) +
              rec(FT['BLOCK'], f_int(1, 3) + f_bytes(2, USER)),
}

GROUPS = {
    'create-list': LIVE + rec(FT['GROUP_CREATE'], f_int(1, 1) + f_bytes(2, b'g') +
                              f_bytes(3, PEER) + f_int(4, 1)) + rec(FT['GROUP_LIST'], req(2)),
    'members-add-kick': SETUP + rec(FT['GROUP_MEMBERS'], f_int(1, 1) + f_bytes(2, GROUP)) +
                        rec(FT['GROUP_KICK'], f_int(1, 2) + f_bytes(2, GROUP) +
                            f_bytes(3, PEER)) +
                        rec(FT['GROUP_ADD'], f_int(1, 3) + f_bytes(2, GROUP) + f_bytes(3, PEER)),
    'join-leave': SETUP + rec(FT['GROUP_JOIN'], f_int(1, 1) + f_bytes(2, GROUP)) +
                  rec(FT['GROUP_LEAVE'], f_int(1, 2) + f_bytes(2, GROUP)),
    'dismiss': SETUP + rec(FT['GROUP_DISMISS'], f_int(1, 1) + f_bytes(2, GROUP)) +
               rec(FT['GROUP_MEMBERS'], f_int(1, 2) + f_bytes(2, GROUP)),
    'unknown-group': LIVE + rec(FT['GROUP_JOIN'], f_int(1, 1) + f_bytes(2, b'99999999999')),
}

HANDSHAKE = {
    # byte 0 bit 0 = 0: the server, then a mode-0 session input
    'server-hello': b'\0' + SESSION['raw-hello'],
    'server-hello-chunked': b'\0' + SESSION['raw-hello-twice-chunked'],
    'server-not-hello': b'\0' + SESSION['raw-not-hello'],
    'server-hello-version-2': b'\0\0\0' + frame(FT['HELLO'], f_int(1, 2) + HELLO[2:]),
    'server-hello-zero-key': b'\0\0\0' + frame(FT['HELLO'], f_int(1, 1) + f_bytes(2, bytes(32)) +
                                              f_bytes(3, bytes(32))),
    # byte 0 bit 0 = 1: the client; bit 1 replaces the genuine ServerHello; bits 2..3 trust
    'client-pinned': b'\x01',
    'client-wrong-pin': b'\x05',
    'client-tofu': b'\x09',
    'client-no-trust': b'\x0d',
    'client-unknown-field': b'\x01' + f_bytes(9, b'x'),
    'client-override-version': b'\x01' + f_int(1, 2),
    'client-garbage': b'\x03' + f_int(1, 1) + f_bytes(2, bytes(32)),
}


def frame_in(flags, a, b, chunks, stream, stop=0):
    return struct.pack('>BHHBB', flags, a, b, stop, len(chunks)) + bytes(chunks) + stream


TWO = frame(FT['PING'], PING) + frame(FT['LOGOUT'], req(1))
FRAMES = {
    'two-frames-whole': frame_in(1, 0, 0, [], TWO),
    'bytewise': frame_in(1, 0, 0, [1], TWO),
    'split-headers': frame_in(1, 0, 0, [3, 7, 5], TWO * 2),
    'limit-switch': frame_in(0 | 1 << 2, 0, 0, [4, 0x80 | 30], TWO + frame(FT['SEND'], bytes(2000))),
    'too-big': frame_in(2, 20, 0, [], frame(FT['PING'], bytes(40))),
    'short-length': frame_in(1, 0, 0, [], struct.pack('>II', 4, FT['PING'])),
    'unknown-type': frame_in(1, 0, 0, [2], frame(0x0777, b'abc')),
    'empty-body': frame_in(1, 0, 0, [], struct.pack('>II', 8, FT['PING']) * 3),
    'partial-tail': frame_in(1, 0, 0, [6], TWO + frame(FT['SEND'], bytes(50))[:20]),
    'stop-scribble': frame_in(1 | 0x10 | 0x20, 0, 0, [9], TWO * 2, stop=1),
}

TOKEN_SECRET = bytes([0x5a, 1, 2, 3, 4, 5, 6, 7]) + bytes(24)  # fuzz_token.c's secret


def tok2(user, app=b'default', expiry=EXPIRY):
    mac = hmac.new(TOKEN_SECRET, b'v1|' + app + b'|' + user + b'|' + str(expiry).encode(),
                   hashlib.sha256).digest()
    return b'v1.%d.' % expiry + base64.urlsafe_b64encode(mac).rstrip(b'=')


def token_in(mode, x, y, *strs):
    return struct.pack('>Bqq', mode, x, y) + b'\0'.join(strs)


TOKENS = {
    'parse-valid': token_in(0, 1767225600, 0, b'', USER, tok2(USER)),
    'parse-expired': token_in(0, EXPIRY + 1, 0, b'', USER, tok2(USER)),
    'parse-other-app': token_in(0, 0, 0, b'app2', USER, tok2(USER)),
    'parse-leading-zero': token_in(0, 0, 0, b'', USER, b'v1.0' + tok2(USER)[3:]),
    'parse-stray-bits': token_in(0, 0, 0, b'', USER, tok2(USER)[:-1] + b'B'),
    'parse-int64-max': token_in(0, 0, 0, b'', USER, b'v1.9223372036854775807.' + b'A' * 43),
    'parse-int64-max-plus-1': token_in(0, 0, 0, b'', USER, b'v1.9223372036854775808.' + b'A' * 43),
    'mint-edit': token_in(1, EXPIRY, 0, b'', USER, b'\x05Z\x30\x00'),
    'mint-expired': token_in(1, 5, 6, b'default', USER, b''),
    'mint-bad-names': token_in(1, 5, 0, b'a|b', USER, b''),
    'mint-long-user': token_in(1, 5, 0, b'', b'u' * 65, b''),
}

def snowflake(ms, node, seq):
    return ms << 22 | node << 12 | seq      # src/core/snowflake.h: 41 bits ms, 10 node, 12 seq


XH_MSG, XH_PROBE = 1, 2
XH_INDEX, XH_HOOK, XH_USERS, XH_SKIP = 0x01, 0x02, 0x04, 0x08
REC = f_int(1, 1) + f_bytes(3, b'hello')     # any bytes: the record is not decoded here


def xhome(origin=2, home=3, ident=None, app=b'default', frm=b'alice', to=b'bob', conv=1,
          mtype=1, flags=XH_INDEX | XH_HOOK, skip=None, users=None, rec=REC, kind=XH_MSG):
    if skip is not None:
        flags |= XH_SKIP
    if users is not None:
        flags |= XH_USERS
    out = struct.pack('>BBBBBBBBIIQ', kind, 1, len(app), len(frm), len(to), conv, mtype, flags,
                      origin, home, snowflake(1000, origin, 7) if ident is None else ident)
    out += app + frm + to
    if skip is not None:
        out += struct.pack('>Q', skip)
    if users is not None:
        out += struct.pack('>I', len(users)) + b''.join(bytes([len(u)]) + u for u in users)
    return out + rec


def probe(home, number):
    return struct.pack('>BBBBBBBBIIQ', XH_PROBE, 1, 0, 0, 0, 0, 0, 0, 1, home, number)


def watermark(origin, horizon, pairs):
    return struct.pack('>IQI', origin, horizon, len(pairs)) + b''.join(
        struct.pack('>IQ', h, s) for h, s in pairs)


def outbox_multi(*msgs):
    return b'\x80' + b''.join(struct.pack('>I', len(m)) + m for m in msgs)


def ask(token, app, users):
    return struct.pack('>QH', token, len(users)) + b''.join(x + b'\0' for x in [app] + users)


def answer(token, node, n, online):
    bits = bytearray((n + 7) // 8)
    for i in online:
        bits[i // 8] |= 1 << (i % 8)
    return struct.pack('>QIH', token, node, n) + bytes(bits)


XMSG = xhome()
GROUP_MSG = xhome(to=b'1000', conv=2, skip=0x0102030405060708, users=[b'alice', b'b.o-b@x', b'c'])
MANY = [b'u%d' % i for i in range(70)]
# byte 0: the decoder (% 5); mode 2 (outbox) stops its walk at call byte0 // 5 (0: never)
BUS = {
    'xhome-direct': b'\0' + XMSG,
    'xhome-group-users-skip': b'\0' + GROUP_MSG,
    'xhome-no-users-listed': b'\0' + xhome(users=[], flags=0),
    'xhome-long-ids': b'\0' + xhome(app=b'a' * 64, frm=b'F' * 64, to=b'_' * 64, users=[b'@' * 64]),
    'xhome-probe': b'\0' + probe(3, 42),
    'xhome-truncated-header': b'\0' + XMSG[:20],
    'xhome-truncated-users': b'\0' + GROUP_MSG[:24 + 7 + 5 + 4 + 8 + 4 + 3],
    'xhome-no-record': b'\0' + xhome(rec=b''),
    'xhome-id-of-other-node': b'\0' + xhome(ident=snowflake(1000, 5, 7)),
    'xhome-unknown-flag': b'\0' + xhome(flags=0x10),
    'xhome-version-2': b'\0' + XMSG[:1] + b'\2' + XMSG[2:],
    'wm-two-homes': b'\1' + watermark(2, snowflake(1000, 0, 0), [(1, 10), (3, 0)]),
    'wm-none': b'\1' + watermark(1, 0, []),
    'wm-64-homes': b'\1' + watermark(1023, 1 << 63, [(i, i * 1000) for i in range(64)]),
    'wm-65-homes': b'\1' + watermark(1, 5, [(i, 1) for i in range(65)]),
    'wm-truncated': b'\1' + watermark(2, 7, [(1, 10), (3, 0)])[:-1],
    'outbox-single': b'\2' + XMSG,
    'outbox-multi': b'\2' + outbox_multi(xhome(home=1), GROUP_MSG, xhome(home=2)),
    'outbox-multi-stop-at-2': bytes([2 + 5 * 2]) + outbox_multi(XMSG, XMSG, XMSG),
    'outbox-multi-empty': b'\2\x80',
    'outbox-multi-truncated': b'\2' + outbox_multi(XMSG, GROUP_MSG)[:-1],
    'ask-three': b'\3' + ask(0x0102030405060708, b'default', [b'alice', b'b.o-b@x', b'c']),
    'ask-many': b'\3' + ask(7, b'a' * 64, MANY),
    'ask-count-too-small': b'\3' + ask(7, b'default', [b'alice', b'bob'])[:9] + b'\1' +
                           ask(7, b'default', [b'alice', b'bob'])[10:],
    'ask-truncated': b'\3' + ask(7, b'default', [b'alice', b'bob'])[:-1],
    'ans-three': b'\4' + answer(0x0102030405060708, 3, 3, [0, 2]),
    'ans-many': b'\4' + answer(7, 1023, 70, [0, 7, 8, 63, 69]),
    'ans-stray-bit': b'\4' + answer(7, 2, 3, [0])[:-1] + b'\x09',
    'ans-truncated': b'\4' + answer(7, 2, 70, [1])[:-1],
}

CORPORA = {
    'fuzz_session': SESSION,
    'fuzz_auth': AUTH,
    'fuzz_msg': MSG,
    'fuzz_conv': CONV,
    'fuzz_group': GROUPS,
    'fuzz_handshake': HANDSHAKE,
    'fuzz_frame': FRAMES,
    'fuzz_token': TOKENS,
    'fuzz_bus': BUS,
}


def main():
    for target, seeds in sorted(CORPORA.items()):
        out = os.path.join(HERE, 'corpus-' + target)
        os.makedirs(out, exist_ok=True)
        for name in os.listdir(out):  # seeds no longer listed here go
            if name not in seeds:
                os.unlink(os.path.join(out, name))
        for name, data in sorted(seeds.items()):
            with open(os.path.join(out, name), 'wb') as f:
                f.write(data)
        print('%3d seeds in %s' % (len(seeds), os.path.relpath(out)))


if __name__ == '__main__':
    main()
