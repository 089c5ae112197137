// chan.js: the crypto channel of PROTOCOL.md §2 in WebCrypto, byte for byte as
// src/core/chan.c: X25519 ephemeral keys, an Ed25519-signed transcript hash, HKDF-SHA256
// into two AES-256-GCM keys, and sealed frames whose nonce is 4 zero bytes || a u64
// counter per direction and whose AAD is the frame's 8 header bytes.

import { encode, decode, utf8 } from './proto.js';

export const FRAME_HDR = 8;
export const FRAME_TAG = 16;
const TH_LABEL = utf8('cim/1 handshake');
const KEYS_INFO = utf8('cim/1 keys');

const subtle = globalThis.crypto.subtle;

export class ChannelError extends Error {}

function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) {
        out.set(p, off);
        off += p.length;
    }
    return out;
}

export function hexToBytes(hex) {
    if (!/^[0-9a-fA-F]{64}$/.test(hex))
        throw new ChannelError('the pinned key must be 64 hex characters');
    return Uint8Array.from(hex.match(/../g), h => parseInt(h, 16));
}

export function bytesToHex(b) {
    return Array.from(b, x => x.toString(16).padStart(2, '0')).join('');
}

export function frameHeader(len, type) {
    const h = new Uint8Array(FRAME_HDR);
    const v = new DataView(h.buffer);
    v.setUint32(0, len);
    v.setUint32(4, type);
    return h;
}

/** A plaintext frame (the hellos): header and body. */
export function plainFrame(type, body) {
    return concat(frameHeader(FRAME_HDR + body.length, type), body);
}

function nonce(ctr) {
    const n = new Uint8Array(12);
    new DataView(n.buffer).setBigUint64(4, ctr);
    return n;
}

function sameBytes(a, b) {
    if (a.length !== b.length)
        return false;
    let d = 0;
    for (let i = 0; i < a.length; i++)
        d |= a[i] ^ b[i];
    return d === 0;
}

/**
 * Does this browser's WebCrypto have what the protocol needs (X25519, Ed25519)? Throws
 * ChannelError naming what is missing. @p identityHex: the key to pin (imported as a test).
 */
export async function checkCrypto(identityHex) {
    try {
        await subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
    } catch (e) {
        throw new ChannelError(`this browser's WebCrypto has no X25519 (${e.message})`);
    }
    try {
        await subtle.importKey('raw', hexToBytes(identityHex), { name: 'Ed25519' }, false,
            ['verify']);
    } catch (e) {
        throw new ChannelError(`this browser's WebCrypto has no Ed25519 (${e.message})`);
    }
}

/**
 * Client half of the handshake. start() makes the ClientHello body (kept exactly as sent
 * for the transcript); finish() checks the ServerHello against the pinned identity, then
 * the signature, then derives the channel. Any failure throws ChannelError.
 */
export class Handshake {
    async start() {
        this.eph = await subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
        const pub = new Uint8Array(await subtle.exportKey('raw', this.eph.publicKey));
        const random = crypto.getRandomValues(new Uint8Array(32));
        this.hello = encode('ClientHello', { version: 1, client_key: pub,
            client_random: random });
        return this.hello;
    }

    async finish(serverHelloBody, pinned) {
        let sh;
        try {
            sh = decode('ServerHello', serverHelloBody);
        } catch (e) {
            throw new ChannelError(`malformed HELLO_ACK: ${e.message}`);
        }
        if (sh.version !== 1 || sh.server_key.length !== 32 || sh.server_random.length !== 32 ||
            sh.identity.length !== 32 || sh.signature.length !== 64)
            throw new ChannelError('malformed HELLO_ACK');
        if (!sameBytes(sh.identity, pinned))
            throw new ChannelError(`the server's identity ${bytesToHex(sh.identity)} is not ` +
                `the pinned key ${bytesToHex(pinned)}`);
        const th = new Uint8Array(await subtle.digest('SHA-256',
            concat(TH_LABEL, this.hello, sh.server_key, sh.server_random, sh.identity)));
        const idKey = await subtle.importKey('raw', sh.identity, { name: 'Ed25519' }, false,
            ['verify']);
        if (!await subtle.verify({ name: 'Ed25519' }, idKey, sh.signature, th))
            throw new ChannelError('the server signature does not verify');
        const peer = await subtle.importKey('raw', sh.server_key, { name: 'X25519' }, false, []);
        let shared;
        try {
            shared = new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: peer },
                this.eph.privateKey, 256));
        } catch (e) {
            throw new ChannelError(`X25519 failed: ${e.message}`);
        }
        if (shared.every(b => b === 0))
            throw new ChannelError('X25519 gave an all-zero secret');
        const ikm = await subtle.importKey('raw', shared, 'HKDF', false, ['deriveBits']);
        const okm = new Uint8Array(await subtle.deriveBits(
            { name: 'HKDF', hash: 'SHA-256', salt: th, info: KEYS_INFO }, ikm, 512));
        const aes = raw => subtle.importKey('raw', raw, { name: 'AES-GCM' }, false,
            ['encrypt', 'decrypt']);
        // The client seals with the c->s key, okm[0..32), and opens with okm[32..64).
        const ch = new Channel(await aes(okm.subarray(0, 32)), await aes(okm.subarray(32, 64)));
        okm.fill(0);
        shared.fill(0);
        this.eph = null;
        return ch;
    }
}

/**
 * Sealed frames of one connection. WebCrypto is asynchronous, so seal() and open() take
 * their counter when called: the caller must call each in frame order (the connection
 * chains them) and send or use the results in that same order.
 */
export class Channel {
    constructor(txKey, rxKey) {
        this.txKey = txKey;
        this.rxKey = rxKey;
        this.txCtr = 0n;
        this.rxCtr = 0n;
    }

    async seal(type, body) {
        const hdr = frameHeader(FRAME_HDR + body.length + FRAME_TAG, type);
        const iv = nonce(this.txCtr++);
        const ct = new Uint8Array(await subtle.encrypt(
            { name: 'AES-GCM', iv, additionalData: hdr, tagLength: 128 }, this.txKey, body));
        return concat(hdr, ct);
    }

    /** Open a whole frame; returns the plaintext body. A failure is fatal (§2). */
    async open(frame) {
        if (frame.length < FRAME_HDR + FRAME_TAG)
            throw new ChannelError('sealed frame too short');
        const iv = nonce(this.rxCtr);
        let pt;
        try {
            pt = await subtle.decrypt({ name: 'AES-GCM', iv,
                additionalData: frame.subarray(0, FRAME_HDR), tagLength: 128 }, this.rxKey,
            frame.subarray(FRAME_HDR));
        } catch (e) {
            throw new ChannelError('a frame from the server failed to open');
        }
        this.rxCtr++;
        return new Uint8Array(pt);
    }
}
