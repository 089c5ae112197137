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
  fuzz_busmsg: test/fuzz/fuzz_busmsg.c ([handler][env][reply length][reply][data]; the
    formats are in the comments of src/actors/cluster_xhome.c, cluster_rejoin.c,
    cluster_online.c and relay.h; its node is 1 of nodes 1..3, and home() below is
    src/core/home.c's, so that the seeds name users and groups homed where they must be).
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


def home(app, ident, nodes=(1, 2, 3)):
    """src/core/home.c's home_pick: the node with the highest score of "app NUL id NUL"."""
    def fnv(h, data):
        for b in data:
            h = ((h ^ b) * 0x100000001b3) & (2**64 - 1)
        return h

    def fmix(k):
        for mul in (0xff51afd7ed558ccd, 0xc4ceb9fe1a85ec53):
            k = ((k ^ (k >> 33)) * mul) & (2**64 - 1)
        return k ^ (k >> 33)

    key = fnv(fnv(0xcbf29ce484222325, app + b'\0'), ident + b'\0')
    return max(nodes, key=lambda n: (fmix(fnv(key, struct.pack('>I', n))), -n))


# fuzz_busmsg: the handler (byte 0 % 16), env bits (fuzz_busmsg.c), the reply subject.
BM = dict(xchk=0, xans=1, xapq=2, xapd=3, xsnd=4, xop=5, xfa=6, xrd=7, xpr=8, xtg=9, xrjq=10,
          xrja=11, xonl=12, xona=13, rin=14, rout=15)
ALIVE, CHECK_OK, HAS, NO_SRV, NO_CB, STORE_FULL, STATUS = 0x03, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
GOOD = ALIVE | CHECK_OK | HAS
SELF, PEER, OTHER = 1, 2, 3
HERE_USER, PEER_USER, HERE_GROUP, PEER_GROUP = b'bob', b'frank', b'1002', b'1000'
assert (home(b'default', b'alice'), home(b'default', HERE_USER), home(b'default', PEER_USER),
        home(b'default', HERE_GROUP), home(b'default', PEER_GROUP)) == (SELF, SELF, PEER, SELF,
                                                                          OTHER)


def bm(handler, data, env=GOOD, reply=b''):
    return bytes([BM[handler], env, len(reply)]) + reply + data


def ids(*names):
    return b''.join(n + b'\0' for n in names)


TOKEN = struct.pack('>Q', 0x0102030405060708)


def check_req(origin=PEER, to=HERE_USER, flags=0, rec=b''):
    return TOKEN + struct.pack('>IB', origin, flags) + ids(b'default', b'alice', to) + rec


def fwd_hdr(origin=PEER):
    return TOKEN + struct.pack('>IQB', origin, 77, 2)


def fwd_send(origin=PEER, group=HERE_GROUP, flags=0, mtype=1, body=REC):
    return fwd_hdr(origin) + bytes([flags, mtype]) + ids(b'default', b'alice', group, b'c1') + body


def fwd_op(ftype=FT['GROUP_ADD'], group=HERE_GROUP, users=(HERE_USER, PEER_USER), count=None):
    return (fwd_hdr() + struct.pack('>IBQ', ftype, 1, snowflake(1000, 3, 1)) +
            ids(b'default', b'alice', group) +
            struct.pack('>I', len(users) if count is None else count) + ids(*users))


def fwd_answer(glen, group=b'', reason=b'not a member'):
    return TOKEN + struct.pack('>IQQH', 8, 0, 0, glen) + group + reason


RJ_COPY = xhome(origin=PEER, home=SELF)


def relay(kind, sid, body=b'', edge=PEER, home_node=SELF, ftype=0):
    return struct.pack('>BxxxIQII', kind, edge, sid, ftype, home_node) + body


READ_OK = struct.pack('>Q', 99) + ids(b'default', PEER_USER, HERE_USER)
LONG_APP = b'A' * 64                     # ids of the longest length (kv.h: KV_ID_MAX)
LONG_PEER_USER = next(c * 64 for c in (b'a', b'b', b'c', b'd', b'e')
                      if home(LONG_APP, c * 64) == PEER)
REASON_MAX, EVENT_MAX = 96, 1024         # cluster_xhome.c's REASON_MAX, cluster.h's
BUSMSG = {
    'xchk-ok': bm('xchk', check_req(), reply=b'cim.node.2.xans'),
    'xchk-ok-transient': bm('xchk', check_req(rec=REC), reply=b'cim.node.2.xans'),
    'xchk-system-refused': bm('xchk', check_req(flags=1), env=ALIVE, reply=b'cim.node.2.xans'),
    'xchk-origin-down': bm('xchk', check_req(), env=CHECK_OK, reply=b'cim.node.2.xans'),
    'xchk-not-homed-here': bm('xchk', check_req(to=PEER_USER), reply=b'cim.node.2.xans'),
    'xchk-no-reply': bm('xchk', check_req()),
    'xchk-cut-in-a-name': bm('xchk', check_req()[:20], reply=b'cim.node.2.xans'),
    'xans-ok': bm('xans', TOKEN + struct.pack('>IQ', 0, 5) + b'a reason'),
    'xans-short': bm('xans', TOKEN + struct.pack('>IQ', 0, 5)[:-1]),
    'xans-longest-reason': bm('xans', TOKEN + struct.pack('>IQ', 3, 5) + b'r' * REASON_MAX),
    'xans-reason-too-long': bm('xans', TOKEN + struct.pack('>IQ', 3, 5) + b'r' * (REASON_MAX + 1)),
    'xapq-record': bm('xapq', TOKEN + b'\1' + ids(b'default', HERE_GROUP), reply=b'cim.node.2.xapd'),
    'xapq-timeline-no': bm('xapq', TOKEN + b'\0' + ids(b'default', HERE_USER), env=ALIVE,
                           reply=b'cim.node.2.xapd'),
    'xapq-longest': bm('xapq', TOKEN + b'\0' + ids(LONG_APP, b'b' * 64), reply=b'cim.node.2.xapd'),
    'xapq-id-of-65': bm('xapq', TOKEN + b'\0' + ids(LONG_APP, b'b' * 65), reply=b'cim.node.2.xapd'),
    'xapq-kind-7': bm('xapq', TOKEN + b'\7' + ids(b'default', HERE_USER), reply=b'cim.node.2.xapd'),
    'xapq-reply-elsewhere': bm('xapq', TOKEN + b'\1' + ids(b'default', HERE_GROUP),
                               reply=b'other.2.xapd'),
    'xapd-ok': bm('xapd', TOKEN + struct.pack('>I', PEER)),
    'xapd-old-form': bm('xapd', TOKEN),
    'xapd-no-such-node': bm('xapd', TOKEN + struct.pack('>I', 9)),
    'xsnd-ok': bm('xsnd', fwd_send()),
    'xsnd-system': bm('xsnd', fwd_send(flags=1, mtype=8, body=b'')),
    'xsnd-system-not-system-type': bm('xsnd', fwd_send(flags=1, mtype=1)),
    'xsnd-store-full': bm('xsnd', fwd_send(), env=GOOD | STORE_FULL),
    'xsnd-group-elsewhere': bm('xsnd', fwd_send(group=PEER_GROUP)),
    'xsnd-no-server': bm('xsnd', fwd_send(), env=GOOD | NO_SRV),
    'xsnd-from-self': bm('xsnd', fwd_send(origin=SELF)),
    'xsnd-short': bm('xsnd', fwd_send()[:22]),
    'xop-add': bm('xop', fwd_op()),
    'xop-dismiss': bm('xop', fwd_op(ftype=FT['GROUP_DISMISS'], users=())),
    'xop-not-a-change': bm('xop', fwd_op(ftype=0x9999, users=())),
    'xop-users-missing': bm('xop', fwd_op(ftype=FT['GROUP_JOIN'], users=(), count=2)),
    'xop-count-over-1000': bm('xop', fwd_op(users=(), count=1001)),
    'xop-1000-users': bm('xop', fwd_op(users=[b'%d' % i for i in range(1000)])),
    'xop-group-elsewhere': bm('xop', fwd_op(group=PEER_GROUP)),
    'xfa-with-group': bm('xfa', fwd_answer(3, b'\x0a\x01\x31')),
    'xfa-group-overruns': bm('xfa', fwd_answer(40, b'\x0a\x01\x31', b'')),
    'xfa-short': bm('xfa', fwd_answer(0)[:29]),
    'xfa-group-one-past-the-end': bm('xfa', fwd_answer(4, b'\x0a\x01\x31', b'')),
    'xfa-longest': bm('xfa', fwd_answer(256, b'g' * 256, b'r' * REASON_MAX)),
    'xfa-one-too-long': bm('xfa', fwd_answer(256, b'g' * 256, b'r' * (REASON_MAX + 1))),
    'xrd-ok': bm('xrd', READ_OK),
    'xrd-store-full': bm('xrd', READ_OK, env=GOOD | STORE_FULL),
    'xrd-no-server': bm('xrd', READ_OK, env=GOOD | NO_SRV),
    'xrd-peer-elsewhere': bm('xrd', struct.pack('>Q', 99) + ids(b'default', HERE_USER, PEER_USER)),
    'xrd-trailing-byte': bm('xrd', READ_OK + b'x'),
    'xpr-ok': bm('xpr', ids(b'default', PEER_USER) + f_int(1, 3)),
    'xpr-user-homed-here': bm('xpr', ids(b'default', HERE_USER) + f_int(1, 3)),
    'xpr-longest': bm('xpr', ids(LONG_APP, LONG_PEER_USER) + b'e' * EVENT_MAX),
    'xpr-event-too-long': bm('xpr', ids(LONG_APP, LONG_PEER_USER) + b'e' * (EVENT_MAX + 1)),
    'xpr-no-event': bm('xpr', ids(b'default', PEER_USER)),
    'xpr-no-callbacks': bm('xpr', ids(b'default', PEER_USER) + f_int(1, 3), env=GOOD | NO_CB),
    'xtg-ok': bm('xtg', ids(b'default', HERE_GROUP) + REC),
    'xtg-nothing-after-names': bm('xtg', ids(b'default', HERE_GROUP)),
    'xrjq-ok': bm('xrjq', struct.pack('>I', PEER) + RJ_COPY),
    'xrjq-origin-differs': bm('xrjq', struct.pack('>I', OTHER) + RJ_COPY),
    'xrjq-for-another-home': bm('xrjq', struct.pack('>I', PEER) + xhome(origin=PEER, home=OTHER)),
    'xrjq-probe': bm('xrjq', struct.pack('>I', PEER) + probe(SELF, 5)),
    'xrja-ok': bm('xrja', TOKEN + struct.pack('>IBQ', PEER, 3, snowflake(900, 0, 0))),
    'xrja-unknown-flag': bm('xrja', TOKEN + struct.pack('>IBQ', PEER, 8, 0)),
    'xrja-short': bm('xrja', TOKEN + struct.pack('>IB', PEER, 1)),
    'xonl-ok': bm('xonl', ask(7, b'default', [b'alice', HERE_USER, b'alice']),
                  reply=b'cim.node.2.xona'),
    'xonl-no-server': bm('xonl', ask(7, b'default', [b'alice']), env=GOOD | NO_SRV,
                         reply=b'cim.node.2.xona'),
    'xonl-reply-elsewhere': bm('xonl', ask(7, b'default', [b'alice']), reply=b'x.node.2.xona'),
    'xonl-truncated': bm('xonl', ask(7, b'default', [b'alice'])[:-1], reply=b'cim.node.2.xona'),
    'xona-ok': bm('xona', answer(7, PEER, 3, [1])),
    'xona-no-responders': bm('xona', b'', env=GOOD | STATUS),
    'xona-status-with-data': bm('xona', answer(7, PEER, 3, [1]), env=GOOD | STATUS),
    'xona-stray-bit': bm('xona', answer(7, 2, 3, [0])[:-1] + b'\x09'),
    'rin-login': bm('rin', relay(1, 5, bytes([4]) + bytes(16) + login_req())),
    'rin-frame': bm('rin', relay(2, 5, PING, ftype=FT['PING'])),
    'rin-closed': bm('rin', relay(3, 1 << 48)),
    'rin-kind-4': bm('rin', relay(4, 5)),
    'rin-short': bm('rin', relay(2, 5)[:23]),
    'rout-frame-worker-0': bm('rout', relay(2, 7, PING, edge=SELF, home_node=PEER, ftype=0x0106)),
    'rout-frame-worker-1-full': bm('rout', relay(2, 1 << 48 | 7, PING, edge=SELF, home_node=PEER,
                                                 ftype=0x0106)),
    'rout-closed-worker-1-full': bm('rout', relay(3, 1 << 48 | 7, edge=SELF, home_node=PEER)),
    'rout-no-such-worker': bm('rout', relay(2, 9 << 48, PING, edge=SELF, home_node=PEER)),
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
    'fuzz_busmsg': BUSMSG,
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
