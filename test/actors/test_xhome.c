/* xhome: the bus formats of messages between homes (round trips and the boundaries of their
 * parsers), the merge's order, and a cluster that drops and counts what it cannot parse.
 * The whole path is tested end to end against real nodes by test/e2e/12-cluster.c. */
#include "actors/xhome.h"

#include <nats/nats.h>
#include <stdio.h>
#include <string.h>

#include "actors/cluster.h"
#include "actors/cluster_int.h"
#include "core/be.h"
#include "core/conf.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"
#include "support/test.h"

/* An id issued by node @p node at ms @p ms, sequence @p seq. */
static uint64_t id_of(uint64_t ms, uint32_t node, uint32_t seq)
{
    return ms << (SNOWFLAKE_NODE_BITS + SNOWFLAKE_SEQ_BITS) |
           (uint64_t)node << SNOWFLAKE_SEQ_BITS | seq;
}

static void sample(xhome_msg_t *x)
{
    static const uint8_t rec[] = {0x08, 0x01, 0x10, 0x01};

    memset(x, 0, sizeof(*x));
    x->kind = XHOME_MSG;
    x->conv_type = 1;
    x->msg_type = 1;
    x->origin = 2;
    x->home = 3;
    x->id = id_of(1000, 2, 7);
    snprintf(x->app, sizeof(x->app), "default");
    snprintf(x->from, sizeof(x->from), "alice");
    snprintf(x->to, sizeof(x->to), "bob");
    x->rec = rec;
    x->rec_len = sizeof(rec);
}

TEST(xhome_msg_round_trip)
{
    xhome_msg_t x, y;
    uint8_t *p = NULL;
    size_t len = 0;

    sample(&x);
    ASSERT_OK(xhome_encode(&x, &p, &len));
    ASSERT_EQ(len, XHOME_HDR + 7 + 5 + 3 + 4);
    /* the header, byte by byte (xhome.h) */
    static const uint8_t hdr[XHOME_HDR] = {1, 1, 7, 5, 3, 1, 1, 0, 0, 0, 0, 2, 0, 0, 0, 3};
    ASSERT_MEMEQ(p, hdr, 16);
    ASSERT_OK(xhome_parse(p, len, &y));
    ASSERT_EQ(y.kind, XHOME_MSG);
    ASSERT_EQ(y.origin, 2);
    ASSERT_EQ(y.home, 3);
    ASSERT_U64_EQ(y.id, x.id);
    ASSERT_STREQ(y.app, "default");
    ASSERT_STREQ(y.from, "alice");
    ASSERT_STREQ(y.to, "bob");
    ASSERT_EQ(y.rec_len, 4);
    ASSERT_MEMEQ(y.rec, x.rec, 4);
    mem_free(p);
}

/* Every malformed message is refused: truncated, wrong version or kind, strings out of
 * range or not ids, an id another node issued, no record. */
TEST(xhome_msg_parse_boundaries)
{
    xhome_msg_t x, y;
    uint8_t *p = NULL, bad[XHOME_HDR + 64];
    size_t len = 0;

    sample(&x);
    ASSERT_OK(xhome_encode(&x, &p, &len));
    for (size_t n = 0; n < XHOME_HDR + 15; n++) /* any cut before the record */
        ASSERT_EQ(xhome_parse(p, n, &y), RC_EPROTO);
    ASSERT_OK(xhome_parse(p, XHOME_HDR + 15 + 1, &y)); /* a record of one byte */
    memcpy(bad, p, len);
    bad[1] = 2; /* version */
    ASSERT_EQ(xhome_parse(bad, len, &y), RC_EPROTO);
    memcpy(bad, p, len);
    bad[0] = 9; /* kind */
    ASSERT_EQ(xhome_parse(bad, len, &y), RC_EPROTO);
    memcpy(bad, p, len);
    bad[11] = 5; /* origin 5, id of node 2 */
    ASSERT_EQ(xhome_parse(bad, len, &y), RC_EPROTO);
    memcpy(bad, p, len);
    bad[XHOME_HDR] = ' '; /* app " efault": not an id */
    ASSERT_EQ(xhome_parse(bad, len, &y), RC_EPROTO);
    memcpy(bad, p, len);
    bad[2] = 0; /* empty app */
    ASSERT_EQ(xhome_parse(bad, len, &y), RC_EPROTO);
    memcpy(bad, p, len);
    bad[3] = 65; /* from longer than an id may be */
    ASSERT_EQ(xhome_parse(bad, len, &y), RC_EPROTO);
    memset(bad + 16, 0, 8); /* id 0 */
    ASSERT_EQ(xhome_parse(bad, len, &y), RC_EPROTO);
    mem_free(p);

    /* a probe: header only */
    memset(&x, 0, sizeof(x));
    x.kind = XHOME_PROBE;
    x.home = 4;
    x.id = 9;
    ASSERT_OK(xhome_encode(&x, &p, &len));
    ASSERT_EQ(len, XHOME_HDR);
    ASSERT_OK(xhome_parse(p, len, &y));
    ASSERT_EQ(y.kind, XHOME_PROBE);
    ASSERT_U64_EQ(y.id, 9);
    memcpy(bad, p, len);
    bad[len] = 0;
    ASSERT_EQ(xhome_parse(bad, len + 1, &y), RC_EPROTO);
    mem_free(p);
}

/* A message that names its users (a group's, or one that stays on its home). */
TEST(xhome_msg_users_list)
{
    static const char *const users[] = {"bob", "carol", "d"};
    char user[KV_ID_MAX + 1];
    xhome_msg_t x, y;
    uint8_t *p = NULL;
    size_t len = 0, pos = 0, off;

    sample(&x);
    x.flags = XHOME_F_INDEX | XHOME_F_USERS;
    x.users = users;
    x.nusers = 3;
    ASSERT_OK(xhome_encode(&x, &p, &len));
    ASSERT_EQ(len, XHOME_HDR + 15 + 4 + (1 + 3) + (1 + 5) + (1 + 1) + 4);
    ASSERT_OK(xhome_parse(p, len, &y));
    ASSERT_EQ(y.flags, XHOME_F_INDEX | XHOME_F_USERS);
    ASSERT_EQ(y.nusers, 3);
    ASSERT_EQ(y.rec_len, 4);
    for (size_t i = 0; i < 3; i++) {
        ASSERT_TRUE(xhome_user(&y, &pos, user));
        ASSERT_STREQ(user, users[i]);
    }
    ASSERT_TRUE(!xhome_user(&y, &pos, user));
    off = XHOME_HDR + 15;
    p[off + 3] = 4; /* a count over the list: it eats the record */
    ASSERT_EQ(xhome_parse(p, len, &y), RC_EPROTO);
    p[off + 3] = 3;
    p[off + 4] = 0; /* an empty user */
    ASSERT_EQ(xhome_parse(p, len, &y), RC_EPROTO);
    p[off + 4] = 3;
    p[7] = 0x80; /* an unknown flag */
    ASSERT_EQ(xhome_parse(p, len, &y), RC_EPROTO);
    mem_free(p);
}

/* A copy for the sender's home carries its session (not pushed to: it gets the SEND_ACK). */
TEST(xhome_msg_skip_session)
{
    static const char *const users[] = {"bob"};
    xhome_msg_t x, y;
    uint8_t *p = NULL;
    size_t len = 0;

    sample(&x);
    x.flags = XHOME_F_USERS | XHOME_F_SKIP;
    x.skip_sid = 0x0102030405060708ULL;
    x.users = users;
    x.nusers = 1;
    ASSERT_OK(xhome_encode(&x, &p, &len));
    ASSERT_EQ(len, XHOME_HDR + 15 + 8 + 4 + (1 + 3) + 4);
    ASSERT_OK(xhome_parse(p, len, &y));
    ASSERT_U64_EQ(y.skip_sid, x.skip_sid);
    ASSERT_EQ(y.nusers, 1);
    ASSERT_EQ(y.rec_len, 4);
    ASSERT_EQ(xhome_parse(p, XHOME_HDR + 15 + 7, &y), RC_EPROTO); /* the session cut */
    mem_free(p);
}

typedef struct copies {
    size_t n;
    size_t len[4];
} copies_t;

static int count_copy(void *ctx, const uint8_t *x, size_t xlen)
{
    copies_t *c = ctx;
    (void)x;
    if (c->n < 4)
        c->len[c->n] = xlen;
    c->n++;
    return 0;
}

/* An outbox entry: one XHOME_MSG, or several behind XHOME_OUTBOX_MULTI, all or none. */
TEST(xhome_outbox_entries)
{
    uint8_t buf[64];
    copies_t c = {0, {0}};

    memset(buf, 0, sizeof(buf));
    buf[0] = XHOME_MSG;
    ASSERT_OK(xhome_outbox_each(buf, 30, count_copy, &c));
    ASSERT_EQ(c.n, 1);
    ASSERT_EQ(c.len[0], 30);
    memset(&c, 0, sizeof(c));
    buf[0] = XHOME_OUTBOX_MULTI;
    buf[4] = 10;  /* 10 bytes */
    buf[18] = 20; /* then 20 */
    ASSERT_OK(xhome_outbox_each(buf, 1 + 4 + 10 + 4 + 20, count_copy, &c));
    ASSERT_EQ(c.n, 2);
    ASSERT_EQ(c.len[0], 10);
    ASSERT_EQ(c.len[1], 20);
    memset(&c, 0, sizeof(c));
    ASSERT_EQ(xhome_outbox_each(buf, 1 + 4 + 10 + 4 + 19, count_copy, &c), RC_EPROTO);
    ASSERT_EQ(xhome_outbox_each(buf, 1 + 4 + 10 + 3, count_copy, &c), RC_EPROTO);
    ASSERT_EQ(xhome_outbox_each(buf, 0, count_copy, &c), RC_EPROTO);
    ASSERT_EQ(c.n, 0); /* nothing handed over from a malformed one */
}

TEST(xhome_watermark_round_trip_and_boundaries)
{
    xhome_wm_t w, v;
    uint8_t buf[XHOME_WM_MAX];
    size_t len;

    memset(&w, 0, sizeof(w));
    w.origin = 2;
    w.horizon = id_of(500, 0, 0);
    w.n = 2;
    w.home[0] = 1;
    w.seq[0] = 17;
    w.home[1] = 3;
    w.seq[1] = 0;
    len = xhome_wm_encode(&w, buf);
    ASSERT_EQ(len, 16 + 2 * 12);
    ASSERT_OK(xhome_wm_parse(buf, len, &v));
    ASSERT_EQ(v.origin, 2);
    ASSERT_U64_EQ(v.horizon, w.horizon);
    ASSERT_U64_EQ(xhome_wm_seq(&v, 1), 17);
    ASSERT_U64_EQ(xhome_wm_seq(&v, 3), 0);
    ASSERT_U64_EQ(xhome_wm_seq(&v, 9), 0); /* a home it does not name */
    for (size_t n = 0; n < len; n++)
        ASSERT_EQ(xhome_wm_parse(buf, n, &v), RC_EPROTO);
    ASSERT_EQ(xhome_wm_parse(buf, len + 1, &v), RC_EPROTO);
    buf[15] = CONF_CLUSTER_MAX + 1; /* more pairs than a cluster has nodes */
    ASSERT_EQ(xhome_wm_parse(buf, len, &v), RC_EPROTO);
}

/* Three origins: a message waits until every other origin's horizon is above it (or the
 * origin is waived), and they come out in id order. */
TEST(xhome_merge_releases_in_id_order)
{
    static const uint32_t nodes[] = {1, 2, 3};
    static int tag[8];
    xmerge_t *x = mem_alloc(sizeof(*x));
    xmerge_ent_t *e;

    xmerge_init(x, nodes, 3);
    ASSERT_EQ(xmerge_add(x, 9, id_of(1, 9, 0), &tag[0], 0), RC_EINVAL); /* not a node */
    ASSERT_OK(xmerge_add(x, 2, id_of(10, 2, 0), &tag[1], 0));
    ASSERT_OK(xmerge_add(x, 1, id_of(12, 1, 0), &tag[2], 0));
    ASSERT_NULL(xmerge_next(x)); /* origin 3 has said nothing */
    xmerge_horizon(x, 3, id_of(11, 0, 0));
    ASSERT_NOT_NULL(e = xmerge_next(x)); /* 10@2: 1 is at 12, 3 at 11 */
    ASSERT_TRUE(e->data == &tag[1]);
    mem_free(e);
    ASSERT_NULL(xmerge_next(x)); /* 12@1: 3 is only at 11 */
    /* 3 sends 11: it goes first once 2 is past it, then 12 once 3 and 2 are */
    ASSERT_OK(xmerge_add(x, 3, id_of(11, 3, 5), &tag[3], 0));
    ASSERT_NULL(xmerge_next(x)); /* 2 is only at 10 + 1 */
    xmerge_horizon(x, 2, id_of(11, 9, 0));
    ASSERT_NOT_NULL(e = xmerge_next(x));
    ASSERT_TRUE(e->data == &tag[3]);
    mem_free(e);
    ASSERT_NULL(xmerge_next(x));
    xmerge_horizon(x, 3, id_of(13, 0, 0));
    xmerge_horizon(x, 3, id_of(5, 0, 0)); /* never lowered */
    ASSERT_NULL(xmerge_next(x));          /* 2 is at 11 */
    xmerge_horizon(x, 2, id_of(20, 0, 0));
    ASSERT_NOT_NULL(e = xmerge_next(x));
    ASSERT_TRUE(e->data == &tag[2]);
    mem_free(e);
    ASSERT_U64_EQ(x->released, id_of(12, 1, 0));
    /* a waived origin (dead, drained) is not waited for */
    ASSERT_OK(xmerge_add(x, 1, id_of(30, 1, 0), &tag[4], 0));
    ASSERT_NULL(xmerge_next(x));
    xmerge_waive(x, 2, true);
    xmerge_horizon(x, 3, id_of(31, 0, 0));
    ASSERT_NOT_NULL(e = xmerge_next(x));
    mem_free(e);
    /* a republish older than what its origin queued since goes where it belongs */
    xmerge_waive(x, 2, false);
    ASSERT_OK(xmerge_add(x, 1, id_of(40, 1, 0), &tag[5], 0));
    ASSERT_OK(xmerge_add(x, 1, id_of(35, 1, 0), &tag[6], 0));
    xmerge_horizon(x, 2, id_of(50, 0, 0));
    xmerge_horizon(x, 3, id_of(50, 0, 0));
    ASSERT_NOT_NULL(e = xmerge_next(x));
    ASSERT_TRUE(e->data == &tag[6]);
    mem_free(e);
    ASSERT_EQ(x->pending, 1);
    xmerge_clear(x, NULL);
    ASSERT_EQ(x->pending, 0);
    ASSERT_NULL(xmerge_next(x));
    mem_free(x);
}

/* Hand @p len bytes at @p data on subject @p subj to @p handle (a handler of libnats's
 * thread that takes no connection). */
static void feed(cluster_t *c, void (*handle)(cluster_t *, natsMsg *), const char *subj,
                 const void *data, int len)
{
    natsMsg *nm = NULL;

    ASSERT_EQ(natsMsg_Create(&nm, subj, NULL, data, len), NATS_OK);
    handle(c, nm);
    natsMsg_Destroy(nm);
}

/* What arrives from the bus malformed is dropped and counted, never applied. */
TEST(xhome_malformed_bus_messages_are_dropped_and_counted)
{
    conf_t conf;
    cluster_t *c;
    cluster_stats_t st;
    cl_msg_t *m;
    natsMsg *nm = NULL;

    conf_defaults(&conf);
    conf.node_id = 1;
    snprintf(conf.cluster_url, sizeof(conf.cluster_url), "nats://127.0.0.1:1");
    conf.ncluster_nodes = 3;
    conf.cluster_nodes[0] = 1;
    conf.cluster_nodes[1] = 2;
    conf.cluster_nodes[2] = 3;
    c = cluster_new(&conf); /* not started: no thread, no connection */
    snprintf(c->prefix, sizeof(c->prefix), "cim.node."); /* what cluster_start sets */

    /* a watermark too short */
    m = mem_calloc(sizeof(*m) + 8);
    m->kind = MSG_XWM;
    m->len = 8;
    cluster__xh_take(c, m);
    mem_free(m);
    /* a message on this home's subject that is not one */
    ASSERT_EQ(natsMsg_Create(&nm, "cim.out.2.1", NULL, "junk", 4), NATS_OK);
    m = mem_calloc(sizeof(*m));
    m->kind = MSG_XIN;
    m->ptr = nm;
    cluster__xh_take(c, m); /* takes nm */
    mem_free(m);
    /* a check request with no ids */
    ASSERT_EQ(natsMsg_Create(&nm, "cim.node.1.xchk", "cim.node.2.xans", "0123456789ab", 12),
              NATS_OK);
    cluster__xh_on_check(c, NULL, nm);
    natsMsg_Destroy(nm);
    /* an answer too short */
    feed(c, cluster__xh_on_answer, "cim.node.1.xans", "short", 5);

    /* forwarded requests (a group's SEND and change) and their answers, malformed */
    ASSERT_EQ(natsMsg_Create(&nm, "cim.node.1.xsnd", "cim.node.2.xfa", "short", 5), NATS_OK);
    cluster__xh_on_fwd_send(c, NULL, nm);
    natsMsg_Destroy(nm);
    {
        /* header, type 0x9999 (not a group change), open, msg_id, three ids, no users */
        uint8_t op[64] = {0};
        size_t n = 21;
        op[n + 2] = 0x99;
        op[n + 3] = 0x99;
        n += 13;
        memcpy(op + n, "default\0alice\0" "1000\0", 19);
        n += 19 + 4;
        ASSERT_EQ(natsMsg_Create(&nm, "cim.node.1.xop", "cim.node.2.xfa", (const char *)op,
                                 (int)n), NATS_OK);
        cluster__xh_on_fwd_op(c, NULL, nm);
        natsMsg_Destroy(nm);
        op[n - 1] = 2; /* two users announced, none there */
        op[21 + 3] = 0x03; /* a real type: GROUP_JOIN */
        op[21 + 2] = 0x04;
        ASSERT_EQ(natsMsg_Create(&nm, "cim.node.1.xop", "cim.node.2.xfa", (const char *)op,
                                 (int)n), NATS_OK);
        cluster__xh_on_fwd_op(c, NULL, nm);
        natsMsg_Destroy(nm);
    }
    feed(c, cluster__xh_on_fwd_answer, "cim.node.1.xfa", "short", 5);
    /* an "applied" report of the old 8-byte form, and one naming no node of the cluster */
    feed(c, cluster__xh_on_applied, "cim.node.1.xapd", "12345678", 8);
    feed(c, cluster__xh_on_applied, "cim.node.1.xapd", "12345678\0\0\0\x09", 12);
    /* a query whose kind is neither 0 nor 1 */
    ASSERT_EQ(natsMsg_Create(&nm, "cim.node.1.xapq", "cim.node.2.xapd",
                             "12345678\x07" "default\0bob\0", 21), NATS_OK);
    cluster__xh_on_query(c, NULL, nm);
    natsMsg_Destroy(nm);
    /* a group's transient message with nothing after its names */
    feed(c, cluster__xh_on_group_transient, "cim.node.1.xtg", "default\0" "1000\0", 13);

    /* a check whose reply subject is not one of the cluster's */
    ASSERT_EQ(natsMsg_Create(&nm, "cim.node.1.xchk", "elsewhere.inbox",
                             "0123456789ab\0default\0alice\0bob\0", 31), NATS_OK);
    cluster__xh_on_check(c, NULL, nm);
    natsMsg_Destroy(nm);
    /* rejoin questions: too short; a copy that is no XHOME_MSG; a copy for another home */
    feed(c, cluster__rj_on_ask, "cim.node.1.xrjq", "\0\0", 2);
    feed(c, cluster__rj_on_ask, "cim.node.1.xrjq", "\0\0\0\x02junk", 8);
    {
        xhome_msg_t x;
        uint8_t *buf, *q;
        size_t len;
        sample(&x);
        x.home = 3; /* not this node */
        ASSERT_EQ(xhome_encode(&x, &buf, &len), 0);
        q = mem_alloc(4 + len);
        be32_put(q, x.origin);
        memcpy(q + 4, buf, len);
        feed(c, cluster__rj_on_ask, "cim.node.1.xrjq", q, (int)(4 + len));
        mem_free(q);
        mem_free(buf);
    }
    /* rejoin answers: too short; naming no node of the cluster; flags out of range */
    feed(c, cluster__rj_on_answer, "cim.node.1.xrja", "short", 5);
    {
        uint8_t a[21] = {0};
        be32_put(a + 8, 9);
        feed(c, cluster__rj_on_answer, "cim.node.1.xrja", a, 21);
        be32_put(a + 8, 2);
        a[12] = 0x80;
        feed(c, cluster__rj_on_answer, "cim.node.1.xrja", a, 21);
    }

    cluster_stats(c, &st);
    ASSERT_U64_EQ(st.xhome_dropped_total, 19);
    ASSERT_U64_EQ(st.xhome_held_total, 0);
    ASSERT_U64_EQ(st.xhome_consumed_total, 0);
    ASSERT_U64_EQ(st.xhome_pending, 0);
    cluster_free(c);
    nats_Close();
}
