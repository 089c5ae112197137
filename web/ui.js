// ui.js: small DOM helpers shared by the views: element lookup and creation, the error
// toast, the screen-reader announcer, time formatting.

export const $ = id => document.getElementById(id);

/** Create an element: el('li', {class: 'msg', dataset: {id: '1'}}, 'text', child...). */
export function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false)
            continue;
        if (k === 'class')
            e.className = v;
        else if (k === 'dataset')
            Object.assign(e.dataset, v);
        else if (k.startsWith('on'))
            e.addEventListener(k.slice(2), v);
        else if (k === 'text')
            e.textContent = v;
        else
            e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) {
        if (c !== null && c !== undefined && c !== false)
            e.append(c);
    }
    return e;
}

let toastTimer = null;

/** Show an error (or notice) where everyone sees and hears it (role=alert). */
export function toast(text, kind = 'error') {
    const t = $('toast');
    t.textContent = text;
    t.dataset.kind = kind;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, kind === 'error' ? 8000 : 4000);
}

/** Say something to screen readers only (aria-live polite). */
export function announce(text) {
    const a = $('announce');
    // Clearing first makes a repeat of the same text be read again.
    a.textContent = '';
    setTimeout(() => { a.textContent = text; }, 50);
}

export function formatTime(ms) {
    if (!ms)
        return '';
    const d = new Date(ms);
    const now = new Date();
    const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    if (d.toDateString() === now.toDateString())
        return hm;
    return `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${hm}`;
}

export function isoTime(ms) {
    return ms ? new Date(ms).toISOString() : '';
}

/** True when the layout shows one pane at a time (phone-sized viewport). */
export function isNarrow() {
    return window.matchMedia('(max-width: 720px)').matches;
}

/** Split "bob, carol dave" into user ids. */
export function userList(text) {
    return text.split(/[\s,;]+/).map(s => s.trim()).filter(Boolean);
}

export const USER_RE = /^[A-Za-z0-9._@-]{1,64}$/;
