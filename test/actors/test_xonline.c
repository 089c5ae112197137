/* xonline: the bus formats of CONTACT_LIST's question to the contacts' homes and of their
 * answer (round trips, and the boundaries of their parsers), and a cluster that drops and
 * counts what it cannot parse and never waits for a home it cannot ask. The whole path is
 * tested end to end against real nodes by test/e2e/12-cluster.c
 * (e2e_cluster_xhome_contact_online). */
#include "actors/xonline.h"

#include <nats/nats.h>
#include <string.h>

#include "actors/cluster.h"
#include "actors/cluster_int.h"
#include "core/conf.h"
#include "core/mem.h"
#include "core/rc.h"
#include "support/test.h"

static uint8_t buf[XONLINE_ASK_MAX + 16];

TEST(xonline_ask_round_trip)
{
    const char *users[] = {"alice", "b.o-b@x", "c"};
    char user[KV_ID_MAX + 1];
    xonline_ask_t q;
    size_t len = 0, pos = 0;

    ASSERT_OK(xonline_ask_encode(0x0102030405060708ULL, "default", users, 3, buf, &len));
    ASSERT_EQ(len, XONLINE_ASK_HDR + 8 + 6 + 8 + 2);
    static const uint8_t hdr[XONLINE_ASK_HDR] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 3};
    ASSERT_MEMEQ(buf, hdr, sizeof(hdr));
    ASSERT_MEMEQ(buf + XONLINE_ASK_HDR, "default\0alice\0b.o-b@x\0c\0", len - XONLINE_ASK_HDR);
    ASSERT_OK(xonline_ask_parse(buf, len, &q));
    ASSERT_U64_EQ(q.token, 0x0102030405060708ULL);
    ASSERT_EQ(q.n, 3);
    ASSERT_STREQ(q.app, "default");
    for (size_t i = 0; i < 3; i++) {
        ASSERT_TRUE(xonline_ask_user(&q, &pos, user));
        ASSERT_STREQ(user, users[i]);
    }
    ASSERT_TRUE(!xonline_ask_user(&q, &pos, user));
}

/* The largest question: XONLINE_MAX users of 64 bytes; one more is refused both ways. */
TEST(xonline_ask_max)
{
    static char ids[XONLINE_MAX + 1][KV_ID_MAX + 1];
    static const char *users[XONLINE_MAX + 1];
    static uint8_t big[XONLINE_ASK_MAX + KV_ID_MAX + 1];
    char app[KV_ID_MAX + 1], user[KV_ID_MAX + 1];
    xonline_ask_t q;
    size_t len = 0, pos = 0, n = 0;

    memset(app, 'a', KV_ID_MAX);
    app[KV_ID_MAX] = '\0';
    for (size_t i = 0; i <= XONLINE_MAX; i++) {
        memset(ids[i], 'u', KV_ID_MAX);
        ids[i][KV_ID_MAX] = '\0';
        snprintf(ids[i], 6, "%05zu", i);
        ids[i][5] = 'u';
        users[i] = ids[i];
    }
    ASSERT_OK(xonline_ask_encode(1, app, users, XONLINE_MAX, big, &len));
    ASSERT_EQ(len, XONLINE_ASK_MAX);
    ASSERT_OK(xonline_ask_parse(big, len, &q));
    ASSERT_EQ(q.n, XONLINE_MAX);
    while (xonline_ask_user(&q, &pos, user))
        ASSERT_STREQ(user, ids[n++]);
    ASSERT_EQ(n, XONLINE_MAX);
    ASSERT_EQ(xonline_ask_encode(1, app, users, XONLINE_MAX + 1, big, &len), RC_EINVAL);
    /* the same on the wire: a count over the maximum, and a length over it */
    big[8] = (uint8_t)((XONLINE_MAX + 1) >> 8);
    big[9] = (uint8_t)(XONLINE_MAX + 1);
    memcpy(big + len, ids[XONLINE_MAX], KV_ID_MAX + 1);
    ASSERT_EQ(xonline_ask_parse(big, len + KV_ID_MAX + 1, &q), RC_EPROTO);
}

/* Every malformed question is refused: truncated anywhere, a count of 0 or that does not
 * match, bytes after the last user, strings that are not ids. */
TEST(xonline_ask_parse_boundaries)
{
    const char *users[] = {"alice", "bob"};
    const char *longid = "0123456789012345678901234567890123456789012345678901234567890123X";
    uint8_t bad[sizeof(buf)];
    xonline_ask_t q, keep;
    size_t len = 0;

    ASSERT_EQ(xonline_ask_encode(1, "default", users, 0, buf, &len), RC_EINVAL);
    ASSERT_EQ(xonline_ask_encode(1, "default", (const char *[]){longid}, 1, buf, &len),
              RC_EINVAL);
    ASSERT_EQ(xonline_ask_encode(1, longid, users, 2, buf, &len), RC_EINVAL);
    ASSERT_OK(xonline_ask_encode(7, "default", users, 2, buf, &len));
    memset(&keep, 0x5a, sizeof(keep));
    for (size_t n = 0; n < len; n++) { /* any cut */
        q = keep;
        ASSERT_EQ(xonline_ask_parse(buf, n, &q), RC_EPROTO);
        ASSERT_MEMEQ(&q, &keep, sizeof(q)); /* nothing written on failure */
    }
    ASSERT_EQ(xonline_ask_parse(NULL, 0, &q), RC_EPROTO);
    memcpy(bad, buf, len);
    bad[len] = 'x'; /* a byte after the last user */
    ASSERT_EQ(xonline_ask_parse(bad, len + 1, &q), RC_EPROTO);
    bad[len] = '\0'; /* an empty id after it */
    ASSERT_EQ(xonline_ask_parse(bad, len + 1, &q), RC_EPROTO);
    memcpy(bad, buf, len);
    bad[9] = 3; /* says 3, has 2 */
    ASSERT_EQ(xonline_ask_parse(bad, len, &q), RC_EPROTO);
    bad[9] = 1; /* says 1, has 2 */
    ASSERT_EQ(xonline_ask_parse(bad, len, &q), RC_EPROTO);
    bad[9] = 0; /* none */
    ASSERT_EQ(xonline_ask_parse(bad, len, &q), RC_EPROTO);
    memcpy(bad, buf, len);
    bad[XONLINE_ASK_HDR + 8 + 1] = ' '; /* "a ice": not an id */
    ASSERT_EQ(xonline_ask_parse(bad, len, &q), RC_EPROTO);
    memcpy(bad, buf, len);
    bad[XONLINE_ASK_HDR] = '\0'; /* an empty app */
    ASSERT_EQ(xonline_ask_parse(bad, len, &q), RC_EPROTO);
    memcpy(bad, buf, len);
    bad[XONLINE_ASK_HDR + 8 + 5] = 'x'; /* "alicexbob", then one user short */
    ASSERT_EQ(xonline_ask_parse(bad, len, &q), RC_EPROTO);
    /* an id of 65 bytes */
    memcpy(bad, buf, XONLINE_ASK_HDR + 8);
    memcpy(bad + XONLINE_ASK_HDR + 8, longid, strlen(longid) + 1);
    bad[9] = 1;
    ASSERT_EQ(xonline_ask_parse(bad, XONLINE_ASK_HDR + 8 + strlen(longid) + 1, &q), RC_EPROTO);
    ASSERT_OK(xonline_ask_parse(buf, len, &q)); /* the original still parses */
}

TEST(xonline_ans_round_trip)
{
    xonline_ans_t a;
    size_t len;

    len = xonline_ans_init(buf, 0x1122334455667788ULL, 3, 10);
    ASSERT_EQ(len, XONLINE_ANS_HDR + 2);
    xonline_ans_set(buf, 0);
    xonline_ans_set(buf, 9);
    static const uint8_t want[] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
                                   0, 0, 0, 3, 0, 10, 0x01, 0x02};
    ASSERT_MEMEQ(buf, want, sizeof(want));
    ASSERT_OK(xonline_ans_parse(buf, len, &a));
    ASSERT_U64_EQ(a.token, 0x1122334455667788ULL);
    ASSERT_EQ(a.node, 3);
    ASSERT_EQ(a.n, 10);
    for (size_t i = 0; i < 10; i++)
        ASSERT_EQ(xonline_ans_get(&a, i), i == 0 || i == 9);
    /* the largest */
    len = xonline_ans_init(buf, 1, 1, XONLINE_MAX);
    ASSERT_EQ(len, XONLINE_ANS_MAX);
    xonline_ans_set(buf, XONLINE_MAX - 1);
    ASSERT_OK(xonline_ans_parse(buf, len, &a));
    ASSERT_TRUE(xonline_ans_get(&a, XONLINE_MAX - 1));
    ASSERT_TRUE(!xonline_ans_get(&a, 0));
}

/* Every malformed answer is refused: a length that is not its count's, a count of 0 or
 * over the maximum, a bit past the count. */
TEST(xonline_ans_parse_boundaries)
{
    uint8_t bad[XONLINE_ANS_MAX + 8];
    xonline_ans_t a;
    size_t len;

    len = xonline_ans_init(buf, 5, 2, 9);
    for (size_t n = 0; n < len; n++)
        ASSERT_EQ(xonline_ans_parse(buf, n, &a), RC_EPROTO);
    memcpy(bad, buf, len);
    bad[len] = 0;
    ASSERT_EQ(xonline_ans_parse(bad, len + 1, &a), RC_EPROTO);
    bad[13] = 0; /* no users */
    ASSERT_EQ(xonline_ans_parse(bad, XONLINE_ANS_HDR, &a), RC_EPROTO);
    bad[12] = (uint8_t)((XONLINE_MAX + 1) >> 8); /* too many */
    bad[13] = (uint8_t)(XONLINE_MAX + 1);
    ASSERT_EQ(xonline_ans_parse(bad, XONLINE_ANS_HDR + (XONLINE_MAX + 8) / 8, &a), RC_EPROTO);
    memcpy(bad, buf, len);
    bad[len - 1] = 0x02; /* user 9 of 9 (0..8) */
    ASSERT_EQ(xonline_ans_parse(bad, len, &a), RC_EPROTO);
    bad[len - 1] = 0x01; /* user 8: fine */
    ASSERT_OK(xonline_ans_parse(bad, len, &a));
    ASSERT_TRUE(xonline_ans_get(&a, 8));
    len = xonline_ans_init(buf, 5, 2, 8); /* a whole byte: no stray bits possible */
    buf[len - 1] = 0xff;
    ASSERT_OK(xonline_ans_parse(buf, len, &a));
}

static cluster_t *cluster_of_three(conf_t *conf)
{
    cluster_t *c;

    conf_defaults(conf);
    conf->node_id = 1;
    snprintf(conf->cluster_url, sizeof(conf->cluster_url), "nats://127.0.0.1:1");
    conf->ncluster_nodes = 3;
    conf->cluster_nodes[0] = 1;
    conf->cluster_nodes[1] = 2;
    conf->cluster_nodes[2] = 3;
    c = cluster_new(conf); /* not started: no thread, no connection, bus down */
    snprintf(c->prefix, sizeof(c->prefix), "cim.node."); /* what cluster_start sets */
    return c;
}

/* @p data arrives at node 1 of @p c on cim.node.1<@p what> (".xonl" or ".xona"). */
static void arrive(cluster_t *c, const char *what, const char *reply, const void *data,
                   size_t len)
{
    natsMsg *nm = NULL;
    char subj[32];

    snprintf(subj, sizeof(subj), "cim.node.1%s", what);
    ASSERT_EQ(natsMsg_Create(&nm, subj, reply, data, (int)len), NATS_OK);
    if (strcmp(what, ".xonl") == 0)
        cluster__onl_on_ask(c, NULL, nm);
    else
        cluster__onl_on_answer(c, nm);
    natsMsg_Destroy(nm);
}

/* What arrives malformed is dropped and counted; a question whose homes cannot be asked
 * (the bus is down) is answered at once, those homes counted unanswered. */
TEST(xonline_cluster_drops_and_never_waits)
{
    const char *users[] = {"alice"};
    conf_t conf;
    cluster_t *c = cluster_of_three(&conf);
    cluster_stats_t st;
    xonline_req_t *q;
    cl_msg_t *m;
    size_t len = 0;

    ASSERT_EQ(nats_Open(-1), NATS_OK); /* messages are garbage-collected by the library */
    /* a question with no reply subject, one with a reply outside the cluster, junk */
    ASSERT_OK(xonline_ask_encode(1, "default", users, 1, buf, &len));
    arrive(c, ".xonl", NULL, buf, len);
    arrive(c, ".xonl", "elsewhere.x", buf, len);
    arrive(c, ".xonl", "cim.node.2.xona", "junk", 4);
    /* an answer too short */
    arrive(c, ".xona", NULL, "short", 5);
    cluster_stats(c, &st);
    ASSERT_U64_EQ(st.xhome_dropped_total, 4);

    /* contacts of homes 2 and 3, the bus down: handed back at once (nobody to hand it to
     * here: freed), nothing asked, both homes unanswered */
    q = xonline_req_new(3);
    q->n = 3;
    snprintf(q->app, sizeof(q->app), "default");
    for (uint32_t i = 0; i < 3; i++) {
        snprintf(q->ents[i].user, sizeof(q->ents[i].user), "u%u", i);
        q->ents[i].home = i + 1;
        q->ents[i].remote = i != 0;
    }
    m = mem_calloc(sizeof(*m));
    m->kind = MSG_XONL;
    m->ptr = q;
    cluster__onl_take(c, m); /* takes q */
    mem_free(m);
    ASSERT_NULL(c->onl_waits);
    /* an answer to no question is nothing */
    m = mem_calloc(sizeof(*m) + XONLINE_ANS_MAX);
    m->kind = MSG_XONA;
    m->len = xonline_ans_init(m->data, 99, 2, 1);
    cluster__onl_take(c, m);
    mem_free(m);
    cluster_stats(c, &st);
    ASSERT_U64_EQ(st.online_asked_total, 0);
    ASSERT_U64_EQ(st.online_unanswered_total, 2);
    ASSERT_U64_EQ(st.xhome_dropped_total, 4);
    cluster_free(c);
    nats_Close();

    /* standalone: nothing to ask, the caller keeps the request */
    conf_defaults(&conf);
    c = cluster_new(&conf);
    q = xonline_req_new(0);
    ASSERT_EQ(cluster_online_ask(c, q), RC_ECLOSED);
    mem_free(q);
    cluster_free(c);
}
