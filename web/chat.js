// chat.js: the open conversation — history paged backwards as the reader scrolls up,
// live messages, sending (with a retry that reuses the client_msg_id, so a resend is never
// stored twice), recall, read receipts (READ out, EVENT{READ} in), typing indicators
// (transient CUSTOM "typing" sends, as the CLI does) and the group's members.

import { T, Code, ConvType, MsgType, FLAG_RECALLED, utf8 } from './proto.js';
import { S, convKey, getConv, convTitle, describeBody, countsAsUnread, typingIn } from './model.js';
import { $, el, toast, formatTime, isoTime, isNarrow, userList } from './ui.js';
import { renderConvs, addContact } from './sidebar.js';

const PAGE = 30;                 // messages per HISTORY page
const TYPING_EVERY_MS = 3000;    // at most one typing indicator per this while typing
const TYPING_SHOWN_MS = 5000;    // how long a received indicator shows
const RECALL_OFFER_MS = 10 * 60 * 1000; // offer Recall on own messages this young (the server decides)

let lastTypingSent = 0;
let readTimer = null;
let readPending = null;   // the chat a scheduled READ is for

// ---- opening and closing -----------------------------------------------------------

export function openChat(type, peer) {
    const key = convKey(type, peer);
    if (S.chat && S.chat.key === key) {
        showChatPane();
        markReadSoon();
        $('composer-text').focus();
        return;
    }
    flushRead();
    getConv(type, peer);
    S.chat = { key, type, peer, items: [], byId: new Map(), hasMore: true, loading: false };
    $('message-list').replaceChildren();
    $('history-start').hidden = true;
    $('load-older').hidden = true;
    $('group-panel').hidden = true;
    $('composer-text').value = '';
    $('chat').hidden = false;
    $('no-chat').hidden = true;
    showChatPane();
    renderChatHeader();
    renderTyping();
    renderConvs();
    loadOlder().then(() => {
        scrollToEnd();
        markReadSoon();
    });
    $('composer-text').focus();
}

function showChatPane() {
    document.body.classList.add('show-chat');
}

/** Back to the list (the phone layout shows one pane at a time). */
export function closeChat() {
    document.body.classList.remove('show-chat');
    const btn = S.chat && document.querySelector(`#conv-list [data-key="${CSS.escape(S.chat.key)}"]`);
    if (btn)
        btn.focus();
    else
        $('new-chat-user').focus();
}

/** Close the chat of a conversation that is gone (logout). */
export function resetChat() {
    S.chat = null;
    $('chat').hidden = true;
    $('no-chat').hidden = false;
    document.body.classList.remove('show-chat');
}

/** Is the open chat in front of the user right now (for read receipts)? */
export function chatInView() {
    return S.chat && document.visibilityState === 'visible' &&
        (!isNarrow() || document.body.classList.contains('show-chat'));
}

// ---- header ------------------------------------------------------------------------

export function renderChatHeader() {
    const chat = S.chat;
    if (!chat)
        return;
    const conv = getConv(chat.type, chat.peer);
    $('chat-title').textContent = convTitle(conv);
    $('chat').setAttribute('aria-label', `Chat with ${convTitle(conv)}`);
    const sub = $('chat-sub');
    const actions = $('chat-actions');
    actions.replaceChildren();
    if (chat.type === ConvType.GROUP) {
        const g = S.groups.get(chat.peer);
        sub.textContent = conv.left ? 'You are no longer a member'
            : `${g ? `${g.member_count} members · ` : ''}group id ${chat.peer}`;
        if (!conv.left) {
            actions.append(
                el('button', { type: 'button', class: 'small', id: 'members-toggle',
                    'aria-expanded': String(!$('group-panel').hidden), 'aria-controls': 'group-panel',
                    onclick: toggleMembers }, 'Members'),
                el('button', { type: 'button', class: 'small', id: 'leave-group',
                    onclick: leaveGroup }, 'Leave'));
        }
    } else {
        const c = S.contacts.get(chat.peer);
        sub.replaceChildren();
        if (c) {
            sub.append(el('span', { class: 'presence', dataset: { online: c.online ? '1' : '0' } }),
                el('span', { id: 'chat-presence', text: c.online ? 'online' : 'offline' }));
        } else {
            sub.append(el('button', { type: 'button', class: 'link', id: 'chat-add-contact',
                onclick: () => addContact(chat.peer) }, 'Add to contacts to see when they are online'));
        }
    }
    $('composer-text').disabled = !!conv.left;
    $('send').disabled = !!conv.left;
}

async function toggleMembers() {
    const panel = $('group-panel');
    panel.hidden = !panel.hidden;
    renderChatHeader();
    if (!panel.hidden) {
        await loadMembers();
        $('group-add-users').focus();
    }
}

export async function loadMembers() {
    const chat = S.chat;
    if (!chat || chat.type !== ConvType.GROUP || $('group-panel').hidden)
        return;
    try {
        const rsp = await S.client.call(T.GROUP_MEMBERS, { group_id: chat.peer });
        if (rsp.group)
            S.groups.set(rsp.group.group_id, rsp.group);
        const owner = rsp.group ? rsp.group.owner : '';
        $('group-members-list').textContent = 'Members: ' +
            rsp.members.map(u => (u === owner ? `${u} (owner)` : u)).join(', ');
    } catch (e) {
        $('group-members-list').textContent = `Members: ${e.message}`;
    }
}

async function onGroupAdd(ev) {
    ev.preventDefault();
    const chat = S.chat;
    const users = userList($('group-add-users').value);
    if (!chat || !users.length)
        return;
    try {
        await S.client.call(T.GROUP_ADD, { group_id: chat.peer, users });
        $('group-add-users').value = '';
        toast(`Added ${users.join(', ')}`, 'notice');
        await loadMembers();
    } catch (e) {
        toast(`Cannot add ${users.join(', ')}: ${e.message}`);
    }
}

async function leaveGroup() {
    const chat = S.chat;
    if (!chat)
        return;
    try {
        await S.client.call(T.GROUP_LEAVE, { group_id: chat.peer });
        getConv(chat.type, chat.peer).left = true;
        $('group-panel').hidden = true;
        renderChatHeader();
        toast(`You left ${convTitle(getConv(chat.type, chat.peer))}`, 'notice');
    } catch (e) {
        toast(`Cannot leave: ${e.message}`);
    }
}

// ---- messages ----------------------------------------------------------------------

function isRecalled(m) {
    return (m.flags & FLAG_RECALLED) !== 0;
}

function receiptText(m) {
    const conv = S.convs.get(S.chat.key);
    return conv && m.msg_id <= conv.peerReadUpTo ? 'Read' : 'Sent';
}

function messageItem(m) {
    const id = m.msg_id.toString();
    if (m.msg_type === MsgType.SYSTEM)
        return el('li', { class: 'msg system', dataset: { id } },
            el('p', { class: 'body', text: describeBody(m) }));
    const mine = m.from === S.me;
    const recalled = isRecalled(m);
    const meta = el('span', { class: 'meta' },
        el('time', { datetime: isoTime(m.time_ms), text: formatTime(m.time_ms) }));
    if (mine && S.chat.type === ConvType.DIRECT && !recalled)
        meta.append(el('span', { class: 'receipt', text: receiptText(m) }));
    if (mine && !recalled && Date.now() - m.time_ms < RECALL_OFFER_MS)
        meta.append(el('button', { type: 'button', class: 'link recall',
            'aria-label': `Recall your message “${describeBody(m).slice(0, 40)}”`,
            onclick: () => recall(m) }, 'Recall'));
    return el('li', { class: `msg ${mine ? 'mine' : 'theirs'}${recalled ? ' recalled' : ''}`,
        dataset: { id } },
    el('div', { class: 'bubble' },
        mine ? null : el('span', { class: 'from', text: m.from }),
        el('p', { class: 'body', text: describeBody(m) }),
        meta));
}

/** Insert @p m in id order (pending sends stay last). @return false when already there. */
function insertMessage(m) {
    const chat = S.chat;
    const id = m.msg_id.toString();
    if (chat.byId.has(id))
        return false;
    let i = chat.items.length;
    while (i > 0 && chat.items[i - 1].msg_id > m.msg_id)
        i--;
    chat.items.splice(i, 0, m);
    const li = messageItem(m);
    chat.byId.set(id, li);
    const next = chat.items[i + 1];
    const list = $('message-list');
    if (next)
        list.insertBefore(li, chat.byId.get(next.msg_id.toString()));
    else
        list.insertBefore(li, list.querySelector('li[data-pending]'));
    return true;
}

function nearEnd() {
    const box = $('messages');
    return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
}

function scrollToEnd() {
    const box = $('messages');
    box.scrollTop = box.scrollHeight;
}

/** Load the page before the oldest message shown (HISTORY pages backwards). */
export async function loadOlder() {
    const chat = S.chat;
    if (!chat || chat.loading || !chat.hasMore)
        return;
    chat.loading = true;
    const box = $('messages');
    const before = chat.items.length ? chat.items[0].msg_id : 0n;
    try {
        const rsp = await S.client.call(T.HISTORY, { conv_type: chat.type, peer: chat.peer,
            before_msg_id: before, limit: PAGE });
        if (S.chat !== chat)
            return;
        // Keep what the reader looks at in place while older messages go in above it.
        const fromBottom = box.scrollHeight - box.scrollTop;
        for (const m of rsp.messages) {
            if (m.msg_type !== MsgType.RECALL)
                insertMessage(m);
        }
        chat.hasMore = rsp.has_more;
        box.scrollTop = box.scrollHeight - fromBottom;
    } catch (e) {
        if (S.chat === chat) {
            chat.hasMore = false;
            // A chat with someone new has no history yet: nothing to say then.
            if (e.code !== Code.NOT_FOUND)
                toast(`History: ${e.message}`);
        }
    } finally {
        chat.loading = false;
        if (S.chat === chat) {
            $('load-older').hidden = !chat.hasMore;
            $('history-start').hidden = chat.hasMore || chat.items.length === 0;
        }
    }
}

function onScroll() {
    if ($('messages').scrollTop < 80)
        loadOlder();
}

/** A new message in the open chat (pushed, synced, or sent from here). */
export function showMessage(m) {
    if (!S.chat || m.msg_type === MsgType.RECALL)
        return;
    const stick = nearEnd() || m.from === S.me;
    if (insertMessage(m) && stick)
        scrollToEnd();
    renderTyping();
    if (countsAsUnread(m))
        markReadSoon();
}

/** Mark message @p msgId recalled wherever it shows. */
export function applyRecall(msgId) {
    const chat = S.chat;
    if (!chat)
        return;
    const id = msgId.toString();
    const m = chat.items.find(x => x.msg_id === msgId);
    if (!m)
        return;
    m.flags |= FLAG_RECALLED;
    m.body = new Uint8Array(0);
    const li = messageItem(m);
    chat.byId.get(id).replaceWith(li);
    chat.byId.set(id, li);
}

/** Show "Read" on own messages up to the peer's read cursor (DIRECT). */
export function updateReceipts() {
    const chat = S.chat;
    if (!chat || chat.type !== ConvType.DIRECT)
        return;
    for (const m of chat.items) {
        if (m.from !== S.me)
            continue;
        const r = chat.byId.get(m.msg_id.toString()).querySelector('.receipt');
        if (r)
            r.textContent = receiptText(m);
    }
}

async function recall(m) {
    try {
        await S.client.call(T.RECALL, { msg_id: m.msg_id });
        applyRecall(m.msg_id);
        const conv = S.convs.get(S.chat.key);
        if (conv && conv.last && conv.last.msg_id === m.msg_id)
            conv.last = { ...conv.last, flags: conv.last.flags | FLAG_RECALLED };
        renderConvs();
    } catch (e) {
        toast(`Cannot recall: ${e.message}`);
    }
}

// ---- reading -----------------------------------------------------------------------

/** Send READ for the open chat soon (a burst of messages makes one READ), if in view. */
export function markReadSoon() {
    if (!chatInView())
        return;
    clearTimeout(readTimer);
    readPending = S.chat;
    readTimer = setTimeout(() => markRead(readPending), 300);
}

/** Leaving a chat: what was seen there is read now, not never. */
function flushRead() {
    if (!readPending)
        return;
    clearTimeout(readTimer);
    markRead(readPending);
}

async function markRead(chat) {
    readPending = null;
    if (!chat || !S.client || !S.client.online)
        return;
    const conv = getConv(chat.type, chat.peer);
    const newest = chat.items.length ? chat.items[chat.items.length - 1].msg_id : 0n;
    const theirs = chat.items.some(m => countsAsUnread(m) && m.msg_id > conv.readUpTo);
    if (!theirs && conv.unread === 0)
        return;
    try {
        await S.client.call(T.READ, { conv_type: chat.type, peer: chat.peer, up_to_msg_id: newest });
        if (newest > conv.readUpTo)
            conv.readUpTo = newest;
        conv.unread = 0;
        renderConvs();
    } catch (e) {
        // Nothing to read yet (NOT_FOUND) or offline: the next message tries again.
    }
}

// ---- sending -----------------------------------------------------------------------

function newClientMsgId() {
    const r = crypto.getRandomValues(new Uint8Array(8));
    return `web-${Date.now().toString(36)}-${Array.from(r, b => b.toString(16).padStart(2, '0')).join('')}`;
}

function pendingItem(text) {
    return el('li', { class: 'msg mine pending', dataset: { pending: '1' } },
        el('div', { class: 'bubble' }, el('p', { class: 'body', text }),
            el('span', { class: 'meta' }, el('span', { class: 'receipt', text: 'Sending…' }))));
}

async function sendText(text, cmid = newClientMsgId(), li = null) {
    const chat = S.chat;
    if (!li) {
        li = pendingItem(text);
        $('message-list').append(li);
        scrollToEnd();
    }
    const body = utf8(text);
    try {
        const rsp = await S.client.call(T.SEND, { client_msg_id: cmid, conv_type: chat.type,
            to: chat.peer, msg_type: MsgType.TEXT, body });
        li.remove();
        const m = { msg_id: rsp.msg_id, conv_type: chat.type, from: S.me, to: chat.peer,
            msg_type: MsgType.TEXT, body, time_ms: rsp.time_ms, client_msg_id: cmid, flags: 0 };
        S.client.noteOwn(rsp.msg_id);
        noteSent(chat, m);
    } catch (e) {
        li.classList.add('failed');
        const meta = li.querySelector('.meta');
        meta.replaceChildren(el('span', { class: 'receipt', text: `Not sent: ${e.message}` }),
            el('button', { type: 'button', class: 'link', onclick: () => {
                li.classList.remove('failed');
                meta.replaceChildren(el('span', { class: 'receipt', text: 'Sending…' }));
                sendText(text, cmid, li);
            } }, 'Retry'));
        toast(`Not sent: ${e.message}`);
    }
}

/** Our own message is stored: into the conversation, and the chat if still open. */
function noteSent(chat, m) {
    const conv = getConv(chat.type, chat.peer);
    if (!conv.last || m.msg_id > conv.last.msg_id) {
        conv.last = m;
        conv.updated = m.time_ms;
    }
    conv.unread = 0; // sending moves one's own read cursor (PROTOCOL-NOTES 20)
    if (m.msg_id > conv.readUpTo)
        conv.readUpTo = m.msg_id;
    if (S.chat === chat)
        showMessage(m);
    renderConvs();
}

function onSubmit(ev) {
    ev.preventDefault();
    const box = $('composer-text');
    const text = box.value.trim();
    if (!text || !S.chat)
        return;
    box.value = '';
    fitComposer();
    lastTypingSent = 0;
    sendText(text);
    box.focus();
}

function onKeyDown(ev) {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        $('composer').requestSubmit();
    }
}

/** The message box grows with its text, up to its CSS max-height. */
function fitComposer() {
    const box = $('composer-text');
    box.style.height = 'auto';
    box.style.height = `${box.scrollHeight + 2}px`;
}

/** Tell the peer (or group) we are typing: a transient CUSTOM "typing", now and then. */
function onInput() {
    fitComposer();
    const chat = S.chat;
    const now = Date.now();
    if (!chat || !S.client || !S.client.online || now - lastTypingSent < TYPING_EVERY_MS ||
        !$('composer-text').value.trim())
        return;
    lastTypingSent = now;
    S.client.call(T.SEND, { client_msg_id: newClientMsgId(), conv_type: chat.type, to: chat.peer,
        msg_type: MsgType.CUSTOM, body: utf8('typing'), transient: true }).catch(() => {});
}

// ---- typing indicators -------------------------------------------------------------

/** A transient CUSTOM message: someone is typing (from one of our own devices: ignored). */
export function noteTyping(m) {
    if (m.msg_type !== MsgType.CUSTOM || m.from === S.me)
        return;
    const key = m.conv_type === ConvType.GROUP ? convKey(ConvType.GROUP, m.to)
        : convKey(ConvType.DIRECT, m.from);
    if (!S.typing.has(key))
        S.typing.set(key, new Map());
    S.typing.get(key).set(m.from, Date.now() + TYPING_SHOWN_MS);
    renderTyping();
    renderConvs();
    setTimeout(() => { renderTyping(); renderConvs(); }, TYPING_SHOWN_MS + 50);
}

export function renderTyping() {
    const p = $('typing');
    const users = S.chat ? typingIn(S.chat.key) : [];
    p.textContent = users.length === 0 ? ''
        : users.length === 1 ? `${users[0]} is typing…` : `${users.join(', ')} are typing…`;
}

export function initChat() {
    $('composer').addEventListener('submit', onSubmit);
    $('composer-text').addEventListener('keydown', onKeyDown);
    $('composer-text').addEventListener('input', onInput);
    $('messages').addEventListener('scroll', onScroll, { passive: true });
    $('load-older').addEventListener('click', () => loadOlder());
    $('back').addEventListener('click', closeChat);
    $('group-add-form').addEventListener('submit', onGroupAdd);
    document.addEventListener('keydown', ev => {
        if (ev.key === 'Escape' && document.body.classList.contains('show-chat') && isNarrow())
            closeChat();
    });
    document.addEventListener('visibilitychange', () => markReadSoon());
    window.addEventListener('resize', () => markReadSoon());
}
