/* Integration: offline delivery — B offline while A sends, then LOGIN cursors, SYNC pages
 * with remain, PUSH_ACK moving the device cursor, new devices starting at the beginning,
 * pages shortened to fit max_body, and the hand-over from SYNC to PUSH after login
 * (PROTOCOL.md §5 SyncReq/SyncRsp, §6 Timelines, Delivery). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cim.h"
#include "core/frame.h"
#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"

#define N 1000

/* Message i: client_msg_id "off-i", a body that names it. */
static void mk_small(void *ctx, size_t i, char *cmid, size_t cap, const uint8_t **body,
                     size_t *len)
{
    static char buf[64];
    (void)ctx;
    snprintf(cmid, cap, "off-%zu", i);
    *len = (size_t)snprintf(buf, sizeof(buf), "offline message %zu", i);
    *body = (const uint8_t *)buf;
}

/* Start a server, make bob known and offline, have alice send @p n messages to him.
 * @param[out] ids  the n ids, strictly increasing. */
static void fill(tsrv_t *t, size_t n, uint64_t *ids)
{
    size_t answered = 0;

    tsrv_start(t, "--send_rate", "1000000", "--send_burst", "1000000", NULL);
    cimc_t *b = tsrv_login(t, "bob", "b-first", NULL);
    cimc_close(b);
    tmsg_wait_user(t, "bob");
    cimc_t *a = tsrv_login(t, "alice", "a1", NULL);
    ASSERT_OK(tmsg_send_many(a, "bob", n, 100, cim_MsgType_TEXT, mk_small, NULL, ids, NULL,
                             &answered));
    ASSERT_EQ(answered, n);
    for (size_t i = 0; i < n; i++) {
        ASSERT_TRUE(ids[i] != 0);
        if (i > 0)
            ASSERT_TRUE(ids[i] > ids[i - 1]);
    }
    cimc_close(a);
}

/* Record @p m must be alice's message number @p i with id @p id. */
static void check_msg(const tmsg_t *m, size_t i, uint64_t id)
{
    char cmid[32], body[64];
    size_t blen = (size_t)snprintf(body, sizeof(body), "offline message %zu", i);
    snprintf(cmid, sizeof(cmid), "off-%zu", i);
    if (m->msg_id != id)
        TEST_FAIL_("entry %zu: msg_id %" PRIu64 ", want %" PRIu64, i, m->msg_id, id);
    ASSERT_STREQ(m->client_msg_id, cmid);
    ASSERT_STREQ(m->from, "alice");
    ASSERT_STREQ(m->to, "bob");
    ASSERT_EQ(m->conv_type, cim_ConvType_DIRECT);
    ASSERT_EQ(m->msg_type, cim_MsgType_TEXT);
    ASSERT_EQ(m->body_len, blen);
    ASSERT_U64_EQ(m->body_hash, tmsg_hash(body, blen));
    ASSERT_TRUE(m->time_ms > 1767225600000ULL);
}

/* Page through bob's timeline from the start (his device's cursor is 0) with @p limit,
 * checking every page: its size, remain (entries after the last one returned),
 * last_msg_id, and every message in order, no gap, no duplicate. */
static void page_through(cimc_t *b, const uint64_t *ids, size_t n, uint32_t limit,
                         size_t per_page)
{
    static tmsg_t msgs[N];
    tmsg_page_t p;
    size_t got = 0, pages = 0;
    uint64_t after = 0;

    while (got < n) {
        size_t want = n - got < per_page ? n - got : per_page;
        tmsg_page_init(&p, msgs, N, NULL, 0);
        ASSERT_OK(tmsg_sync(b, after, limit, &p));
        ASSERT_EQ(p.code, cim_Code_OK);
        if (p.n != want)
            TEST_FAIL_("limit %u, page %zu: %zu messages, want %zu", limit, pages, p.n, want);
        ASSERT_EQ(p.remain, n - got - want);
        ASSERT_U64_EQ(p.last_msg_id, ids[got + want - 1]);
        for (size_t i = 0; i < p.n; i++)
            check_msg(&msgs[i], got + i, ids[got + i]);
        got += p.n;
        after = p.last_msg_id;
        pages++;
    }
    ASSERT_EQ(pages, (n + per_page - 1) / per_page);
    /* past the end: empty, nothing remains */
    tmsg_page_init(&p, msgs, N, NULL, 0);
    ASSERT_OK(tmsg_sync(b, ids[n - 1], limit, &p));
    ASSERT_EQ(p.code, cim_Code_OK);
    ASSERT_EQ(p.n, 0);
    ASSERT_EQ(p.remain, 0);
}

TEST_TIMEOUT(e2e_offline_sync_1000_pages, 60)
{
    tsrv_t t;
    static uint64_t ids[N];
    static tmsg_t msgs[N];
    cim_LoginRsp lr;
    tmsg_page_t p;

    fill(&t, N, ids);
    cimc_t *b = tsrv_login(&t, "bob", "b1", &lr);
    ASSERT_U64_EQ(lr.latest_msg_id, ids[N - 1]);
    ASSERT_U64_EQ(lr.acked_msg_id, 0);

    page_through(b, ids, N, 0, 200);      /* 0 → 200 */
    page_through(b, ids, N, 7, 7);
    page_through(b, ids, N, 500, 500);
    page_through(b, ids, N, 501, 500);    /* capped at 500 */
    page_through(b, ids, N, 1000000, 500);

    /* from the middle */
    tmsg_page_init(&p, msgs, N, NULL, 0);
    ASSERT_OK(tmsg_sync(b, ids[499], 0, &p));
    ASSERT_EQ(p.code, cim_Code_OK);
    ASSERT_EQ(p.n, 200);
    ASSERT_EQ(p.remain, 300);
    for (size_t i = 0; i < p.n; i++)
        check_msg(&msgs[i], 500 + i, ids[500 + i]);
    /* from an id that is not in the timeline: the entries above it */
    {
        uint64_t between = ids[0] - 1;
        size_t k = 0;
        for (size_t i = 1; i < N; i++)
            if (ids[i] > ids[i - 1] + 1) { /* a gap in the ids: use it */
                between = ids[i - 1] + 1;
                k = i;
                break;
            }
        tmsg_page_init(&p, msgs, N, NULL, 0);
        ASSERT_OK(tmsg_sync(b, between, 5, &p));
        ASSERT_EQ(p.n, 5);
        ASSERT_EQ(p.remain, N - k - 5);
        for (size_t i = 0; i < 5; i++)
            check_msg(&msgs[i], k + i, ids[k + i]);
    }

    /* the whole timeline through the all-pages helper */
    tmsg_page_init(&p, msgs, N, NULL, 0);
    ASSERT_OK(tmsg_sync_all(b, 0, 0, &p));
    ASSERT_EQ(p.n, N);
    ASSERT_EQ(p.pages, 5);
    for (size_t i = 0; i < N; i++)
        check_msg(&msgs[i], i, ids[i]);

    /* all of it was before the login: nothing is pushed */
    tmsg_expect_no_push(b, 100);
    /* alice's own timeline holds the same 1,000 */
    cimc_t *a = tsrv_login(&t, "alice", "a-other", &lr);
    ASSERT_U64_EQ(lr.latest_msg_id, ids[N - 1]);
    tmsg_page_init(&p, msgs, N, NULL, 0);
    ASSERT_OK(tmsg_sync_all(a, 0, 500, &p));
    ASSERT_EQ(p.n, N);
    for (size_t i = 0; i < N; i++)
        check_msg(&msgs[i], i, ids[i]);
    cimc_close(a);
    cimc_close(b);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* Log in bob on @p device; its cursor must be exactly @p want at once: the PING after the
 * PUSH_ACK proves the worker handed the ack to the store, and the store reads a login's
 * cursor after every write queued before it. @return the connection. */
static cimc_t *relogin_expect_cursor(const tsrv_t *t, const char *device, uint64_t want,
                                     uint64_t latest)
{
    cim_LoginRsp lr;
    cimc_t *b = tsrv_login(t, "bob", device, &lr);
    ASSERT_U64_EQ(lr.latest_msg_id, latest);
    ASSERT_U64_EQ(lr.acked_msg_id, want);
    return b;
}

TEST_TIMEOUT(e2e_offline_push_ack_cursor, 60)
{
    tsrv_t t;
    static uint64_t ids[N];
    static tmsg_t msgs[N];
    cim_LoginRsp lr;
    tmsg_page_t p;

    fill(&t, N, ids);
    cimc_t *b = tsrv_login(&t, "bob", "b1", &lr);
    ASSERT_U64_EQ(lr.acked_msg_id, 0);
    tmsg_page_init(&p, msgs, N, NULL, 0);
    ASSERT_OK(tmsg_sync_all(b, 0, 0, &p));
    ASSERT_EQ(p.n, N);

    /* acknowledge half: the next login starts after it */
    ASSERT_OK(tmsg_push_ack(b, ids[499]));
    ASSERT_OK(cimc_ping(b, NULL));
    cimc_close(b);
    b = relogin_expect_cursor(&t, "b1", ids[499], ids[N - 1]);
    tmsg_page_init(&p, msgs, N, NULL, 0);
    ASSERT_OK(tmsg_sync(b, 0, 0, &p));
    ASSERT_EQ(p.code, cim_Code_OK);
    ASSERT_EQ(p.n, 200);
    ASSERT_EQ(p.remain, 300);
    for (size_t i = 0; i < p.n; i++)
        check_msg(&msgs[i], 500 + i, ids[500 + i]);

    /* acknowledge everything (in a few cumulative steps): re-login sees the last id, and
     * SYNC from the cursor is empty */
    ASSERT_OK(tmsg_push_ack(b, ids[700]));
    ASSERT_OK(tmsg_push_ack(b, ids[600])); /* lower: ignored */
    ASSERT_OK(tmsg_push_ack(b, ids[N - 1]));
    ASSERT_OK(cimc_ping(b, NULL));
    cimc_close(b);
    b = relogin_expect_cursor(&t, "b1", ids[N - 1], ids[N - 1]);
    tmsg_page_init(&p, msgs, N, NULL, 0);
    ASSERT_OK(tmsg_sync(b, 0, 0, &p));
    ASSERT_EQ(p.code, cim_Code_OK);
    ASSERT_EQ(p.n, 0);
    ASSERT_EQ(p.remain, 0);
    /* an explicit after_msg_id still reads older entries */
    tmsg_page_init(&p, msgs, N, NULL, 0);
    ASSERT_OK(tmsg_sync(b, ids[997], 0, &p));
    ASSERT_EQ(p.n, 2);
    ASSERT_EQ(p.remain, 0);
    check_msg(&msgs[0], 998, ids[998]);

    /* a lower ack never moves the cursor back */
    ASSERT_OK(tmsg_push_ack(b, ids[10]));
    ASSERT_OK(cimc_ping(b, NULL));
    cimc_close(b);
    b = tsrv_login(&t, "bob", "b1", &lr);
    ASSERT_U64_EQ(lr.acked_msg_id, ids[N - 1]);
    cimc_close(b);

    /* a new device of B starts from the beginning */
    cimc_t *b2 = tsrv_login(&t, "bob", "b2", &lr);
    ASSERT_U64_EQ(lr.acked_msg_id, 0);
    ASSERT_U64_EQ(lr.latest_msg_id, ids[N - 1]);
    tmsg_page_init(&p, msgs, N, NULL, 0);
    ASSERT_OK(tmsg_sync_all(b2, 0, 0, &p));
    ASSERT_EQ(p.n, N);
    for (size_t i = 0; i < N; i++)
        check_msg(&msgs[i], i, ids[i]);
    cimc_close(b2);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* After login, what was committed up to latest_msg_id comes by SYNC and everything after
 * it by PUSH, in order, without gaps; together they are the whole timeline. */
TEST_TIMEOUT(e2e_offline_sync_then_push, 60)
{
    tsrv_t t;
    static uint64_t ids[N];
    static tmsg_t msgs[N];
    cim_LoginRsp lr;
    tmsg_page_t p;
    size_t answered = 0;

    fill(&t, 300, ids);
    cimc_t *b = tsrv_login(&t, "bob", "b1", &lr);
    ASSERT_U64_EQ(lr.latest_msg_id, ids[299]);
    /* alice goes on while bob is still to sync: first resends of client_msg_ids she
     * already used (from another device, pipelined): the same ids, nothing new stored or
     * pushed */
    cimc_t *a = tsrv_login(&t, "alice", "a2", NULL);
    ASSERT_OK(tmsg_send_many(a, "bob", 50, 10, cim_MsgType_TEXT, mk_small, NULL, ids + 300,
                             NULL, &answered));
    ASSERT_EQ(answered, 50);
    for (size_t i = 0; i < 50; i++)
        ASSERT_U64_EQ(ids[300 + i], ids[i]);
    {
        /* then new messages */
        char cmid[32], body[32];
        cim_SendRsp rsp;
        for (size_t i = 0; i < 50; i++) {
            snprintf(cmid, sizeof(cmid), "late-%zu", i);
            snprintf(body, sizeof(body), "late %zu", i);
            ASSERT_OK(tmsg_send(a, "bob", cmid, cim_MsgType_TEXT, body, strlen(body), false,
                                &rsp));
            ASSERT_EQ(rsp.code, cim_Code_OK);
            ids[300 + i] = rsp.msg_id;
        }
    }
    /* the sync up to latest_msg_id */
    tmsg_page_init(&p, msgs, N, NULL, 0);
    ASSERT_OK(tmsg_sync_all(b, 0, 0, &p));
    ASSERT_EQ(p.n, 350); /* the later ones are in the timeline too */
    for (size_t i = 0; i < 300; i++)
        check_msg(&msgs[i], i, ids[i]);
    for (size_t i = 300; i < 350; i++)
        ASSERT_U64_EQ(msgs[i].msg_id, ids[i]);
    /* the pushes: exactly the messages after latest_msg_id, in order */
    for (size_t i = 300; i < 350; i++) {
        tmsg_t m;
        char cmid[32];
        ASSERT_OK(tmsg_next_push(b, 5000, &m, NULL, 0));
        ASSERT_U64_EQ(m.msg_id, ids[i]);
        snprintf(cmid, sizeof(cmid), "late-%zu", i - 300);
        ASSERT_STREQ(m.client_msg_id, cmid);
    }
    tmsg_expect_no_push(b, 200);
    ASSERT_OK(tmsg_push_ack(b, ids[349]));
    ASSERT_OK(cimc_ping(b, NULL));
    cimc_close(b);
    b = relogin_expect_cursor(&t, "b1", ids[349], ids[349]);
    cimc_close(b);
    cimc_close(a);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

#define BIG 15000
#define NBIG 20

static void mk_big(void *ctx, size_t i, char *cmid, size_t cap, const uint8_t **body,
                   size_t *len)
{
    uint8_t *buf = ctx;
    snprintf(cmid, cap, "big-%zu", i);
    for (size_t k = 0; k < BIG; k++)
        buf[k] = (uint8_t)(k * 31 + i * 7);
    *body = buf;
    *len = BIG;
}

TEST_TIMEOUT(e2e_offline_page_fits_max_body, 60)
{
    tsrv_t t;
    static uint8_t body[BIG], bodies[NBIG * BIG];
    static uint64_t ids[NBIG];
    static tmsg_t msgs[NBIG];
    tmsg_page_t p;
    size_t got = 0, answered = 0;
    uint64_t after = 0;

    tsrv_start(&t, "--max_msg_bytes", "16000", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b-first", NULL);
    cimc_close(b);
    tmsg_wait_user(&t, "bob");
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    ASSERT_OK(tmsg_send_many(a, "bob", NBIG, 5, cim_MsgType_FILE, mk_big, body, ids, NULL,
                             &answered));
    ASSERT_EQ(answered, NBIG);
    cimc_close(a);

    b = tsrv_login(&t, "bob", "b1", NULL);
    tmsg_page_init(&p, msgs, NBIG, bodies, sizeof(bodies));
    while (got < NBIG) {
        size_t before = p.n;
        ASSERT_OK(tmsg_sync(b, after, 500, &p));
        ASSERT_EQ(p.code, cim_Code_OK);
        /* shortened to fit 65536 bytes: at most four of 15,000, and never none */
        ASSERT_TRUE(p.page_n >= 1);
        ASSERT_TRUE(p.page_n * BIG < 65536);
        ASSERT_EQ(p.n, before + p.page_n);
        got += p.page_n;
        ASSERT_EQ(p.remain, NBIG - got);
        ASSERT_U64_EQ(p.last_msg_id, ids[got - 1]);
        after = p.last_msg_id;
    }
    ASSERT_TRUE(p.pages >= NBIG / 4);
    for (size_t i = 0; i < NBIG; i++) {
        uint8_t want[BIG];
        char cmid[32];
        const uint8_t *wb;
        size_t wl;
        mk_big(want, i, cmid, sizeof(cmid), &wb, &wl);
        ASSERT_U64_EQ(msgs[i].msg_id, ids[i]);
        ASSERT_STREQ(msgs[i].client_msg_id, cmid);
        ASSERT_EQ(msgs[i].body_len, BIG);
        ASSERT_NOT_NULL(msgs[i].body);
        ASSERT_MEMEQ(msgs[i].body, want, BIG);
    }
    cimc_close(b);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* The tightest configuration: max_msg_bytes = max_body - 512. A message of that size
 * still fits a page of its own. */
TEST_TIMEOUT(e2e_offline_page_of_one_at_the_limit, 60)
{
    tsrv_t t;
    static uint8_t body[16000];
    static uint64_t ids[4];
    static tmsg_t msgs[4];
    tmsg_page_t p;
    size_t got = 0;
    uint64_t after = 0;

    tsrv_start(&t, "--max_body", "16512", "--max_msg_bytes", "16000", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b-first", NULL);
    cimc_close(b);
    tmsg_wait_user(&t, "bob");
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    memset(body, 0xff, sizeof(body)); /* incompressible lengths: every varint at its widest */
    for (size_t i = 0; i < 3; i++) {
        cim_SendRsp rsp;
        char cmid[65];
        memset(cmid, 'c', 64);
        cmid[64] = '\0';
        cmid[0] = (char)('0' + i);
        ASSERT_OK(tmsg_send(a, "bob", cmid, cim_MsgType_FILE, body, sizeof(body), false, &rsp));
        ASSERT_EQ(rsp.code, cim_Code_OK);
        ids[i] = rsp.msg_id;
    }
    cimc_close(a);
    b = tsrv_login(&t, "bob", "b1", NULL);
    ASSERT_EQ(cimc_max_body(b), 16512);
    tmsg_page_init(&p, msgs, 4, NULL, 0);
    while (got < 3) {
        ASSERT_OK(tmsg_sync(b, after, 0, &p));
        ASSERT_EQ(p.code, cim_Code_OK);
        ASSERT_EQ(p.page_n, 1);
        got++;
        ASSERT_EQ(p.remain, 3 - got);
        after = p.last_msg_id;
    }
    for (size_t i = 0; i < 3; i++) {
        ASSERT_U64_EQ(msgs[i].msg_id, ids[i]);
        ASSERT_EQ(msgs[i].body_len, sizeof(body));
        ASSERT_U64_EQ(msgs[i].body_hash, tmsg_hash(body, sizeof(body)));
    }
    cimc_close(b);
    ASSERT_EQ(tsrv_stop(&t), 0);
}
