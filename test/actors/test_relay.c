/* relay: what arrives from the bus — the header's format pinned byte by byte, the
 * boundaries of its parser, and which worker each message goes to. The sessions on both
 * sides are tested end to end against real nodes by test/e2e/12-cluster.c. */
#include "actors/relay.h"

#include <string.h>

#include "actors/cluster.h"
#include "actors/server.h"
#include "core/chan.h"
#include "core/conf.h"
#include "core/mem.h"
#include "support/test.h"

#define NW 2

typedef struct fixture {
    conf_t conf;
    server_t srv;
    worker_t *workers[NW];
} fixture_t;

static void setup(fixture_t *f)
{
    memset(f, 0, sizeof(*f));
    ASSERT_EQ(chan_global_init(), 0); /* worker_new makes a cipher context */
    conf_defaults(&f->conf);
    f->srv.conf = &f->conf;
    f->srv.nworkers = NW;
    f->srv.workers = f->workers;
    for (uint32_t i = 0; i < NW; i++) {
        f->workers[i] = worker_new(&f->srv, i);
        ASSERT_EQ(worker_open(f->workers[i]), 0);
    }
}

static void teardown(fixture_t *f)
{
    for (uint32_t i = 0; i < NW; i++) {
        worker_t *w = f->workers[i];
        uv_close((uv_handle_t *)&w->flush, NULL);
        uv_close((uv_handle_t *)&w->sweep, NULL);
        mbox_close(&w->box, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        worker_drain(w);
        ASSERT_EQ(uv_loop_close(&w->loop), 0);
        worker_free(w);
    }
    chan_global_free();
}

/* The next message in worker @p i's mailbox, or NULL. Free with take_free. */
static worker_msg_t *take(fixture_t *f, uint32_t i)
{
    mbox_node_t *n = mbox_pop(&f->workers[i]->box);
    return n != NULL ? container_of(n, worker_msg_t, node) : NULL;
}

static void take_free(worker_msg_t *m)
{
    if (m->kind == WORKER_MSG_RELAY)
        mem_free(m->u.relay.data);
    mem_free(m);
}

/* relay.h's header, written here independently of relay.c: big-endian, 24 bytes. */
static size_t msg(uint8_t *out, uint8_t kind, uint32_t edge, uint64_t sid, uint32_t type,
                  uint32_t home, const char *body)
{
    size_t n = body != NULL ? strlen(body) : 0;
    const uint32_t words[] = {edge, (uint32_t)(sid >> 32), (uint32_t)sid, type, home};

    memset(out, 0, RELAY_HDR);
    out[0] = kind;
    for (size_t i = 0; i < 5; i++)
        for (size_t b = 0; b < 4; b++)
            out[4 + 4 * i + b] = (uint8_t)(words[i] >> (24 - 8 * b));
    if (n > 0)
        memcpy(out + RELAY_HDR, body, n);
    return RELAY_HDR + n;
}

TEST(relay_edge_messages_go_to_the_worker_in_the_sid)
{
    fixture_t f;
    uint8_t buf[64];
    uint64_t sid = (1ULL << 48) | 0x123456789ULL;
    worker_msg_t *m;
    size_t n;

    setup(&f);
    n = msg(buf, RELAY_FRAME, 2, sid, 0x0106, 1, "pong");
    relay_on_bus(&f.srv, false, buf, n);
    ASSERT_NULL(take(&f, 0));
    ASSERT_NOT_NULL(m = take(&f, 1));
    ASSERT_EQ(m->kind, WORKER_MSG_RELAY);
    ASSERT_EQ(m->u.relay.kind, RELAY_FRAME);
    ASSERT_TRUE(!m->u.relay.to_home);
    ASSERT_EQ(m->u.relay.edge, 2);
    ASSERT_U64_EQ(m->u.relay.sid, sid);
    ASSERT_EQ(m->u.relay.type, 0x0106);
    ASSERT_EQ(m->u.relay.home, 1);
    ASSERT_EQ(m->u.relay.len, 4);
    ASSERT_MEMEQ(m->u.relay.data, "pong", 4);
    take_free(m);
    ASSERT_NULL(take(&f, 1));

    /* a header alone (CLOSED) carries no body */
    n = msg(buf, RELAY_CLOSED, 2, sid, 0, 1, NULL);
    relay_on_bus(&f.srv, false, buf, n);
    ASSERT_NOT_NULL(m = take(&f, 1));
    ASSERT_EQ(m->u.relay.kind, RELAY_CLOSED);
    ASSERT_EQ(m->u.relay.len, 0);
    ASSERT_NULL(m->u.relay.data);
    take_free(m);

    /* a sid naming a worker this process does not have: dropped */
    n = msg(buf, RELAY_FRAME, 2, (uint64_t)NW << 48 | 1, 0x0106, 1, "x");
    relay_on_bus(&f.srv, false, buf, n);
    ASSERT_NULL(take(&f, 0));
    ASSERT_NULL(take(&f, 1));
    teardown(&f);
}

TEST(relay_malformed_headers_are_dropped)
{
    fixture_t f;
    uint8_t buf[64];
    size_t n;

    setup(&f);
    n = msg(buf, RELAY_FRAME, 2, 1, 0x0105, 1, NULL);
    relay_on_bus(&f.srv, true, buf, n - 1); /* 23 bytes: short by one */
    relay_on_bus(&f.srv, true, buf, 0);
    buf[0] = 0; /* no such kind */
    relay_on_bus(&f.srv, true, buf, n);
    buf[0] = RELAY_OVERFLOW; /* local only: never from the bus */
    relay_on_bus(&f.srv, true, buf, n);
    for (uint32_t i = 0; i < NW; i++)
        ASSERT_NULL(take(&f, i));
    teardown(&f);
}

/* At the home, one session's messages all go to one worker: the one its (edge, sid) hash
 * names, whichever kind they are. */
TEST(relay_home_messages_of_a_session_share_a_worker)
{
    fixture_t f;
    uint8_t buf[64];
    unsigned seen[NW] = {0};

    setup(&f);
    for (uint64_t sid = 1; sid <= 64; sid++) {
        int at = -1;
        for (uint8_t kind = RELAY_LOGIN; kind <= RELAY_CLOSED; kind++) {
            size_t n = msg(buf, kind, 3, sid, 0, 1, "b");
            relay_on_bus(&f.srv, true, buf, n);
            for (uint32_t i = 0; i < NW; i++) {
                worker_msg_t *m = take(&f, i);
                if (m == NULL)
                    continue;
                ASSERT_TRUE(m->u.relay.to_home);
                ASSERT_EQ(m->u.relay.kind, kind);
                ASSERT_TRUE(at == -1 || at == (int)i);
                at = (int)i;
                take_free(m);
            }
        }
        ASSERT_TRUE(at >= 0);
        seen[at]++;
    }
    /* and sessions spread over the workers */
    for (uint32_t i = 0; i < NW; i++)
        ASSERT_TRUE(seen[i] > 8);
    teardown(&f);
}

TEST(relay_node_down_reaches_every_worker)
{
    fixture_t f;
    worker_msg_t *m;

    setup(&f);
    relay_on_node_down(&f.srv, 3);
    relay_on_node_down(&f.srv, CLUSTER_ALL_NODES);
    for (uint32_t i = 0; i < NW; i++) {
        ASSERT_NOT_NULL(m = take(&f, i));
        ASSERT_EQ(m->kind, WORKER_MSG_NODE_DOWN);
        ASSERT_EQ(m->u.down.node, 3);
        take_free(m);
        ASSERT_NOT_NULL(m = take(&f, i));
        ASSERT_EQ(m->u.down.node, CLUSTER_ALL_NODES);
        take_free(m);
        ASSERT_NULL(take(&f, i));
    }
    teardown(&f);
}
