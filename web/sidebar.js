// sidebar.js: the conversation list (newest first, unread counts, last message, typing,
// presence), the contacts with their presence, and the forms to start a chat, create or
// join a group and add a contact.

import { T, ConvType, MsgType } from './proto.js';
import { S, convTitle, describeBody, typingIn } from './model.js';
import { $, el, toast, formatTime, userList, USER_RE } from './ui.js';
import { openChat, renderChatHeader } from './chat.js';

let convsQueued = false;

/** Re-render the conversation list on the next frame (many changes make one render). */
export function renderConvs() {
    if (convsQueued)
        return;
    convsQueued = true;
    requestAnimationFrame(() => {
        convsQueued = false;
        drawConvs();
    });
}

function presenceDot(user) {
    const c = S.contacts.get(user);
    if (!c)
        return null;
    return el('span', { class: 'presence', dataset: { online: c.online ? '1' : '0' },
        title: c.online ? 'online' : 'offline' },
    el('span', { class: 'visually-hidden', text: c.online ? ' (online)' : ' (offline)' }));
}

/** Who said the last message, when the list should say it. */
function lastPrefix(c) {
    const m = c.last;
    if (m.msg_type === MsgType.SYSTEM)
        return '';
    if (m.from === S.me)
        return 'You: ';
    return c.type === ConvType.GROUP ? `${m.from}: ` : '';
}

function convItem(c) {
    const typing = typingIn(c.key);
    const last = typing.length ? `${typing.join(', ')} typing…`
        : c.last ? lastPrefix(c) + describeBody(c.last) : '';
    const open = S.chat && S.chat.key === c.key;
    const btn = el('button', { type: 'button', class: 'conv', dataset: { key: c.key },
        'aria-current': open ? 'true' : null, onclick: () => openChat(c.type, c.peer) },
    c.type === ConvType.DIRECT ? presenceDot(c.peer) : el('span', { class: 'group-mark',
        'aria-hidden': 'true', text: '#' }),
    el('span', { class: 'name', text: convTitle(c) }),
    el('time', { class: 'when', text: formatTime(c.updated) }),
    el('span', { class: typing.length ? 'last typing-note' : 'last', text: last }),
    c.unread > 0 ? el('span', { class: 'badge' }, String(c.unread),
        el('span', { class: 'visually-hidden', text: ' unread' })) : null);
    return el('li', {}, btn);
}

function drawConvs() {
    const list = $('conv-list');
    const focusedKey = document.activeElement && document.activeElement.dataset
        ? document.activeElement.dataset.key : null;
    const convs = [...S.convs.values()].filter(c => c.last || c.unread || c.type === ConvType.GROUP)
        .sort((a, b) => b.updated - a.updated);
    list.replaceChildren(...convs.map(convItem));
    $('conv-empty').hidden = convs.length > 0;
    const total = convs.reduce((n, c) => n + c.unread, 0);
    const badge = $('total-unread');
    badge.hidden = total === 0;
    badge.textContent = total ? `${total} unread` : '';
    document.title = total ? `(${total}) cim` : 'cim';
    // Re-rendering replaced the buttons: keep the keyboard where it was.
    if (focusedKey) {
        const again = list.querySelector(`[data-key="${CSS.escape(focusedKey)}"]`);
        if (again)
            again.focus();
    }
}

export function renderContacts() {
    const list = $('contact-list');
    const users = [...S.contacts.keys()].sort();
    list.replaceChildren(...users.map(u => {
        const c = S.contacts.get(u);
        return el('li', { dataset: { user: u, online: c.online ? '1' : '0' } },
            presenceDot(u),
            el('button', { type: 'button', class: 'link', onclick: () => openChat(ConvType.DIRECT, u),
                'aria-label': `Chat with ${u}` }, u),
            el('span', { class: 'state', text: c.blocked ? 'blocked' : c.online ? 'online' : 'offline' }),
            el('button', { type: 'button', class: 'small icon', 'aria-label': `Remove contact ${u}`,
                title: 'Remove contact', onclick: () => removeContact(u) }, '×'));
    }));
    if (!users.length)
        list.append(el('li', { class: 'hint', text: 'Contacts show who is online.' }));
}

export async function loadContacts() {
    const rsp = await S.client.call(T.CONTACT_LIST);
    S.contacts.clear();
    for (const c of rsp.contacts)
        S.contacts.set(c.user, { online: c.online, blocked: c.blocked });
    renderContacts();
    renderConvs();
}

export async function addContact(user) {
    try {
        await S.client.call(T.CONTACT_ADD, { user });
        await loadContacts();
        renderChatHeader();
    } catch (e) {
        toast(`Cannot add ${user}: ${e.message}`);
    }
}

async function removeContact(user) {
    try {
        await S.client.call(T.CONTACT_REMOVE, { user });
        S.contacts.delete(user);
        renderContacts();
        renderConvs();
        renderChatHeader();
    } catch (e) {
        toast(`Cannot remove ${user}: ${e.message}`);
    }
}

export async function loadGroups() {
    const rsp = await S.client.call(T.GROUP_LIST);
    for (const g of rsp.groups)
        S.groups.set(g.group_id, g);
    renderConvs();
}

function onNewChat(ev) {
    ev.preventDefault();
    const input = $('new-chat-user');
    const user = input.value.trim();
    if (!USER_RE.test(user)) {
        toast('A user id is 1 to 64 of A–Z a–z 0–9 . _ @ -');
        input.focus();
        return;
    }
    input.value = '';
    openChat(ConvType.DIRECT, user);
}

async function onNewGroup(ev) {
    ev.preventDefault();
    const name = $('group-name').value.trim();
    const members = userList($('group-members').value);
    if (!name) {
        toast('Give the group a name');
        $('group-name').focus();
        return;
    }
    try {
        const rsp = await S.client.call(T.GROUP_CREATE, { name, members,
            open: $('group-open').checked });
        S.groups.set(rsp.group.group_id, rsp.group);
        ev.target.reset();
        $('new-group').open = false;
        toast(`Group “${rsp.group.name}” created (id ${rsp.group.group_id})`, 'notice');
        openChat(ConvType.GROUP, rsp.group.group_id);
    } catch (e) {
        toast(`Cannot create the group: ${e.message}`);
    }
}

async function onJoinGroup(ev) {
    ev.preventDefault();
    const id = $('join-group-id').value.trim();
    try {
        const rsp = await S.client.call(T.GROUP_JOIN, { group_id: id });
        S.groups.set(rsp.group.group_id, rsp.group);
        ev.target.reset();
        $('join-group').open = false;
        openChat(ConvType.GROUP, rsp.group.group_id);
    } catch (e) {
        toast(`Cannot join group ${id}: ${e.message}`);
    }
}

function onAddContact(ev) {
    ev.preventDefault();
    const input = $('add-contact-user');
    const user = input.value.trim();
    if (!USER_RE.test(user)) {
        toast('A user id is 1 to 64 of A–Z a–z 0–9 . _ @ -');
        return;
    }
    input.value = '';
    addContact(user);
}

export function initSidebar() {
    $('new-chat').addEventListener('submit', onNewChat);
    $('new-group-form').addEventListener('submit', onNewGroup);
    $('join-group-form').addEventListener('submit', onJoinGroup);
    $('add-contact').addEventListener('submit', onAddContact);
}
