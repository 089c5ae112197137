// proto.js: the protobuf messages of PROTOCOL.md §5 and the frame types of §4, with a
// small schema-driven proto3 encoder and decoder (no protobuf library for browser JS in
// Debian, and the client needs only these messages).
//
// Types: 'u32', 'enum' and 'bool' are Numbers/booleans; 'u64' is a BigInt (msg ids are
// SnowFlakes past 2^53); 'time' is a uint64 of milliseconds read as a Number (safe for
// wall-clock times); 'string' is UTF-8; 'bytes' is a Uint8Array; any other type names a
// message. A fourth element 'rep' makes the field repeated.

export const SCHEMA = {
    ClientHello: [[1, 'version', 'u32'], [2, 'client_key', 'bytes'],
        [3, 'client_random', 'bytes']],
    ServerHello: [[1, 'version', 'u32'], [2, 'server_key', 'bytes'],
        [3, 'server_random', 'bytes'], [4, 'identity', 'bytes'], [5, 'signature', 'bytes']],
    Bye: [[1, 'code', 'enum'], [2, 'reason', 'string']],
    Req: [[1, 'req_id', 'u32']],
    Result: [[1, 'req_id', 'u32'], [2, 'code', 'enum'], [3, 'reason', 'string']],
    LoginReq: [[1, 'req_id', 'u32'], [2, 'app', 'string'], [3, 'user', 'string'],
        [4, 'token', 'string'], [5, 'device_id', 'string'], [6, 'device_kind', 'enum'],
        [7, 'client_version', 'string']],
    LoginRsp: [[1, 'req_id', 'u32'], [2, 'code', 'enum'], [3, 'reason', 'string'],
        [4, 'server_time_ms', 'time'], [5, 'heartbeat_s', 'u32'], [6, 'max_body', 'u32'],
        [7, 'latest_msg_id', 'u64'], [8, 'acked_msg_id', 'u64']],
    Ping: [[1, 'client_time_ms', 'time']],
    Pong: [[1, 'client_time_ms', 'time'], [2, 'server_time_ms', 'time']],
    SendReq: [[1, 'req_id', 'u32'], [2, 'client_msg_id', 'string'], [3, 'conv_type', 'enum'],
        [4, 'to', 'string'], [5, 'msg_type', 'enum'], [6, 'body', 'bytes'],
        [7, 'transient', 'bool']],
    SendRsp: [[1, 'req_id', 'u32'], [2, 'code', 'enum'], [3, 'reason', 'string'],
        [4, 'msg_id', 'u64'], [5, 'time_ms', 'time'], [6, 'client_msg_id', 'string']],
    Message: [[1, 'msg_id', 'u64'], [2, 'conv_type', 'enum'], [3, 'from', 'string'],
        [4, 'to', 'string'], [5, 'msg_type', 'enum'], [6, 'body', 'bytes'],
        [7, 'time_ms', 'time'], [8, 'client_msg_id', 'string'], [9, 'flags', 'u32'],
        [10, 'from_device', 'enum']],
    DeliveredReq: [[1, 'up_to_msg_id', 'u64']],
    SyncReq: [[1, 'req_id', 'u32'], [2, 'after_msg_id', 'u64'], [3, 'limit', 'u32']],
    SyncRsp: [[1, 'req_id', 'u32'], [2, 'code', 'enum'], [3, 'reason', 'string'],
        [4, 'messages', 'Message', 'rep'], [5, 'remain', 'u32'], [6, 'last_msg_id', 'u64']],
    RecallReq: [[1, 'req_id', 'u32'], [2, 'msg_id', 'u64']],
    Conversation: [[1, 'conv_type', 'enum'], [2, 'peer', 'string'], [3, 'last', 'Message'],
        [4, 'unread', 'u32'], [5, 'read_up_to', 'u64'], [6, 'peer_read_up_to', 'u64'],
        [7, 'updated_ms', 'time']],
    ConvListRsp: [[1, 'req_id', 'u32'], [2, 'code', 'enum'], [3, 'reason', 'string'],
        [4, 'convs', 'Conversation', 'rep'], [5, 'total_unread', 'u32']],
    HistoryReq: [[1, 'req_id', 'u32'], [2, 'conv_type', 'enum'], [3, 'peer', 'string'],
        [4, 'before_msg_id', 'u64'], [5, 'limit', 'u32']],
    HistoryRsp: [[1, 'req_id', 'u32'], [2, 'code', 'enum'], [3, 'reason', 'string'],
        [4, 'messages', 'Message', 'rep'], [5, 'has_more', 'bool']],
    ReadReq: [[1, 'req_id', 'u32'], [2, 'conv_type', 'enum'], [3, 'peer', 'string'],
        [4, 'up_to_msg_id', 'u64']],
    Event: [[1, 'kind', 'enum'], [2, 'conv_type', 'enum'], [3, 'peer', 'string'],
        [4, 'user', 'string'], [5, 'up_to_msg_id', 'u64'], [6, 'online', 'bool'],
        [7, 'time_ms', 'time']],
    Group: [[1, 'group_id', 'string'], [2, 'name', 'string'], [3, 'owner', 'string'],
        [4, 'created_ms', 'time'], [5, 'member_count', 'u32'], [6, 'open', 'bool']],
    GroupCreateReq: [[1, 'req_id', 'u32'], [2, 'name', 'string'],
        [3, 'members', 'string', 'rep'], [4, 'open', 'bool']],
    GroupReq: [[1, 'req_id', 'u32'], [2, 'group_id', 'string']],
    GroupUsersReq: [[1, 'req_id', 'u32'], [2, 'group_id', 'string'],
        [3, 'users', 'string', 'rep']],
    GroupRsp: [[1, 'req_id', 'u32'], [2, 'code', 'enum'], [3, 'reason', 'string'],
        [4, 'group', 'Group']],
    GroupMembersRsp: [[1, 'req_id', 'u32'], [2, 'code', 'enum'], [3, 'reason', 'string'],
        [4, 'members', 'string', 'rep'], [5, 'group', 'Group']],
    GroupListRsp: [[1, 'req_id', 'u32'], [2, 'code', 'enum'], [3, 'reason', 'string'],
        [4, 'groups', 'Group', 'rep']],
    GroupEvent: [[1, 'kind', 'enum'], [2, 'actor', 'string'], [3, 'users', 'string', 'rep'],
        [4, 'group', 'Group']],
    RecallEvent: [[1, 'msg_id', 'u64'], [2, 'by', 'string']],
    UserReq: [[1, 'req_id', 'u32'], [2, 'user', 'string']],
    Contact: [[1, 'user', 'string'], [2, 'online', 'bool'], [3, 'blocked', 'bool']],
    ContactListRsp: [[1, 'req_id', 'u32'], [2, 'code', 'enum'], [3, 'reason', 'string'],
        [4, 'contacts', 'Contact', 'rep']],
};

// Frame type -> [name, body message]. A request's answer is its type + 1 (§4).
export const FRAMES = {
    0x0001: ['HELLO', 'ClientHello'], 0x0002: ['HELLO_ACK', 'ServerHello'],
    0x0003: ['BYE', 'Bye'],
    0x0101: ['LOGIN', 'LoginReq'], 0x0102: ['LOGIN_ACK', 'LoginRsp'],
    0x0103: ['LOGOUT', 'Req'], 0x0104: ['LOGOUT_ACK', 'Result'],
    0x0105: ['PING', 'Ping'], 0x0106: ['PONG', 'Pong'],
    0x0201: ['SEND', 'SendReq'], 0x0202: ['SEND_ACK', 'SendRsp'],
    0x0203: ['PUSH', 'Message'], 0x0204: ['PUSH_ACK', 'DeliveredReq'],
    0x0205: ['SYNC', 'SyncReq'], 0x0206: ['SYNC_ACK', 'SyncRsp'],
    0x0207: ['RECALL', 'RecallReq'], 0x0208: ['RECALL_ACK', 'Result'],
    0x0301: ['CONV_LIST', 'Req'], 0x0302: ['CONV_LIST_ACK', 'ConvListRsp'],
    0x0303: ['HISTORY', 'HistoryReq'], 0x0304: ['HISTORY_ACK', 'HistoryRsp'],
    0x0305: ['READ', 'ReadReq'], 0x0306: ['READ_ACK', 'Result'],
    0x0307: ['EVENT', 'Event'],
    0x0401: ['GROUP_CREATE', 'GroupCreateReq'], 0x0402: ['GROUP_CREATE_ACK', 'GroupRsp'],
    0x0403: ['GROUP_JOIN', 'GroupReq'], 0x0404: ['GROUP_JOIN_ACK', 'GroupRsp'],
    0x0405: ['GROUP_LEAVE', 'GroupReq'], 0x0406: ['GROUP_LEAVE_ACK', 'Result'],
    0x0407: ['GROUP_ADD', 'GroupUsersReq'], 0x0408: ['GROUP_ADD_ACK', 'Result'],
    0x0409: ['GROUP_KICK', 'GroupUsersReq'], 0x040A: ['GROUP_KICK_ACK', 'Result'],
    0x040B: ['GROUP_DISMISS', 'GroupReq'], 0x040C: ['GROUP_DISMISS_ACK', 'Result'],
    0x040D: ['GROUP_MEMBERS', 'GroupReq'], 0x040E: ['GROUP_MEMBERS_ACK', 'GroupMembersRsp'],
    0x040F: ['GROUP_LIST', 'Req'], 0x0410: ['GROUP_LIST_ACK', 'GroupListRsp'],
    0x0501: ['CONTACT_ADD', 'UserReq'], 0x0502: ['CONTACT_ADD_ACK', 'Result'],
    0x0503: ['CONTACT_REMOVE', 'UserReq'], 0x0504: ['CONTACT_REMOVE_ACK', 'Result'],
    0x0505: ['CONTACT_LIST', 'Req'], 0x0506: ['CONTACT_LIST_ACK', 'ContactListRsp'],
    0x0507: ['BLOCK', 'UserReq'], 0x0508: ['BLOCK_ACK', 'Result'],
    0x0509: ['UNBLOCK', 'UserReq'], 0x050A: ['UNBLOCK_ACK', 'Result'],
};

// Name -> frame type, e.g. T.SEND === 0x0201.
export const T = Object.fromEntries(Object.entries(FRAMES).map(([t, [n]]) => [n, Number(t)]));

export const CODE_NAMES = ['OK', 'BAD_REQUEST', 'UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND',
    'TOO_LARGE', 'RATE_LIMITED', 'BLOCKED', 'NOT_MEMBER', 'RECALL_WINDOW_PASSED', 'CONFLICT',
    'SERVER_BUSY', 'INTERNAL', 'KICKED', 'SHUTTING_DOWN', 'PROTOCOL_ERROR', 'TIMEOUT'];
export const Code = Object.fromEntries(CODE_NAMES.map((n, i) => [n, i]));
export const ConvType = { DIRECT: 1, GROUP: 2 };
export const MsgType = { TEXT: 1, IMAGE: 2, AUDIO: 3, VIDEO: 4, FILE: 5, LOCATION: 6,
    CUSTOM: 7, SYSTEM: 8, RECALL: 9 };
export const MSG_TYPE_NAMES = ['', 'text', 'image', 'audio', 'video', 'file', 'location',
    'custom', 'system', 'recall'];
export const DeviceKind = { MOBILE: 1, DESKTOP: 2, WEB: 3, BOT: 4 };
export const EventKind = { READ: 1, PRESENCE: 2, TYPING: 3 };
export const GroupEventKind = { CREATED: 1, JOINED: 2, ADDED: 3, LEFT: 4, KICKED: 5,
    DISMISSED: 6 };
export const FLAG_RECALLED = 1;

const utf8enc = new TextEncoder();
const utf8dec = new TextDecoder('utf-8', { fatal: false });

export function utf8(s) { return utf8enc.encode(s); }
export function fromUtf8(b) { return utf8dec.decode(b); }

// ---- encoding --------------------------------------------------------------------------

class Writer {
    constructor() { this.buf = new Uint8Array(64); this.len = 0; }

    room(n) {
        if (this.len + n <= this.buf.length)
            return;
        const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
        bigger.set(this.buf.subarray(0, this.len));
        this.buf = bigger;
    }

    byte(b) { this.room(1); this.buf[this.len++] = b; }

    varint(v) {
        let x = BigInt.asUintN(64, BigInt(v));
        while (x >= 0x80n) {
            this.byte(Number(x & 0x7fn) | 0x80);
            x >>= 7n;
        }
        this.byte(Number(x));
    }

    bytes(b) {
        this.varint(b.length);
        this.room(b.length);
        this.buf.set(b, this.len);
        this.len += b.length;
    }

    done() { return this.buf.slice(0, this.len); }
}

function isDefault(type, v) {
    if (v === undefined || v === null)
        return true;
    switch (type) {
    case 'u32': case 'enum': case 'time': return Number(v) === 0;
    case 'u64': return BigInt(v) === 0n;
    case 'bool': return !v;
    case 'string': case 'bytes': return v.length === 0;
    default: return false;
    }
}

function writeField(w, num, type, v) {
    switch (type) {
    case 'u32': case 'enum': case 'time': case 'u64':
        w.varint((num << 3) | 0); w.varint(v); return;
    case 'bool':
        w.varint((num << 3) | 0); w.varint(v ? 1 : 0); return;
    case 'string':
        w.varint((num << 3) | 2); w.bytes(utf8(v)); return;
    case 'bytes':
        w.varint((num << 3) | 2); w.bytes(v); return;
    default:
        w.varint((num << 3) | 2); w.bytes(encode(type, v));
    }
}

/** Encode @p obj as message @p name (proto3: default values are left out). */
export function encode(name, obj) {
    const fields = SCHEMA[name];
    const w = new Writer();
    if (!fields)
        throw new Error(`unknown message ${name}`);
    for (const [num, key, type, rep] of fields) {
        const v = obj[key];
        if (rep) {
            for (const item of v || [])
                writeField(w, num, type, item);
        } else if (!isDefault(type, v)) {
            writeField(w, num, type, v);
        }
    }
    return w.done();
}

// ---- decoding --------------------------------------------------------------------------

class Reader {
    constructor(buf) { this.buf = buf; this.pos = 0; }

    get more() { return this.pos < this.buf.length; }

    varint() {
        let x = 0n, shift = 0n;
        for (;;) {
            if (this.pos >= this.buf.length || shift > 63n)
                throw new Error('protobuf: bad varint');
            const b = this.buf[this.pos++];
            x |= BigInt(b & 0x7f) << shift;
            if (!(b & 0x80))
                return BigInt.asUintN(64, x);
            shift += 7n;
        }
    }

    take(n) {
        if (n > this.buf.length - this.pos)
            throw new Error('protobuf: truncated field');
        const out = this.buf.subarray(this.pos, this.pos + n);
        this.pos += n;
        return out;
    }

    skip(wire) {
        switch (wire) {
        case 0: this.varint(); return;
        case 1: this.take(8); return;
        case 2: this.take(Number(this.varint())); return;
        case 5: this.take(4); return;
        default: throw new Error(`protobuf: wire type ${wire}`);
        }
    }
}

function emptyOf(name) {
    const o = {};
    for (const [, key, type, rep] of SCHEMA[name]) {
        if (rep) o[key] = [];
        else if (type === 'u64') o[key] = 0n;
        else if (type === 'bool') o[key] = false;
        else if (type === 'string') o[key] = '';
        else if (type === 'bytes') o[key] = new Uint8Array(0);
        else if (SCHEMA[type]) o[key] = null;
        else o[key] = 0;
    }
    return o;
}

function readValue(r, wire, type) {
    const scalar = ['u32', 'enum', 'time', 'u64', 'bool'].includes(type);
    // A field with another wire type than its own makes the message malformed (as nanopb
    // on the server treats it), rather than a value read as something it is not.
    if (wire !== (scalar ? 0 : 2))
        throw new Error(`protobuf: wire type ${wire} for a ${type} field`);
    if (scalar) {
        const v = r.varint();
        if (type === 'u64') return v;
        if (type === 'bool') return v !== 0n;
        if (type === 'u32' || type === 'enum') return Number(BigInt.asUintN(32, v));
        return Number(v);
    }
    const b = r.take(Number(r.varint()));
    if (type === 'string') return fromUtf8(b);
    if (type === 'bytes') return b.slice();
    return decode(type, b);
}

/** Decode @p buf as message @p name. Unknown fields are skipped; throws on malformed input. */
export function decode(name, buf) {
    const fields = SCHEMA[name];
    const byNum = new Map(fields.map(f => [f[0], f]));
    const out = emptyOf(name);
    const r = new Reader(buf);
    while (r.more) {
        const tag = Number(r.varint());
        const num = tag >>> 3, wire = tag & 7;
        const f = byNum.get(num);
        if (!f || num === 0) {
            r.skip(wire);
            continue;
        }
        const [, key, type, rep] = f;
        const v = readValue(r, wire, type);
        if (rep) out[key].push(v);
        else out[key] = v;
    }
    return out;
}
