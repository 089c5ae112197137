// app.js: the page — learns the server from /config.json, logs in (a device id per tab),
// feeds what the Client receives into the model and the views, and shows the connection's
// state and every refusal to the user.

import { Client } from './cim.js';
import { checkCrypto } from './chan.js';
import { T, Code, CODE_NAMES, ConvType, EventKind, FLAG_RECALLED } from './proto.js';
import { S, convOfMsg, getConv, countsAsUnread, groupEventOf, recallEventOf, removesMe, addsMe,
    describeBody, convTitle } from './model.js';
import { $, toast, announce, USER_RE } from './ui.js';
import { initSidebar, renderConvs, renderContacts, loadContacts, loadGroups } from './sidebar.js';
import { initChat, openChat, resetChat, showMessage, applyRecall, updateReceipts, noteTyping,
    renderChatHeader, renderTyping, loadMembers, markReadSoon, chatInView } from './chat.js';

const DEVICE_KEY = 'cim.device';
const TOKEN_KEY = 'cim.token';

// ---- device id per tab -------------------------------------------------------------

function randomId() {
    const r = crypto.getRandomValues(new Uint8Array(6));
    return Array.from(r, b => b.toString(36).padStart(2, '0')).join('').slice(0, 10);
}

/**
 * A device id for this tab: multi-tab is multi-device (the server keeps a cursor per
 * device and kicks an older session of the same device). sessionStorage keeps it across
 * reloads of the tab, but a duplicated tab copies sessionStorage: ask the other tabs
 * whether one holds the id already, and take a new one if so.
 */
async function claimDeviceId() {
    const bc = 'BroadcastChannel' in window ? new BroadcastChannel('cim-devices') : null;
    let id = sessionStorage.getItem(DEVICE_KEY);
    if (id && bc) {
        const taken = await new Promise(resolve => {
            const timer = setTimeout(() => resolve(false), 250);
            bc.onmessage = ev => {
                if (ev.data && ev.data.taken === id) {
                    clearTimeout(timer);
                    resolve(true);
                }
            };
            bc.postMessage({ ask: id });
        });
        if (taken)
            id = null;
    }
    if (!id) {
        id = `web-${randomId()}`;
        sessionStorage.setItem(DEVICE_KEY, id);
    }
    if (bc)
        bc.onmessage = ev => ev.data && ev.data.ask === id && bc.postMessage({ taken: id });
    return id;
}

// ---- connection state --------------------------------------------------------------

let shownState = null;

function showState(st) {
    shownState = { ...st, retryAt: st.retryIn ? Date.now() + st.retryIn : 0 };
    renderState();
}

/** The status line; while offline it counts down to the next attempt. */
function renderState() {
    if (!shownState)
        return;
    const { state, reason, code, retryAt } = shownState;
    const s = $('status');
    s.dataset.state = state;
    document.body.dataset.conn = state;
    const why = reason ? `: ${code !== null && code !== undefined ? `${CODE_NAMES[code]}, ` : ''}${reason}` : '';
    const left = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    s.textContent = state === 'online' ? 'Online'
        : state === 'connecting' ? 'Connecting…'
            : state === 'offline' ? `Offline${why}; retrying in ${left} s`
                : `Disconnected${why}`;
    $('reconnect').hidden = !(state === 'offline' || (state === 'closed' && S.me));
    // Still on the login form and the server cannot be reached: let the user change it.
    if (state === 'offline' && !$('login-view').hidden)
        $('login-submit').disabled = false;
}

function onFatal({ code, reason, beforeLogin }) {
    const text = `${CODE_NAMES[code] || 'ERROR'}: ${reason}`;
    if (beforeLogin) {
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin(`Login refused: ${text}`);
        return;
    }
    if (code === Code.KICKED)
        toast(`This tab was disconnected: ${reason}. “Reconnect now” takes the device back.`);
    else
        toast(`Disconnected: ${text}`);
}

// ---- what arrives ------------------------------------------------------------------

function onMessage({ msg, synced }) {
    const { type, peer } = convOfMsg(msg);
    const conv = getConv(type, peer);
    const open = S.chat && S.chat.key === conv.key;
    const rev = recallEventOf(msg);
    if (rev) {
        if (conv.last && conv.last.msg_id === rev.msg_id)
            conv.last = { ...conv.last, flags: conv.last.flags | FLAG_RECALLED };
        if (open)
            applyRecall(rev.msg_id);
        renderConvs();
        return;
    }
    noteGroupEvent(conv, msg);
    if (!conv.last || msg.msg_id >= conv.last.msg_id) {
        conv.last = msg;
        conv.updated = msg.time_ms;
    }
    if (type === ConvType.DIRECT && msg.from !== S.me && msg.msg_id > conv.peerReadUpTo) {
        // The server counts one's own last message as read, with all before it
        // (conv_read_cursor): a reply is a read receipt that comes with no EVENT{READ}.
        conv.peerReadUpTo = msg.msg_id;
        if (open)
            updateReceipts();
    }
    const typing = S.typing.get(conv.key);
    if (typing)
        typing.delete(msg.from); // a message from someone ends their typing indicator
    if (msg.from === S.me) {
        conv.unread = 0;
    } else if (countsAsUnread(msg) && msg.msg_id > conv.readUpTo) {
        // Not unread when it shows in the open chat in front of the user: READ follows.
        if (!(open && chatInView()))
            conv.unread++;
        if (!synced)
            announce(`${msg.from}${type === ConvType.GROUP ? ` in ${convTitle(conv)}` : ''}: ` +
                describeBody(msg));
    }
    if (open)
        showMessage(msg);
    renderConvs();
}

/** Group events change names, member counts and whether we are still in the group. */
function noteGroupEvent(conv, msg) {
    const ev = groupEventOf(msg);
    if (!ev)
        return;
    if (ev.group && ev.group.group_id)
        S.groups.set(ev.group.group_id, ev.group);
    if (removesMe(ev))
        conv.left = true;
    else if (addsMe(ev))
        conv.left = false;
    if (S.chat && S.chat.key === conv.key) {
        renderChatHeader();
        loadMembers();
    }
}

function onEvent({ ev }) {
    if (ev.kind === EventKind.READ) {
        const conv = getConv(ev.conv_type, ev.peer);
        if (ev.user === S.me) {
            // Read on another of our devices.
            if (ev.up_to_msg_id > conv.readUpTo)
                conv.readUpTo = ev.up_to_msg_id;
            if (!conv.last || conv.readUpTo >= conv.last.msg_id)
                conv.unread = 0;
            else
                refreshConvsSoon();
        } else if (ev.up_to_msg_id > conv.peerReadUpTo) {
            conv.peerReadUpTo = ev.up_to_msg_id;
            if (S.chat && S.chat.key === conv.key)
                updateReceipts();
        }
        renderConvs();
    } else if (ev.kind === EventKind.PRESENCE) {
        const c = S.contacts.get(ev.user);
        if (c) {
            c.online = ev.online;
            renderContacts();
            renderConvs();
            renderChatHeader();
        }
    }
}

let refreshTimer = null;

function refreshConvsSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => loadConvs().catch(() => {}), 300);
}

/** The server's conversation list: last message, unread count, read cursors. */
async function loadConvs() {
    const rsp = await S.client.call(T.CONV_LIST);
    for (const c of rsp.convs) {
        const conv = getConv(c.conv_type, c.peer);
        conv.last = c.last;
        conv.unread = c.unread;
        conv.readUpTo = c.read_up_to;
        conv.peerReadUpTo = c.peer_read_up_to > conv.peerReadUpTo ? c.peer_read_up_to
            : conv.peerReadUpTo;
        conv.updated = c.updated_ms || (c.last ? c.last.time_ms : 0);
    }
    renderConvs();
    if (S.chat) {
        updateReceipts();
        markReadSoon();
    }
}

/** After every login: the lists again (they may have changed while we were away). */
async function onLogin({ first }) {
    if (first)
        showApp();
    try {
        await Promise.all([loadGroups(), loadContacts()]);
        await loadConvs();
        if (S.chat)
            renderChatHeader();
    } catch (e) {
        toast(`Loading your conversations failed: ${e.message}`);
    }
}

// ---- views -------------------------------------------------------------------------

function showLogin(error = '') {
    $('login-view').hidden = false;
    $('app-view').hidden = true;
    $('logout').hidden = true;
    $('whoami').hidden = true;
    $('login-error').textContent = error;
    $('login-submit').disabled = false;
    ($('login-user').value ? $('login-token') : $('login-user')).focus();
}

function showApp() {
    $('login-view').hidden = true;
    $('app-view').hidden = false;
    $('logout').hidden = false;
    $('whoami').hidden = false;
    $('whoami').textContent = S.app === 'default' ? S.me : `${S.me} @ ${S.app}`;
    $('new-chat-user').focus();
}

function clearModel() {
    S.convs.clear();
    S.groups.clear();
    S.contacts.clear();
    S.typing.clear();
    resetChat();
    renderConvs();
    renderContacts();
}

// ---- login and logout --------------------------------------------------------------

async function login(app, user, token) {
    if (S.client)
        await S.client.logout();
    clearModel();
    const deviceId = await claimDeviceId();
    S.me = user;
    S.app = app || 'default';
    const client = new Client({ base: location.origin, key: S.config.key,
        wsPath: S.config.ws_path, app, user, token, deviceId,
        clientVersion: `cim-web ${S.config.version || ''}`.trim() });
    S.client = client;
    client.addEventListener('state', ev => client === S.client && showState(ev.detail));
    client.addEventListener('login', ev => client === S.client && onLogin(ev.detail));
    client.addEventListener('message', ev => client === S.client && onMessage(ev.detail));
    client.addEventListener('transient', ev => client === S.client && noteTyping(ev.detail.msg));
    client.addEventListener('event', ev => client === S.client && onEvent(ev.detail));
    client.addEventListener('fatal', ev => client === S.client && onFatal(ev.detail));
    client.start();
}

async function onLoginSubmit(ev) {
    ev.preventDefault();
    const app = $('login-app').value.trim() || 'default';
    const user = $('login-user').value.trim();
    const token = $('login-token').value.trim();
    if (!USER_RE.test(user) || !USER_RE.test(app)) {
        $('login-error').textContent = 'App and user ids are 1 to 64 of A–Z a–z 0–9 . _ @ -';
        return;
    }
    if (!token) {
        $('login-error').textContent = 'A token is needed (your app’s backend mints it).';
        $('login-token').focus();
        return;
    }
    $('login-error').textContent = '';
    $('login-submit').disabled = true;
    localStorage.setItem('cim.app', app);
    localStorage.setItem('cim.user', user);
    // This tab only: a reload logs in again, a new tab asks.
    sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ app, user, token }));
    await login(app, user, token);
}

async function onDevToken() {
    const app = $('login-app').value.trim() || 'default';
    const user = $('login-user').value.trim();
    if (!USER_RE.test(user)) {
        $('login-error').textContent = 'Type a user id first.';
        $('login-user').focus();
        return;
    }
    try {
        const r = await fetch(`/dev/token?user=${encodeURIComponent(user)}&app=${encodeURIComponent(app)}`);
        const j = await r.json();
        if (!r.ok)
            throw new Error(j.reason || `HTTP ${r.status}`);
        $('login-token').value = j.token;
        $('login-error').textContent = '';
        $('login-submit').focus();
    } catch (e) {
        $('login-error').textContent = `No development token: ${e.message}`;
    }
}

async function onLogout() {
    sessionStorage.removeItem(TOKEN_KEY);
    const c = S.client;
    S.client = null;
    if (c)
        await c.logout();
    S.me = '';
    clearModel();
    showState({ state: 'closed', reason: 'logged out' });
    $('login-token').value = '';
    showLogin();
}

// ---- start -------------------------------------------------------------------------

async function loadConfig() {
    const r = await fetch('/config.json', { cache: 'no-store' });
    if (!r.ok)
        throw new Error(`/config.json: HTTP ${r.status}`);
    return r.json();
}

async function main() {
    initSidebar();
    initChat();
    $('login-form').addEventListener('submit', onLoginSubmit);
    $('dev-token').addEventListener('click', onDevToken);
    $('logout').addEventListener('click', onLogout);
    $('reconnect').addEventListener('click', () => S.client && S.client.reconnectNow());
    $('toast').addEventListener('click', () => { $('toast').hidden = true; });
    window.addEventListener('online', () => S.client && S.client.reconnectNow());
    setInterval(() => {
        renderTyping();
        if (shownState && shownState.state === 'offline')
            renderState();
    }, 1000);
    // WebCrypto exists only in a secure context: https, or http on localhost/127.0.0.1.
    if (!window.isSecureContext || !crypto.subtle) {
        showLogin('This page needs a secure context for its cryptography: open it over https ' +
            '(a TLS proxy, docs/WEBSOCKET.md) or on localhost.');
        $('login-submit').disabled = true;
        return;
    }
    try {
        S.config = await loadConfig();
    } catch (e) {
        showLogin(`Cannot reach the server: ${e.message}`);
        $('login-submit').disabled = true;
        return;
    }
    try {
        await checkCrypto(S.config.key);
    } catch (e) {
        showLogin(`This browser cannot speak the protocol: ${e.message}. Current Chromium, ` +
            'Firefox and Safari can.');
        $('login-submit').disabled = true;
        return;
    }
    $('dev-token').hidden = !S.config.dev_tokens;
    $('server-info').textContent = `Server ${S.config.version || ''} · identity key ` +
        `${S.config.key.slice(0, 16)}… (pinned from this page’s origin)`;
    $('login-app').value = localStorage.getItem('cim.app') || 'default';
    $('login-user').value = localStorage.getItem('cim.user') || '';
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) {
        const { app, user, token } = JSON.parse(saved);
        login(app, user, token);
    } else {
        showLogin();
    }
}

// Handy in the console and for the browser tests: the page's model and client.
window.cim = { S, openChat };

main();
