// run.mjs: the browser client (web/) end to end in Debian's headless Chromium, driven by
// playwright-core, against a real cimd: two browser users (alice on a desktop viewport,
// bob on a phone-sized one), a TCP user (carol, through the cim CLI on libcim) and an app
// backend (the admin API). Run: `node test/browser/run.mjs` after `scons` and `npm ci` in
// test/browser (docs/WEBCLIENT.md). Ends with "browser: N passed, N failed"; exit 0 only
// when every test passed.

import { chromium } from 'playwright-core';
import path from 'node:path';
import { rmSync, mkdirSync } from 'node:fs';
import { Server, TcpUser, Runner, OUT, HEARTBEAT_S, until, check, sleep } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// As root, without the sandbox; and no background traffic to the outside world.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-dev-shm-usage'];
const WAIT = 10000;

const r = new Runner();
const srv = new Server();
const pageErrors = [];
let browser;

rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });

// ---- page helpers ------------------------------------------------------------------

async function newUserPage(ctx, name) {
    const page = await ctx.newPage();
    page.on('pageerror', e => pageErrors.push(`${name}: ${e.message}`));
    page.setDefaultTimeout(WAIT);
    await page.goto(srv.url);
    return page;
}

async function shot(page, name) {
    await page.screenshot({ path: path.join(OUT, `${name}.png`) });
}

async function loginWithDevToken(page, user) {
    await page.fill('#login-user', user);
    await page.click('#dev-token');
    await until(`${user}: a development token in the form`,
        () => page.inputValue('#login-token').then(v => v.startsWith('v1.')));
    await page.click('#login-submit');
    await online(page, user);
}

function online(page, who, ms = WAIT) {
    return page.waitForSelector('#status[data-state="online"]', { timeout: ms })
        .catch(() => page.textContent('#status').then(s => {
            throw new Error(`${who} not online: status "${s}"`);
        }));
}

/** Open a direct chat through the "Chat with user" form. */
async function openDirect(page, user) {
    await backToList(page);
    await page.fill('#new-chat-user', user);
    await page.press('#new-chat-user', 'Enter');
    await page.waitForFunction(u => document.getElementById('chat-title').textContent === u, user);
}

/** On the phone layout the list and the chat take turns. */
async function backToList(page) {
    if (await page.isVisible('#back'))
        await page.click('#back');
}

async function openConv(page, key) {
    await backToList(page);
    await page.click(`#conv-list [data-key="${key}"]`);
}

async function send(page, text) {
    await page.fill('#composer-text', text);
    await page.press('#composer-text', 'Enter');
    await msgItem(page, text, '.mine:not(.pending)').waitFor();
}

function msgItem(page, text, extra = '') {
    return page.locator(`#message-list li${extra}`, { hasText: text }).last();
}

function convItem(page, key) {
    return page.locator(`#conv-list [data-key="${key}"]`);
}

/** The text of what @p loc matches now, '' when nothing (no auto-waiting, for polling). */
async function textNow(loc) {
    return (await loc.allTextContents()).join(' ');
}

async function bodies(page) {
    return page.$$eval('#message-list li .body', els => els.map(e => e.textContent));
}

// ---- the run -----------------------------------------------------------------------

async function main() {
    await srv.start();
    console.log(`cimd: tcp ${srv.ports.tcp}, ws ${srv.ports.ws}, admin ${srv.ports.admin}; ` +
        `data ${srv.data}`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    const aliceCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const bobCtx = await browser.newContext({ viewport: { width: 390, height: 844 },
        hasTouch: true });
    const alice = await newUserPage(aliceCtx, 'alice');
    const bob = await newUserPage(bobCtx, 'bob');
    r.onFail = async name => {
        const tag = name.replace(/\W+/g, '-');
        await shot(alice, `fail-${tag}-alice`);
        await shot(bob, `fail-${tag}-bob`);
    };
    const carol = await new TcpUser(srv, 'carol').init();
    await srv.api('PUT', '/v1/apps/default/users/dave');
    let carolListen = carol.listen('carol-listen');
    let groupId = null;

    await r.test('login: a wrong token is refused and said so; a development token logs in', async () => {
        await shot(alice, 'desktop-login');
        await bob.fill('#login-user', 'bob');
        await bob.fill('#login-token', 'v1.1.forged');
        await bob.click('#login-submit');
        await until('bob sees why the login failed', async () =>
            /UNAUTHORIZED/.test(await bob.textContent('#login-error')));
        check(await bob.isVisible('#login-form'), 'bob left the login form on a bad token');
        await loginWithDevToken(bob, 'bob');
        await loginWithDevToken(alice, 'alice');
        check((await alice.textContent('#whoami')) === 'alice', 'whoami does not say alice');
    });

    await r.test('accessible markup: every control is labelled, messages are a log, news is announced',
        async () => {
            const unlabelled = await alice.$$eval('input, textarea, button', els => els
                .filter(e => !e.closest('[hidden]'))
                .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') &&
                    !e.textContent.trim() && !e.getAttribute('placeholder'))
                .map(e => e.id || e.outerHTML.slice(0, 60)));
            check(unlabelled.length === 0, `unlabelled controls: ${unlabelled.join(', ')}`);
            check(await alice.getAttribute('#messages', 'role') === 'log', '#messages is not a log');
            check(await alice.getAttribute('#announce', 'aria-live') === 'polite',
                'no polite live region for incoming messages');
            check(await alice.getAttribute('#toast', 'role') === 'alert', 'errors are not alerts');
        });

    await r.test('direct chat between two browsers; live conversation list with unread count',
        async () => {
            await openDirect(alice, 'bob');
            await send(alice, 'hi bob');
            const c = convItem(bob, '1:alice');
            await c.waitFor();
            await until('bob\'s list shows 1 unread from alice with the last message', async () =>
                /hi bob/.test(await textNow(c)) &&
                (await textNow(c.locator('.badge'))).startsWith('1'));
            await shot(bob, 'phone-list');
            // Her SEND_ACK and his push race; wait for "Sent", which must not be "Read".
            await until('alice\'s message shows "Sent", not read before bob opened it',
                async () => await msgItem(alice, 'hi bob').locator('.receipt').textContent() === 'Sent');
            await openConv(bob, '1:alice');
            await msgItem(bob, 'hi bob', '.theirs').waitFor();
        });

    await r.test('read receipt: bob opened the chat (READ), alice sees "Read"; bob replies', async () => {
        await until('"Read" under alice\'s message', async () =>
            await textNow(msgItem(alice, 'hi bob').locator('.receipt')) === 'Read');
        await until('bob\'s unread count for alice back to 0', async () =>
            await convItem(bob, '1:alice').locator('.badge').count() === 0);
        await send(bob, 'hi alice');
        await msgItem(alice, 'hi alice', '.theirs').waitFor();
    });

    await r.test(`heartbeat: idle pages PING and stay logged in past 3 × heartbeat_s (${HEARTBEAT_S} s)`,
        async () => {
            const logins = () => Promise.all([alice, bob].map(p =>
                p.evaluate(() => window.cim.S.client.logins)));
            const before = await logins();
            await sleep((3 * HEARTBEAT_S + 1.5) * 1000);
            const after = await logins();
            check(JSON.stringify(before) === JSON.stringify(after),
                `a page had to log in again (logins ${before} -> ${after}): it was timed out`);
            for (const p of [alice, bob])
                check(await p.getAttribute('#status', 'data-state') === 'online', 'a page is offline');
        });

    await r.test('typing indicator: bob types, alice sees it', async () => {
        check((await alice.textContent('#typing')) === '', 'a typing indicator before anyone typed');
        await bob.type('#composer-text', 'typing away', { delay: 20 });
        await until('"bob is typing…" in alice\'s chat', async () =>
            /bob is typing/.test(await alice.textContent('#typing')));
        await shot(alice, 'desktop-typing');
        await bob.fill('#composer-text', '');
    });

    await r.test('recall: alice recalls a message, bob sees it recalled', async () => {
        await send(alice, 'oops, wrong chat');
        const theirs = msgItem(bob, 'oops, wrong chat', '.theirs');
        await theirs.waitFor();
        const id = await theirs.getAttribute('data-id');
        await msgItem(alice, 'oops, wrong chat').locator('button.recall').click();
        await until('bob\'s copy recalled', async () => {
            const li = bob.locator(`#message-list li[data-id="${id}"]`);
            return /recalled/.test(await li.getAttribute('class')) &&
                (await textNow(li.locator('.body'))) === 'message recalled';
        });
        // Alice's RECALL_ACK and bob's push leave the server on different sessions, in
        // either order: wait for hers too rather than assume it came first.
        await until('alice\'s own copy recalled', async () =>
            await alice.locator(`#message-list li[data-id="${id}"].recalled`).count() === 1);
    });

    await r.test('direct chat with a TCP (libcim) user, both ways', async () => {
        await openDirect(alice, 'carol');
        await send(alice, 'hi carol, from a browser');
        await carolListen.waitFor(/ alice -> carol \[text\] hi carol, from a browser$/,
            'alice\'s message');
        await carol.cim('send', '--to', 'alice', 'hi alice, from TCP');
        await msgItem(alice, 'hi alice, from TCP', '.theirs').waitFor();
    });

    await r.test('refusals are shown: a send to an unknown user says NOT_FOUND', async () => {
        await openDirect(alice, 'nobody-here');
        await alice.fill('#composer-text', 'hello?');
        await alice.press('#composer-text', 'Enter');
        await until('the refusal in the toast and on the message', async () =>
            /NOT_FOUND/.test(await alice.textContent('#toast')) &&
            /NOT_FOUND/.test(await textNow(msgItem(alice, 'hello?', '.failed'))));
    });

    await r.test('presence: carol (a contact) goes offline and online, alice sees it', async () => {
        await backToList(alice);
        await alice.fill('#add-contact-user', 'carol');
        await alice.press('#add-contact-user', 'Enter');
        const li = alice.locator('#contact-list li[data-user="carol"]');
        await until('carol listed online', async () => await li.getAttribute('data-online') === '1');
        await carolListen.stop();
        await until('carol offline', async () => await li.getAttribute('data-online') === '0');
        carolListen = carol.listen('carol-listen');
        await until('carol online again', async () => await li.getAttribute('data-online') === '1');
    });

    await r.test('group: created in the browser; messages from both browsers and TCP arrive everywhere',
        async () => {
            await alice.click('#new-group summary');
            await alice.fill('#group-name', 'team');
            await alice.fill('#group-members', 'bob, carol');
            await alice.click('#new-group-form button[type="submit"]');
            await alice.waitForFunction(() =>
                document.getElementById('chat-title').textContent === 'team');
            groupId = (await alice.textContent('#chat-sub')).match(/group id (\d+)/)[1];
            await msgItem(alice, 'created “team” with bob, carol', '.system').waitFor();
            await openConv(bob, `2:${groupId}`);
            await msgItem(bob, 'alice created “team”', '.system').waitFor();
            await send(alice, 'hello team');
            await send(bob, 'bob here');
            await carol.cim('send', '--group', groupId, 'carol here');
            for (const [page, who] of [[alice, 'alice'], [bob, 'bob']]) {
                await until(`all three messages in ${who}'s group chat`, async () => {
                    const b = await bodies(page);
                    return ['hello team', 'bob here', 'carol here'].every(t => b.includes(t));
                });
            }
            await carolListen.waitFor(new RegExp(` alice -> #${groupId} \\[text\\] hello team$`),
                'alice\'s group message');
            await carolListen.waitFor(new RegExp(` bob -> #${groupId} \\[text\\] bob here$`),
                'bob\'s group message');
            await shot(alice, 'desktop-group');
            await shot(bob, 'phone-group');
        });

    await r.test('group: a member adds someone, another leaves; everyone sees it', async () => {
        await alice.click('#members-toggle');
        await until('members listed', async () =>
            /carol/.test(await alice.textContent('#group-members-list')));
        await alice.fill('#group-add-users', 'dave');
        await alice.press('#group-add-users', 'Enter');
        await until('dave in the member list', async () =>
            /dave/.test(await alice.textContent('#group-members-list')));
        await msgItem(bob, 'alice added dave', '.system').waitFor();
        await bob.click('#leave-group');
        await until('bob told he is no longer a member', async () =>
            /no longer a member/.test(await bob.textContent('#chat-sub')));
        check(await bob.isDisabled('#composer-text'), 'bob can still type into a group he left');
        await msgItem(alice, 'bob left', '.system').waitFor();
    });

    await r.test('history paging: 120 messages, scrolling up loads the older ones', async () => {
        for (let i = 1; i <= 120; i++)
            await srv.api('POST', '/v1/apps/default/messages',
                { from: 'dave', to: 'bob', body: `history ${String(i).padStart(3, '0')}` });
        const c = convItem(bob, '1:dave');
        await backToList(bob);
        await until('120 unread from dave in bob\'s list', async () =>
            (await textNow(c.locator('.badge'))).startsWith('120'));
        await openConv(bob, '1:dave');
        await msgItem(bob, 'history 120').waitFor();
        const first = (await bodies(bob)).length;
        check(first < 120 && !(await bodies(bob)).includes('history 001'),
            `the first page already holds ${first} messages`);
        await bob.hover('#messages');
        await until('history 001 loaded by scrolling up', async () => {
            await bob.mouse.wheel(0, -4000);
            return (await bodies(bob)).includes('history 001');
        }, 20000);
        const all = await bodies(bob);
        const want = Array.from({ length: 120 }, (_, i) => `history ${String(i + 1).padStart(3, '0')}`);
        check(JSON.stringify(all) === JSON.stringify(want),
            `not the 120 messages in order: ${all.length} shown`);
        check(await bob.isVisible('#history-start'), 'no "beginning of the conversation"');
        await shot(bob, 'phone-history');
    });

    let alice2;
    await r.test('multi-tab is multi-device: two tabs of alice both online, both get everything',
        async () => {
            alice2 = await newUserPage(aliceCtx, 'alice tab 2');
            check(await alice2.inputValue('#login-user') === 'alice', 'the user is not remembered');
            await loginWithDevToken(alice2, 'alice');
            const ids = await Promise.all([alice, alice2].map(p =>
                p.evaluate(() => window.cim.S.client.opts.deviceId)));
            check(ids[0] !== ids[1], `both tabs are device ${ids[0]}`);
            await openConv(alice, '1:bob');
            await openConv(bob, '1:alice');
            await send(bob, 'to every tab');
            await msgItem(alice, 'to every tab', '.theirs').waitFor();
            await until('the second tab\'s list shows bob\'s message', async () =>
                /to every tab/.test(await textNow(convItem(alice2, '1:bob'))));
            // The first tab has the chat open and reads it: the second learns (EVENT{READ}).
            await until('the second tab\'s unread count cleared by the first tab\'s READ', async () =>
                await convItem(alice2, '1:bob').locator('.badge').count() === 0);
            await openConv(alice2, '1:bob');
            await send(alice2, 'from the second tab');
            await msgItem(alice, 'from the second tab', '.mine').waitFor();
            await msgItem(bob, 'from the second tab', '.theirs').waitFor();
            check(await alice.getAttribute('#status', 'data-state') === 'online',
                'the first tab was kicked by the second');
            await alice2.close();
        });

    await r.test('reconnect: cimd restarts on the same data and ports; pages come back and SYNC',
        async () => {
            // Bob's page may not reach the server until the messages below are stored, so
            // that only SYNC can bring them (a gate on his WebSockets, in his browser).
            // A route applies to pages loaded after it: bob reloads (his tab logs in again
            // by itself, the token is in its sessionStorage).
            let gateOpen = true;
            await bobCtx.routeWebSocket(/\/ws$/, ws => {
                if (gateOpen)
                    ws.connectToServer();
                else
                    ws.close({ code: 1011, reason: 'test gate closed' });
            });
            await bob.reload();
            await online(bob, 'bob after a reload');
            await openDirect(bob, 'carol');
            await send(bob, 'before the restart');
            gateOpen = false;
            await srv.stop();
            for (const [page, who] of [[alice, 'alice'], [bob, 'bob']])
                await until(`${who} offline`, async () =>
                    ['offline', 'connecting'].includes(await page.getAttribute('#status', 'data-state')));
            await shot(bob, 'phone-offline');
            await srv.start();
            await online(alice, 'alice (by itself, after the restart)', 30000);
            for (let i = 1; i <= 3; i++)
                await carol.cim('send', '--to', 'bob', `while you were away ${i}`);
            await sleep(500);
            check(!(await bodies(bob)).includes('while you were away 1'),
                'bob got a message through the closed gate');
            gateOpen = true;
            await online(bob, 'bob (by itself, once the gate opened)', 30000);
            await until('the three messages synced into bob\'s open chat', async () => {
                const b = await bodies(bob);
                return [1, 2, 3].every(i => b.includes(`while you were away ${i}`));
            });
            await carolListen.stop();
            carolListen = carol.listen('carol-listen-2');
            await openConv(alice, '1:bob');
            await send(alice, 'after the restart');
            await until('bob\'s list shows alice\'s message after the restart', async () =>
                /after the restart/.test(await textNow(convItem(bob, '1:alice'))));
            // The pictures for the README and the docs: the group, on each viewport.
            await openConv(alice, `2:${groupId}`);
            await openConv(bob, '1:alice');
            await sleep(300);
            await shot(alice, 'desktop-chat');
            await shot(bob, 'phone-chat');
        });

    await r.test('no uncaught errors in any page', async () => {
        check(pageErrors.length === 0, pageErrors.join('; '));
    });

    await carolListen.stop();
}

let status = 1;
try {
    await main();
} catch (e) {
    console.log(`FAIL setup: ${e.stack || e.message}`);
    r.results.push({ name: 'setup', ok: false, error: e });
} finally {
    if (browser)
        await browser.close().catch(() => {});
    await srv.stop().catch(e => {
        r.results.push({ name: 'cimd exits cleanly', ok: false, error: e });
        srv.kill();
    });
    status = r.summary();
    srv.cleanup();
}
process.exit(status);
