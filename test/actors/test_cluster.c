/* cluster: the home-node hash (fixed vectors every build must reproduce, spread, stability
 * when a node leaves), what a standalone node answers, and a stop with messages behind it.
 * The bus itself is tested against a real nats-server by test/e2e/12-cluster.c. */
#include "actors/cluster.h"
#include "actors/cluster_int.h"
#include "core/home.h"
#include "core/mem.h"

#include <nats/nats.h>
#include <stdio.h>

#include "support/test.h"

/* Computed from core/home.h's definition by an independent implementation (Python): a change
 * here means every cluster must be re-homed. */
TEST(cluster_score_vectors)
{
    ASSERT_U64_EQ(home_score("default", "alice", 1), 0xd29b9ac97dbd74cdULL);
    ASSERT_U64_EQ(home_score("default", "alice", 2), 0x01f3a065c13743e1ULL);
    ASSERT_U64_EQ(home_score("default", "alice", 3), 0x3338c29b934e8632ULL);
    ASSERT_U64_EQ(home_score("acme", "10000001", 7), 0xc4574be929279cb4ULL);
    ASSERT_U64_EQ(home_score("default", "", 0), 0x8132e8dc188b4fd6ULL);
    /* an empty app is "default", as everywhere in the protocol */
    ASSERT_U64_EQ(home_score("", "alice", 1), home_score("default", "alice", 1));
}

TEST(cluster_home_vectors)
{
    static const uint32_t three[] = {1, 2, 3}, ten[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    static const struct {
        const char *app, *id;
        uint32_t of_three, of_ten;
    } v[] = {
        {"default", "alice", 1, 1},    {"default", "bob", 1, 0},
        {"default", "carol", 1, 8},    {"default", "dave", 3, 4},
        {"default", "erin", 1, 1},     {"acme", "alice", 3, 0},
        {"acme", "10000001", 3, 3},    {"default", "122947833329352704", 2, 4},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ASSERT_EQ(home_pick(three, 3, v[i].app, v[i].id), v[i].of_three);
        ASSERT_EQ(home_pick(ten, 10, v[i].app, v[i].id), v[i].of_ten);
    }
    /* the order of the list does not matter */
    static const uint32_t shuffled[] = {3, 1, 2};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        ASSERT_EQ(home_pick(shuffled, 3, v[i].app, v[i].id), v[i].of_three);
}

/* 10,000 ids over 3 nodes: each gets 25..42 %. */
TEST(cluster_home_spreads)
{
    static const uint32_t nodes[] = {1, 2, 3};
    uint32_t count[4] = {0};
    char id[32];

    for (int i = 0; i < 10000; i++) {
        snprintf(id, sizeof(id), "user%d", i);
        count[home_pick(nodes, 3, "default", id)]++;
    }
    for (int n = 1; n <= 3; n++) {
        ASSERT_LE(2500, count[n]);
        ASSERT_LE(count[n], 4200);
    }
    ASSERT_EQ(count[0], 0);
}

/* Rendezvous hashing: removing a node moves only that node's ids, and adding one moves
 * ids only onto it. */
TEST(cluster_home_stable)
{
    static const uint32_t four[] = {1, 2, 3, 4}, three[] = {1, 2, 4};
    int moved = 0;
    char id[32];

    for (int i = 0; i < 10000; i++) {
        uint32_t before, after;
        snprintf(id, sizeof(id), "g%d", i);
        before = home_pick(four, 4, "acme", id);
        after = home_pick(three, 3, "acme", id);
        if (before != 3)
            ASSERT_EQ(after, before);
        else
            moved++;
    }
    ASSERT_TRUE(moved > 1500 && moved < 3500); /* about a quarter */
}

/* Standalone: no thread, this node is home of everything and the only one alive. */
TEST(cluster_standalone)
{
    conf_t conf;
    const uint32_t *ids;
    cluster_stats_t st;
    cluster_t *c;

    conf_defaults(&conf);
    conf.node_id = 5;
    c = cluster_new(&conf);
    ASSERT_OK(cluster_start(c)); /* nothing to start */
    ASSERT_TRUE(!cluster_is_enabled(c));
    ASSERT_NULL(cluster_name(c));
    ASSERT_EQ(cluster_self(c), 5);
    ASSERT_EQ(cluster_nodes(c, &ids), 1);
    ASSERT_EQ(ids[0], 5);
    ASSERT_EQ(cluster_home(c, "default", "alice"), 5);
    ASSERT_EQ(cluster_home(c, "acme", "10000001"), 5);
    ASSERT_TRUE(cluster_node_alive(c, 5));
    ASSERT_TRUE(!cluster_node_alive(c, 1));
    ASSERT_TRUE(!cluster_bus_up(c));
    cluster_stats(c, &st);
    ASSERT_TRUE(!st.bus_up);
    ASSERT_EQ(st.peers_up, 0);
    ASSERT_EQ(cluster_rtt(c)->nle, 14);
    cluster_stop(c); /* never started: a no-op */
    cluster_free(c);
    cluster_free(NULL);
}

/* A cluster node before its thread runs: the configured list, peers not (yet) alive. */
TEST(cluster_configured_not_started)
{
    conf_t conf;
    const uint32_t *ids;
    cluster_t *c;

    conf_defaults(&conf);
    conf.node_id = 2;
    snprintf(conf.cluster_url, sizeof(conf.cluster_url), "nats://127.0.0.1:1");
    conf.cluster_nodes[0] = 3;
    conf.cluster_nodes[1] = 2;
    conf.cluster_nodes[2] = 1;
    conf.ncluster_nodes = 3;
    c = cluster_new(&conf);
    ASSERT_TRUE(cluster_is_enabled(c));
    ASSERT_STREQ(cluster_name(c), "cim");
    ASSERT_EQ(cluster_nodes(c, &ids), 3);
    ASSERT_EQ(ids[0], 3);
    ASSERT_EQ(cluster_home(c, "default", "dave"), 3);
    ASSERT_TRUE(cluster_node_alive(c, 2));
    ASSERT_TRUE(!cluster_node_alive(c, 1));
    ASSERT_TRUE(!cluster_node_alive(c, 9));
    ASSERT_TRUE(!cluster_bus_up(c));
    cluster_stop(c);
    cluster_free(c);
}

/* The cluster thread stopping: what its mailbox holds behind the stop is freed, not taken.
 * The subscriptions are gone by then: a JetStream message taken then (a drain probe coming
 * back) was acknowledged through a destroyed subscription, and the node crashed at
 * shutdown. Here, behind a stop: malformed JetStream messages (counted if taken) and
 * cluster_stop's own stop (taken, it would close the loop's handles twice). The bus is
 * unreachable: the thread runs and retries in the background. */
TEST(cluster_stop_frees_what_follows_the_stop)
{
    conf_t conf;
    cluster_stats_t st;
    cluster_t *c;
    cl_msg_t *m;
    natsMsg *nm = NULL;

    conf_defaults(&conf);
    conf.node_id = 1;
    snprintf(conf.cluster_url, sizeof(conf.cluster_url), "nats://127.0.0.1:1");
    conf.cluster_nodes[0] = 1;
    conf.cluster_nodes[1] = 2;
    conf.ncluster_nodes = 2;
    c = cluster_new(&conf);
    ASSERT_OK(cluster_start(c));
    m = mem_calloc(sizeof(*m));
    m->kind = MSG_STOP;
    cluster__post(c, m, true);
    for (int i = 0; i < 8; i++) {
        ASSERT_EQ(natsMsg_Create(&nm, "cim.out.2.1", NULL, "junk", 4), NATS_OK);
        m = mem_calloc(sizeof(*m));
        m->kind = MSG_XIN;
        m->ptr = nm;
        cluster__post(c, m, true); /* refused once the stop is taken: freed the same */
    }
    cluster_stop(c);
    cluster_stats(c, &st);
    ASSERT_U64_EQ(st.xhome_dropped_total, 0);
    cluster_free(c);
}
