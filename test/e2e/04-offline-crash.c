/* Integration: crash safety. cimd (durability = sync) is killed with SIGKILL in the middle
 * of a sustained send load and restarted on the same data dir: every message that had been
 * acknowledged is in both timelines, a client resending what it had not seen acknowledged
 * stores each message exactly once, and ids keep increasing (PROTOCOL.md §6, Send:
 * "SEND_ACK{OK} means the message is stored in every recipient's timeline and will survive
 * a crash of the server process"). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cim.h"
#include "core/frame.h"
#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"

#define MAXN 100000     /* messages the load may send at most */
#define WINDOW 16       /* SENDs in flight */
#define LOAD_MS 1500    /* the kill comes after this much load */
#define LOAD_MAX_MS 5000 /* the loader stops by itself after this, killed or not */

typedef struct load {
    cimc_t *a;
    int conv_type;       /* to a user (bob) or a group */
    char to[65];
    uint64_t ids[MAXN];  /* ids[i]: the acknowledged id of "crash-i" */
    int codes[MAXN];
    size_t written;      /* SENDs handed to the socket */
    _Atomic size_t acked; /* SEND_ACKs received (all of 0..acked-1) */
    int rc;              /* what ended the load */
} load_t;

static void mk(void *ctx, size_t i, char *cmid, size_t cap, const uint8_t **body, size_t *len)
{
    static char buf[64];
    size_t base = *(const size_t *)ctx;
    snprintf(cmid, cap, "crash-%zu", base + i);
    *len = (size_t)snprintf(buf, sizeof(buf), "payload %zu", base + i);
    *body = (const uint8_t *)buf;
}

static void *loader(void *arg)
{
    load_t *l = arg;
    uint64_t t0 = tmsg_now_ms();

    /* until the kill fails a send (no stop flag: a window answered just before the kill,
     * then a flag set after it, ended a run "ok" once, and the check below failed) */
    while (l->written + WINDOW <= MAXN && tmsg_now_ms() - t0 < LOAD_MAX_MS) {
        size_t base = l->written, answered = 0;
        l->written += WINDOW;
        l->rc = tmsg_send_many_conv(l->a, l->conv_type, l->to, WINDOW, WINDOW,
                                    cim_MsgType_TEXT, mk, &base, l->ids + base,
                                    l->codes + base, &answered);
        atomic_store(&l->acked, base + answered);
        if (l->rc < 0)
            break;
    }
    return NULL;
}

/* "crash-N" → N, or -1. */
static long cmid_index(const char *cmid)
{
    char *end;
    long v;
    if (strncmp(cmid, "crash-", 6) != 0)
        return -1;
    v = strtol(cmid + 6, &end, 10);
    return *end == '\0' ? v : -1;
}

/* The whole timeline of @p user (a fresh device: cursor 0) into @p p, then check it
 * against the load: ascending, every acknowledged message there with its id, nothing
 * that was not sent. @return the largest id seen. */
static uint64_t check_timeline(const tsrv_t *t, const char *user, const char *device,
                               const load_t *l, tmsg_page_t *p, uint64_t *latest)
{
    cim_LoginRsp lr;
    size_t found = 0;
    long prev_index = -1;
    uint64_t prev = 0;

    cimc_t *c = tsrv_login(t, user, device, &lr);
    tmsg_page_reset(p);
    ASSERT_OK(tmsg_sync_all(c, 0, 500, p));
    ASSERT_TRUE(!p->overflow);
    for (size_t i = 0; i < p->n; i++) {
        const tmsg_t *m = &p->msgs[i];
        long j = cmid_index(m->client_msg_id);
        ASSERT_TRUE(m->msg_id > prev);
        prev = m->msg_id;
        if (m->msg_type == cim_MsgType_SYSTEM && l->conv_type == cim_ConvType_GROUP)
            continue; /* the group's creation */
        if (j < 0 || (size_t)j >= l->written)
            TEST_FAIL_("%s's timeline holds '%s', which was never sent", user,
                       m->client_msg_id);
        ASSERT_TRUE(j > prev_index); /* commit order = send order on one connection */
        prev_index = j;
        if ((size_t)j < l->acked) {
            if (m->msg_id != l->ids[j])
                TEST_FAIL_("%s: crash-%ld has id %" PRIu64 ", acknowledged as %" PRIu64, user,
                           j, m->msg_id, l->ids[j]);
            found++;
        }
    }
    if (found != l->acked) {
        /* name the first acknowledged message that is missing */
        size_t k = 0;
        for (size_t j = 0; j < l->acked; j++) {
            while (k < p->n && cmid_index(p->msgs[k].client_msg_id) < (long)j)
                k++;
            if (k == p->n || cmid_index(p->msgs[k].client_msg_id) != (long)j)
                TEST_FAIL_("%s: acknowledged crash-%zu (id %" PRIu64 ") is missing after the "
                           "crash (%zu of %zu acknowledged present)",
                           user, j, l->ids[j], found, l->acked);
        }
    }
    ASSERT_U64_EQ(lr.latest_msg_id, prev);
    *latest = lr.latest_msg_id;
    cimc_close(c);
    return prev;
}

/* Resend @p cmid to the load's conversation; its code must be OK. @return its id. */
static uint64_t resend(cimc_t *a, const load_t *l, const char *cmid)
{
    cim_SendRsp rsp;
    ASSERT_OK(tmsg_send_conv(a, l->conv_type, l->to, cmid, cim_MsgType_TEXT, "x", 1, false,
                             &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    return rsp.msg_id;
}

/* The crash run, alice sending to bob (@p group false) or to a group of alice, bob and
 * carol. */
static void crash_run(bool group)
{
    tsrv_t t;
    static load_t l;
    static tmsg_t msgs[MAXN + 16];
    tmsg_page_t p;
    pthread_t th;
    uint64_t max_b, max_a, latest, t0;
    size_t acked_at_kill;

    tsrv_start(&t, "--durability", "sync", "--send_rate", "1000000", "--send_burst",
               "1000000", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b-first", NULL);
    cimc_close(b);
    tmsg_wait_user(&t, "bob");
    memset(&l, 0, sizeof(l));
    l.a = tsrv_login(&t, "alice", "a1", NULL);
    l.conv_type = group ? cim_ConvType_GROUP : cim_ConvType_DIRECT;
    snprintf(l.to, sizeof(l.to), "bob");
    if (group) {
        static const char *const members[] = {"bob", "carol"};
        cim_GroupRsp grsp;
        tmsg_register_users(&t, members + 1, 1);
        TMSG_EXPECT(tmsg_group_create(l.a, "crash", members, 2, false, &grsp), grsp,
                    cim_Code_OK);
        snprintf(l.to, sizeof(l.to), "%s", grsp.group.group_id);
    }

    ASSERT_OK(pthread_create(&th, NULL, loader, &l));
    t0 = tmsg_now_ms();
    while (tmsg_now_ms() - t0 < LOAD_MS)
        tmsg_sleep_ms(10);
    acked_at_kill = atomic_load(&l.acked);
    tsrv_kill(&t); /* SIGKILL, in-flight SENDs and all */
    ASSERT_OK(pthread_join(th, NULL));
    fprintf(stderr, "load: %zu sent, %zu acknowledged (%zu at the kill), ended with %s\n",
            l.written, l.acked, acked_at_kill, rc_str(l.rc));
    ASSERT_TRUE(acked_at_kill >= 100);          /* the load was under way ... */
    ASSERT_TRUE(l.acked + WINDOW <= MAXN);      /* ... and had not run out by itself */
    ASSERT_TRUE(l.rc < 0);                      /* the kill ended it */
    for (size_t i = 0; i < l.acked; i++) {
        ASSERT_EQ(l.codes[i], cim_Code_OK);
        if (i > 0)
            ASSERT_TRUE(l.ids[i] > l.ids[i - 1]);
    }
    cimc_close(l.a);

    tsrv_restart(&t);
    tmsg_page_init(&p, msgs, MAXN + 16, NULL, 0);
    max_b = check_timeline(&t, "bob", "b-after", &l, &p, &latest);
    size_t nb = p.n;
    max_a = check_timeline(&t, "alice", "a-after", &l, &p, &latest);
    ASSERT_EQ(p.n, nb); /* the same messages on both sides */
    ASSERT_U64_EQ(max_a, max_b);
    if (group) { /* and on the third member's */
        ASSERT_U64_EQ(check_timeline(&t, "carol", "c-after", &l, &p, &latest), max_b);
        ASSERT_EQ(p.n, nb);
        nb--; /* the group's creation is no unread message */
    }
    fprintf(stderr, "after restart: %zu in the timelines (%zu acknowledged)\n", nb, l.acked);
    /* the conversation index too (its appends were in cpend, not in cmsgs, at the kill):
     * bob's conversation with alice ends at the last of them, all unread */
    {
        static tmsg_conv_t convs[4];
        cim_ConvListRsp crsp;
        size_t nc;
        cimc_t *c = tsrv_login(&t, "bob", "b-conv", NULL);
        TMSG_EXPECT(tmsg_conv_list(c, convs, 4, &nc, &crsp), crsp, cim_Code_OK);
        const tmsg_conv_t *cv = tmsg_conv_find(convs, nc, l.conv_type, group ? l.to : "alice");
        ASSERT_NOT_NULL(cv);
        ASSERT_U64_EQ(cv->last.msg_id, max_b);
        ASSERT_EQ(cv->unread, nb);
        cimc_close(c);
    }

    /* ids go on increasing after the restart, above everything issued before it */
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    uint64_t after1 = resend(a, &l, "after-1");
    ASSERT_TRUE(after1 > max_b);
    ASSERT_TRUE(after1 > l.ids[l.acked - 1]);
    ASSERT_TRUE(resend(a, &l, "after-2") > after1);
    /* the dedup records survived too: resends of acknowledged ids give the same ids */
    ASSERT_U64_EQ(resend(a, &l, "crash-0"), l.ids[0]);
    {
        char cmid[32];
        snprintf(cmid, sizeof(cmid), "crash-%zu", l.acked - 1);
        ASSERT_U64_EQ(resend(a, &l, cmid), l.ids[l.acked - 1]);
    }
    /* What a client does after a crash: resend everything it had not seen acknowledged,
     * with the same client_msg_ids. What the crash had committed without answering is
     * answered with its stored id (the dedup window is rebuilt from the log); the rest is
     * stored now: once each. */
    for (size_t j = l.acked; j < l.written; j++) {
        char cmid[32];
        snprintf(cmid, sizeof(cmid), "crash-%zu", j);
        l.ids[j] = resend(a, &l, cmid);
    }
    cimc_close(a);
    b = tsrv_login(&t, "bob", "b-last", NULL);
    tmsg_page_reset(&p);
    ASSERT_OK(tmsg_sync_all(b, 0, 0, &p));
    {
        size_t seen = 0;
        long last = -1;
        for (size_t i = 0; i < p.n; i++) {
            long j = cmid_index(p.msgs[i].client_msg_id);
            if (j < 0)
                continue;
            if (j <= last)
                TEST_FAIL_("crash-%ld is in bob's timeline twice (or out of order)", j);
            last = j;
            if (p.msgs[i].msg_id != l.ids[j])
                TEST_FAIL_("crash-%ld: id %" PRIu64 " in the timeline, %" PRIu64 " answered", j,
                           p.msgs[i].msg_id, l.ids[j]);
            seen++;
        }
        ASSERT_EQ(seen, l.written); /* every message sent, once: none lost, none twice */
    }
    cimc_close(b);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_offline_crash_safety, 60)
{
    crash_run(false);
}

/* The same with a group's messages: stored once, in the group's index, and read into each
 * member's timeline through their spans (actors/feed.h). */
TEST_TIMEOUT(e2e_offline_crash_safety_group, 60)
{
    crash_run(true);
}
