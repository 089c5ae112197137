// cim.js: a cim client for the browser over the WebSocket endpoint (docs/WEBSOCKET.md).
//
// Connection is one WebSocket: handshake (chan.js), LOGIN, requests matched to answers by
// req_id, pushes and events, PING after heartbeat_s of silence. Client keeps a session up
// across drops: it reconnects with backoff, SYNCs what it missed, acknowledges with
// PUSH_ACK once it holds everything up to an id, and drops duplicates by msg_id
// (delivery is at-least-once, PROTOCOL.md §6).
//
// Client events (EventTarget, detail in event.detail):
//   'state'   {state: 'connecting'|'online'|'offline'|'closed', reason, code, retryIn}
//   'login'   {rsp, first}   after every successful LOGIN (first: the first of this Client)
//   'message' {msg, synced}  a stored message, once per msg_id (synced: came from SYNC)
//   'transient' {msg}        a transient message (msg_id 0: typing indicators)
//   'event'   {ev}           an EVENT (READ, PRESENCE)
//   'synced'  {upTo}         after a reconnect, once what came meanwhile is delivered
//   'fatal'   {code, reason} the session cannot go on by itself (bad token, kicked)

import { encode, decode, FRAMES, T, Code, CODE_NAMES, DeviceKind } from './proto.js';
import { Handshake, ChannelError, hexToBytes, plainFrame, FRAME_HDR } from './chan.js';

const HANDSHAKE_MAX = 1024;
const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 15000;
const SYNC_PAGES_MAX = 50;       // 50 x 500: beyond that a UI reloads its lists instead
const SEEN_MAX = 20000;          // msg ids remembered for dropping duplicates
const ACK_DELAY_MS = 250;        // PUSH_ACKs are cumulative: one per burst is enough

/** A refusal from the server (code != OK), or a local failure (code null). */
export class CimError extends Error {
    constructor(code, reason) {
        super(code === null || code === undefined ? reason
            : `${CODE_NAMES[code] || code}: ${reason || 'refused'}`);
        this.code = code;
        this.reason = reason;
    }
}

function maxId(a, b) { return a === null ? b : a > b ? a : b; }

/** One WebSocket connection through handshake and login; see Client for the session. */
class Connection {
    constructor(url, pinned, handlers) {
        this.url = url;
        this.pinned = pinned;
        this.h = handlers;          // onFrame(type, msg), onClose(info)
        this.chan = null;
        this.rx = Promise.resolve();
        this.tx = Promise.resolve();
        this.nextReqId = 1;
        this.pending = new Map();   // req_id -> {resolve, reject, answerType}
        this.maxBody = 65536;
        this.closed = false;
        this.lastSent = Date.now();
        this.lastHeard = Date.now();
    }

    /** Open, handshake and log in. Resolves with the LoginRsp (code OK) or rejects. */
    open(login) {
        return new Promise((resolve, reject) => {
            this.loginWait = { resolve, reject };
            let ws;
            try {
                ws = new WebSocket(this.url, 'cim.v1');
            } catch (e) {
                reject(new CimError(null, `cannot open ${this.url}: ${e.message}`));
                return;
            }
            this.ws = ws;
            ws.binaryType = 'arraybuffer';
            ws.onopen = () => this.hello(login).catch(e => this.fail(e.message));
            ws.onmessage = ev => this.receive(ev.data);
            ws.onclose = ev => this.closedBy(ev.code === 1000 || ev.code === 1005
                ? 'connection closed' : `connection closed (WebSocket ${ev.code})`);
            ws.onerror = () => {}; // onclose follows with what can be said
        });
    }

    async hello(login) {
        this.hs = new Handshake();
        const body = await this.hs.start();
        this.login = login;
        this.ws.send(plainFrame(T.HELLO, body));
        this.lastSent = Date.now();
    }

    receive(data) {
        if (!(data instanceof ArrayBuffer)) {
            this.fail('the server sent a text message');
            return;
        }
        const frame = new Uint8Array(data);
        this.lastHeard = Date.now();
        // Frames are opened strictly in arrival order: the nonce counter says so.
        this.rx = this.rx.then(() => this.handle(frame)).catch(e => this.fail(e.message));
    }

    async handle(frame) {
        if (this.closed)
            return;
        if (frame.length < FRAME_HDR)
            throw new Error('a frame shorter than its header');
        const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
        const len = v.getUint32(0), type = v.getUint32(4);
        if (len !== frame.length)
            throw new Error('a WebSocket message that is not exactly one frame');
        if (!this.chan) {
            if (type !== T.HELLO_ACK || len > HANDSHAKE_MAX)
                throw new Error('expected HELLO_ACK');
            this.chan = await this.hs.finish(frame.subarray(FRAME_HDR), this.pinned);
            this.hs = null;
            this.request(T.LOGIN, this.login).then(rsp => this.loggedIn(rsp),
                e => this.loginWait && this.loginWait.reject(e));
            return;
        }
        const body = await this.chan.open(frame);
        const f = FRAMES[type];
        if (!f)
            throw new Error(`unknown frame type 0x${type.toString(16)}`);
        const msg = decode(f[1], body);
        this.dispatch(type, msg);
    }

    loggedIn(rsp) {
        if (rsp.max_body)
            this.maxBody = rsp.max_body;
        const w = this.loginWait;
        this.loginWait = null;
        w.resolve(rsp);
    }

    dispatch(type, msg) {
        if (type === T.BYE) {
            this.bye = msg;
            return; // the close follows
        }
        if (type === T.PONG)
            return;
        const p = msg.req_id !== undefined ? this.pending.get(msg.req_id) : undefined;
        if (p && p.answerType === type) {
            this.pending.delete(msg.req_id);
            p.resolve(msg);
            return;
        }
        this.h.onFrame(type, msg);
    }

    /** Seal and send; frames leave in call order (their nonces are taken in that order). */
    send(type, name, msg) {
        if (this.closed || !this.chan)
            return Promise.reject(new CimError(null, 'not connected'));
        const body = encode(name, msg);
        if (body.length > this.maxBody)
            return Promise.reject(new CimError(Code.TOO_LARGE, `${body.length} bytes is over ` +
                `the server's limit of ${this.maxBody}`));
        const sealed = this.chan.seal(type, body);
        const sent = this.tx.then(async () => {
            const frame = await sealed;
            if (!this.closed) {
                this.ws.send(frame);
                this.lastSent = Date.now();
            }
        });
        // A failure reaches this frame's sender, and ends the connection (a frame that was
        // not sent leaves a gap in the nonces), but does not stop the chain itself.
        this.tx = sent.catch(e => this.fail(`sending failed: ${e.message}`));
        return sent;
    }

    /** Send a request and resolve with its answer (whatever its code). */
    request(type, msg) {
        const reqId = this.nextReqId++;
        if (this.nextReqId > 0xffffffff)
            this.nextReqId = 1; // 0 reads as absent (§3)
        return new Promise((resolve, reject) => {
            this.pending.set(reqId, { resolve, reject, answerType: type + 1 });
            this.send(type, FRAMES[type][1], { ...msg, req_id: reqId }).catch(e => {
                this.pending.delete(reqId);
                reject(e);
            });
        });
    }

    fail(why) {
        if (this.closed)
            return;
        this.failure = why;
        try {
            this.ws.close(1000);
        } catch (e) { /* already closing */ }
        this.closedBy(why);
    }

    closedBy(why) {
        if (this.closed)
            return;
        this.closed = true;
        const bye = this.bye;
        const info = bye ? { code: bye.code, reason: bye.reason || CODE_NAMES[bye.code] }
            : { code: null, reason: this.failure || why };
        const err = new CimError(info.code, info.reason);
        for (const p of this.pending.values())
            p.reject(err);
        this.pending.clear();
        if (this.loginWait) {
            this.loginWait.reject(err);
            this.loginWait = null;
        }
        this.h.onClose(info);
    }

    close() {
        this.closed = true;
        try {
            this.ws.close(1000);
        } catch (e) { /* already closing */ }
    }
}

/**
 * A user's session on one device, kept up across drops.
 * @param opts {base: the page's origin URL, key: identity hex, wsPath, app, user, token,
 *              deviceId, clientVersion}
 */
export class Client extends EventTarget {
    constructor(opts) {
        super();
        this.opts = opts;
        this.pinned = hexToBytes(opts.key);
        this.conn = null;
        this.state = 'closed';
        this.stopped = true;
        this.backoff = BACKOFF_FIRST_MS;
        this.lastId = null;       // the highest timeline id this page holds every id below
        this.seen = new Set();
        this.ackedTo = 0n;
        this.syncing = false;
        this.heldPushes = [];
        this.logins = 0;
    }

    emit(name, detail) { this.dispatchEvent(new CustomEvent(name, { detail })); }

    setState(state, extra = {}) {
        this.state = state;
        this.emit('state', { state, ...extra });
    }

    get wsUrl() {
        const u = new URL(this.opts.wsPath || '/ws', this.opts.base);
        u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
        return u.toString();
    }

    start() {
        this.stopped = false;
        this.connect();
    }

    /** Log out (LOGOUT, the server closes) and stay disconnected. */
    async logout() {
        this.stopped = true;
        clearTimeout(this.retryTimer);
        const c = this.conn;
        if (c && !c.closed && c.chan) {
            try {
                await Promise.race([c.request(T.LOGOUT, {}),
                    new Promise(r => setTimeout(r, 2000))]);
            } catch (e) { /* closing anyway */ }
        }
        if (c)
            c.close();
        this.stopHeartbeat();
        this.setState('closed', { reason: 'logged out' });
    }

    /** Reconnect at once (after a drop, or a kick the user chose to override). */
    reconnectNow() {
        if (this.conn && !this.conn.closed)
            return;
        this.stopped = false;
        clearTimeout(this.retryTimer);
        this.backoff = BACKOFF_FIRST_MS;
        this.connect();
    }

    connect() {
        clearTimeout(this.retryTimer);
        this.setState('connecting');
        const conn = new Connection(this.wsUrl, this.pinned, {
            onFrame: (type, msg) => conn === this.conn && this.onFrame(type, msg),
            onClose: info => conn === this.conn && this.onClose(info),
        });
        this.conn = conn;
        const o = this.opts;
        conn.open({ app: o.app, user: o.user, token: o.token, device_id: o.deviceId,
            device_kind: DeviceKind.WEB, client_version: o.clientVersion || 'cim-web' })
            .then(rsp => this.onLogin(conn, rsp), () => {});
    }

    async onLogin(conn, rsp) {
        if (conn !== this.conn)
            return;
        if (rsp.code !== Code.OK) {
            // The server closes after a refused LOGIN (BYE with the same code): a bad token
            // or user id will not get better by retrying, a busy server may.
            this.loginRefused = rsp;
            return;
        }
        const first = this.logins++ === 0;
        this.backoff = BACKOFF_FIRST_MS;
        this.heartbeat = (rsp.heartbeat_s || 30) * 1000;
        this.startHeartbeat();
        const from = this.lastId;
        this.syncing = from !== null; // pushes wait for the SYNC below
        this.setState('online');
        this.emit('login', { rsp, first });
        // A page that held messages up to lastId asks for the rest (what came while it was
        // away). A page that starts fresh learns the state from CONV_LIST and HISTORY
        // instead of replaying the whole timeline.
        if (from !== null) {
            await this.syncFrom(conn, from, rsp.latest_msg_id);
        } else {
            this.lastId = rsp.latest_msg_id;
            this.ackUpTo(rsp.latest_msg_id);
        }
    }

    /**
     * SYNC what came after @p after, deliver it and the pushes held meanwhile, then move
     * lastId and acknowledge. On failure the connection is dropped with lastId unmoved, so
     * that the next login syncs the same range again.
     */
    async syncFrom(conn, after, latest) {
        let top = after, complete = false;
        try {
            for (let page = 0; page < SYNC_PAGES_MAX && !complete; page++) {
                const rsp = await conn.request(T.SYNC, { after_msg_id: top, limit: 500 });
                if (rsp.code !== Code.OK)
                    throw new CimError(rsp.code, rsp.reason);
                for (const m of rsp.messages)
                    this.deliver(m, true);
                top = maxId(top, rsp.last_msg_id);
                complete = rsp.remain === 0;
            }
        } catch (e) {
            if (conn === this.conn && !conn.closed)
                conn.fail(`sync failed: ${e.message}`);
            return;
        }
        if (conn !== this.conn)
            return;
        this.syncing = false;
        // Past SYNC_PAGES_MAX pages the rest is skipped: the lists reloaded after every
        // login (CONV_LIST, HISTORY) show the state without replaying it.
        if (!complete)
            top = maxId(top, latest);
        // Pushes that came during the sync follow every id of it (they are ascending and
        // gapless after latest_msg_id): deliver them, then acknowledge all at once.
        const held = this.heldPushes;
        this.heldPushes = [];
        for (const m of held) {
            this.deliver(m, false);
            top = maxId(top, m.msg_id);
        }
        this.lastId = maxId(this.lastId, top);
        this.ackUpTo(this.lastId);
        this.emit('synced', { upTo: top });
    }

    onFrame(type, msg) {
        if (type === T.PUSH) {
            if (msg.msg_id === 0n) {
                this.emit('transient', { msg });
            } else if (this.syncing) {
                this.heldPushes.push(msg);
            } else {
                this.deliver(msg, false);
                this.lastId = maxId(this.lastId, msg.msg_id);
                this.scheduleAck();
            }
        } else if (type === T.EVENT) {
            this.emit('event', { ev: msg });
        }
    }

    deliver(msg, synced) {
        const k = msg.msg_id.toString();
        if (this.seen.has(k))
            return;
        this.seen.add(k);
        if (this.seen.size > SEEN_MAX) {
            // Ids come in ascending order: the first inserted are the oldest.
            const drop = [...this.seen].slice(0, SEEN_MAX / 2);
            for (const d of drop)
                this.seen.delete(d);
        }
        this.emit('message', { msg, synced });
    }

    /** Note an id this page made itself (its own SEND) so a later copy is a duplicate. */
    noteOwn(msgId) {
        this.seen.add(msgId.toString());
    }

    scheduleAck() {
        if (this.ackTimer)
            return;
        this.ackTimer = setTimeout(() => {
            this.ackTimer = null;
            this.ackUpTo(this.lastId);
        }, ACK_DELAY_MS);
    }

    ackUpTo(id) {
        const c = this.conn;
        if (!c || c.closed || id === null || id <= this.ackedTo)
            return;
        this.ackedTo = id;
        c.send(T.PUSH_ACK, 'DeliveredReq', { up_to_msg_id: id }).catch(() => {});
    }

    onClose(info) {
        this.stopHeartbeat();
        clearTimeout(this.ackTimer);
        this.ackTimer = null;
        this.syncing = false;
        this.heldPushes = [];
        this.ackedTo = 0n;
        const refused = this.loginRefused;
        this.loginRefused = null;
        const code = refused ? refused.code : info.code;
        const reason = refused ? refused.reason : info.reason;
        // No retry where retrying cannot help or would fight another session: a refused
        // token or id, a disabled user, a kick (another login took this device: coming
        // back would kick it in turn).
        if (this.stopped || code === Code.UNAUTHORIZED || code === Code.BAD_REQUEST ||
            code === Code.KICKED || code === Code.FORBIDDEN) {
            const wasStopped = this.stopped;
            this.stopped = true;
            this.setState('closed', { code, reason });
            if (!wasStopped)
                this.emit('fatal', { code, reason, beforeLogin: this.logins === 0 });
            return;
        }
        const wait = Math.round(this.backoff * (0.8 + 0.4 * Math.random()));
        this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
        this.setState('offline', { code, reason, retryIn: wait });
        this.retryTimer = setTimeout(() => this.connect(), wait);
    }

    startHeartbeat() {
        this.stopHeartbeat();
        const every = Math.max(1000, Math.min(this.heartbeat / 4, 5000));
        this.hbTimer = setInterval(() => this.beat(), every);
    }

    stopHeartbeat() {
        clearInterval(this.hbTimer);
        this.hbTimer = null;
    }

    // PING after heartbeat_s of silence on our side (§3); a server silent for twice that
    // after our PING is gone without a close (a dead network): drop and reconnect.
    beat() {
        const c = this.conn;
        if (!c || c.closed)
            return;
        const now = Date.now();
        if (now - c.lastHeard > 2 * this.heartbeat + 5000) {
            c.fail('the server stopped answering');
            return;
        }
        if (now - c.lastSent >= this.heartbeat)
            c.send(T.PING, 'Ping', { client_time_ms: now }).catch(() => {});
    }

    /** Send request @p type with @p msg; resolves with the answer, throws CimError unless OK. */
    async call(type, msg = {}) {
        const c = this.conn;
        if (!c || c.closed || this.state !== 'online')
            throw new CimError(null, 'not connected: wait for the connection to come back');
        const rsp = await c.request(type, msg);
        if (rsp.code !== undefined && rsp.code !== Code.OK)
            throw new CimError(rsp.code, rsp.reason);
        return rsp;
    }

    get online() { return this.state === 'online'; }
}

export { ChannelError };
