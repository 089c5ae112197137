// model.js: what the page knows — conversations, groups, contacts, typing — and how a
// message reads as text. The views render from here; app.js feeds it from the Client.

import { ConvType, MsgType, GroupEventKind, FLAG_RECALLED, MSG_TYPE_NAMES, decode, fromUtf8 }
    from './proto.js';

export const S = {
    config: null,
    client: null,
    me: '',
    app: '',
    convs: new Map(),     // key -> {type, peer, last, unread, readUpTo, peerReadUpTo, updated, left}
    groups: new Map(),    // group id -> Group
    contacts: new Map(),  // user -> {online, blocked}
    typing: new Map(),    // conv key -> Map(user -> until ms)
    chat: null,           // the open conversation (chat.js)
};

export function convKey(type, peer) {
    return `${type}:${peer}`;
}

/** The conversation a message belongs to, as this user sees it. */
export function convOfMsg(m) {
    if (m.conv_type === ConvType.GROUP)
        return { type: ConvType.GROUP, peer: m.to };
    return { type: ConvType.DIRECT, peer: m.from === S.me ? m.to : m.from };
}

export function getConv(type, peer) {
    const key = convKey(type, peer);
    let c = S.convs.get(key);
    if (!c) {
        c = { key, type, peer, last: null, unread: 0, readUpTo: 0n, peerReadUpTo: 0n,
            updated: 0, left: false };
        S.convs.set(key, c);
    }
    return c;
}

export function convTitle(c) {
    if (c.type === ConvType.GROUP) {
        const g = S.groups.get(c.peer);
        return g && g.name ? g.name : `Group ${c.peer}`;
    }
    return c.peer;
}

/** Messages that count as unread when they come from someone else (PROTOCOL-NOTES 20). */
export function countsAsUnread(m) {
    return m.msg_type >= MsgType.TEXT && m.msg_type <= MsgType.CUSTOM && m.from !== S.me;
}

function safeDecode(name, body) {
    try {
        return decode(name, body);
    } catch (e) {
        return null;
    }
}

export function groupEventOf(m) {
    return m.msg_type === MsgType.SYSTEM && m.conv_type === ConvType.GROUP
        ? safeDecode('GroupEvent', m.body) : null;
}

export function recallEventOf(m) {
    return m.msg_type === MsgType.RECALL ? safeDecode('RecallEvent', m.body) : null;
}

function names(users) {
    return users.map(u => (u === S.me ? 'you' : u)).join(', ');
}

function who(u) {
    return u === S.me ? 'You' : u;
}

/** A group event as a sentence. */
export function describeGroupEvent(ev) {
    const g = ev.group ? `“${ev.group.name}”` : 'the group';
    switch (ev.kind) {
    case GroupEventKind.CREATED:
        return `${who(ev.actor)} created ${g}` + (ev.users.length ? ` with ${names(ev.users)}` : '');
    case GroupEventKind.JOINED: return `${who(ev.actor)} joined`;
    case GroupEventKind.ADDED: return `${who(ev.actor)} added ${names(ev.users)}`;
    case GroupEventKind.LEFT: return `${who(ev.actor)} left`;
    case GroupEventKind.KICKED: return `${who(ev.actor)} removed ${names(ev.users)}`;
    case GroupEventKind.DISMISSED: return `${who(ev.actor)} dismissed ${g}`;
    default: return 'the group changed';
    }
}

/** The text a message shows: its body, or what it is when it is not text. */
export function describeBody(m) {
    if (m.flags & FLAG_RECALLED)
        return 'message recalled';
    if (m.msg_type === MsgType.TEXT)
        return fromUtf8(m.body);
    if (m.msg_type === MsgType.CUSTOM)
        return `[custom] ${fromUtf8(m.body)}`;
    if (m.msg_type === MsgType.SYSTEM) {
        const ev = groupEventOf(m);
        return ev ? describeGroupEvent(ev) : fromUtf8(m.body);
    }
    if (m.msg_type === MsgType.RECALL)
        return 'message recalled';
    return `[${MSG_TYPE_NAMES[m.msg_type] || 'message'}, ${m.body.length} bytes]`;
}

/** Does group event @p ev take this user out of the group? */
export function removesMe(ev) {
    return ev.kind === GroupEventKind.DISMISSED ||
        (ev.kind === GroupEventKind.LEFT && ev.actor === S.me) ||
        (ev.kind === GroupEventKind.KICKED && ev.users.includes(S.me));
}

export function addsMe(ev) {
    return (ev.kind === GroupEventKind.CREATED && (ev.actor === S.me || ev.users.includes(S.me))) ||
        (ev.kind === GroupEventKind.JOINED && ev.actor === S.me) ||
        (ev.kind === GroupEventKind.ADDED && ev.users.includes(S.me));
}

/** Users typing in conversation @p key now (expired entries dropped). */
export function typingIn(key) {
    const m = S.typing.get(key);
    if (!m)
        return [];
    const now = Date.now();
    for (const [u, until] of m) {
        if (until <= now)
            m.delete(u);
    }
    return [...m.keys()];
}
