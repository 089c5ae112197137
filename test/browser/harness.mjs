// harness.mjs: what the browser tests stand on — a real cimd (started, stopped with
// SIGTERM, started again on the same data directory and ports), the cim CLI as a TCP
// user, the admin API, and a tiny sequential test runner that ends with one summary line.

import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'build/bin');
export const OUT = path.join(ROOT, 'build/browser');

export function sleep(ms) {
    return new Promise(r => setTimeout(r, ms));
}

/** Poll @p fn until it returns a truthy value; throw "timed out: @p what" after @p ms. */
export async function until(what, fn, ms = 10000) {
    const end = Date.now() + ms;
    let last;
    for (;;) {
        try {
            last = await fn();
            if (last)
                return last;
        } catch (e) {
            last = e.message;
        }
        if (Date.now() > end)
            throw new Error(`timed out after ${ms / 1000} s: ${what}${last ? ` (last: ${last})` : ''}`);
        await sleep(100);
    }
}

export function check(cond, what) {
    if (!cond)
        throw new Error(what);
}

/** Run a program; resolves {code, stdout, stderr}; rejects only when it cannot start. */
export function run(file, args, { input, timeout = 20000 } = {}) {
    return new Promise((resolve, reject) => {
        const child = execFile(file, args, { timeout, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
            if (err && typeof err.code !== 'number' && !err.killed)
                reject(err);
            else
                resolve({ code: err ? (err.killed ? 124 : err.code) : 0, stdout, stderr });
        });
        if (input !== undefined)
            child.stdin.end(input);
    });
}

/** Run and demand exit 0; returns stdout. */
export async function ok(file, args, opts) {
    const r = await run(file, args, opts);
    if (r.code !== 0)
        throw new Error(`${path.basename(file)} ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
}

// ---- cimd --------------------------------------------------------------------------

// Short, so that the run sees idle connections PING (the idle timeout is 3 x this).
export const HEARTBEAT_S = 2;

const READY_RE = /cimd ready: listening on [\d.]+:(\d+) key ([0-9a-f]{64})/;
const WS_RE = /ws: listening on [\d.]+:(\d+)/;
const ADMIN_RE = /admin: listening on [\d.]+:(\d+)/;

/** A cimd on loopback with a temporary data directory, dev tokens on. */
export class Server {
    constructor() {
        this.data = path.join(mkdtempSync(path.join(tmpdir(), 'cim-browser-')), 'data');
        this.logFile = path.join(OUT, 'cimd.log');
        this.ports = { tcp: 0, ws: 0, admin: 0 };
    }

    /** Start (again): the first start takes free ports, later ones the same ports. */
    async start() {
        const p = this.ports;
        const args = ['--data', this.data, '--listen', `127.0.0.1:${p.tcp}`,
            '--ws_listen', `127.0.0.1:${p.ws}`, '--admin_listen', `127.0.0.1:${p.admin}`,
            '--dev_tokens', 'true', '--workers', '2', '--durability', 'nosync',
            '--heartbeat_s', String(HEARTBEAT_S)];
        const proc = spawn(path.join(BIN, 'cimd'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
        this.proc = proc;
        let log = '';
        const onData = d => {
            log += d;
            appendFileSync(this.logFile, d);
        };
        proc.stdout.on('data', onData);
        proc.stderr.on('data', onData);
        this.exited = new Promise(resolve => proc.on('exit', (code, sig) => resolve({ code, sig })));
        let gone = false;
        this.exited.then(() => { gone = true; });
        await until('cimd ready line', () => {
            if (gone)
                throw new Error(`cimd exited at start: ${log.trim().split('\n').pop()}`);
            return READY_RE.test(log) && WS_RE.test(log) && ADMIN_RE.test(log);
        }, 15000);
        const ready = log.match(READY_RE);
        this.ports = { tcp: Number(ready[1]), ws: Number(log.match(WS_RE)[1]),
            admin: Number(log.match(ADMIN_RE)[1]) };
        this.key = ready[2];
        this.url = `http://127.0.0.1:${this.ports.ws}/`;
    }

    /** SIGTERM, and demand a clean exit (status 0). */
    async stop() {
        if (!this.proc)
            return;
        this.proc.kill('SIGTERM');
        const { code, sig } = await Promise.race([this.exited,
            sleep(15000).then(() => ({ code: 'timeout' }))]);
        this.proc = null;
        if (code !== 0)
            throw new Error(`cimd did not exit cleanly on SIGTERM: ${code ?? sig}`);
    }

    kill() {
        if (this.proc)
            this.proc.kill('SIGKILL');
        this.proc = null;
    }

    cleanup() {
        rmSync(path.dirname(this.data), { recursive: true, force: true });
    }

    cimctl(...args) {
        return ok(path.join(BIN, 'cimctl'), ['--data', this.data, ...args]);
    }

    async token(user) {
        return (await this.cimctl('token', '--user', user, '--ttl', '3600')).trim();
    }

    /** The admin API as the app's backend (docs/ADMIN-API.md). */
    async api(method, urlPath, body) {
        if (!this.secret)
            this.secret = (await this.cimctl('app', 'show', 'default')).trim();
        const r = await fetch(`http://127.0.0.1:${this.ports.admin}${urlPath}`, {
            method, headers: { Authorization: `Bearer ${this.secret}` },
            body: body === undefined ? undefined : JSON.stringify(body) });
        const text = await r.text();
        if (!r.ok)
            throw new Error(`${method} ${urlPath}: HTTP ${r.status}: ${text}`);
        return text ? JSON.parse(text) : null;
    }
}

// ---- the TCP user: the cim CLI on libcim --------------------------------------------

export class TcpUser {
    constructor(srv, user) {
        this.srv = srv;
        this.user = user;
    }

    async init() {
        this.token = await this.srv.token(this.user);
        return this;
    }

    args(...rest) {
        return ['--port', String(this.srv.ports.tcp), '--key', this.srv.key, '--user', this.user,
            '--token', this.token, ...rest];
    }

    cim(...rest) {
        return ok(path.join(BIN, 'cim'), this.args(...rest));
    }

    /** `cim listen` in the background: its lines, and a wait for one that matches. */
    listen(device) {
        const proc = spawn(path.join(BIN, 'cim'), this.args('--device', device, 'listen',
            '--timeout', '600'), { stdio: ['ignore', 'pipe', 'pipe'] });
        const l = { lines: [], proc, err: '' };
        let buf = '';
        proc.stdout.on('data', d => {
            buf += d;
            const parts = buf.split('\n');
            buf = parts.pop();
            l.lines.push(...parts);
        });
        proc.stderr.on('data', d => { l.err += d; });
        l.exited = new Promise(resolve => proc.on('exit', resolve));
        l.waitFor = (re, what, ms = 10000) => until(`${this.user}'s listen prints ${what}`,
            () => l.lines.find(x => re.test(x)), ms);
        l.stop = async () => {
            proc.kill('SIGTERM');
            await l.exited;
        };
        return l;
    }
}

// ---- a sequential runner -----------------------------------------------------------

export class Runner {
    constructor() {
        this.results = [];
        this.t0 = Date.now();
        this.onFail = null;
        mkdirSync(OUT, { recursive: true });
    }

    async test(name, fn) {
        const t = Date.now();
        try {
            await fn();
            this.results.push({ name, ok: true });
            console.log(`ok   ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
        } catch (e) {
            this.results.push({ name, ok: false, error: e });
            console.log(`FAIL ${name} (${((Date.now() - t) / 1000).toFixed(1)} s): ${e.message}`);
            if (this.onFail)
                await this.onFail(name).catch(() => {});
        }
    }

    /** Print the summary line and return the exit status. */
    summary() {
        const passed = this.results.filter(r => r.ok).length;
        const failed = this.results.length - passed;
        const secs = ((Date.now() - this.t0) / 1000).toFixed(1);
        for (const r of this.results.filter(x => !x.ok))
            console.log(`failed: ${r.name}: ${r.error.message}`);
        console.log(`browser: ${passed} passed, ${failed} failed (${secs} s; screenshots in ` +
            `${path.relative(ROOT, OUT)}/)`);
        return failed === 0 && passed > 0 ? 0 : 1;
    }
}
