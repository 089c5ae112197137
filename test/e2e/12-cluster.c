/* Integration: cimd nodes on a real NATS bus (Debian's nats-server, started by the test on
 * a free loopback port) — health, /v1/node and /metrics of a three-node cluster, the bus
 * going away and coming back, a node killed and restarted, a node that starts before its
 * bus, the config errors, and a standalone node that pays nothing for any of it.
 *
 * Every wait is a poll against a deadline (a loaded two-core machine, sanitizers): the
 * deadlines are generous, the assertions are about what eventually holds. */
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "actors/cluster.h"
#include "core/home.h"
#include "core/snowflake.h"
#include "support/http.h"
#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"
#include "support/tnats.h"

#define NODES 3

/* What a failed wait dumps. */
static tsrv_t *shown_nodes;
static size_t nshown;
static tnats_t *shown_nats;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void dump_all(void)
{
    for (size_t i = 0; i < nshown; i++)
        if (shown_nodes[i].log[0] != '\0')
            tsrv_dump_log(&shown_nodes[i]);
    if (shown_nats != NULL)
        tnats_dump_log(shown_nats);
}

/* Poll @p cond every 50 ms until it holds; fail after @p ms. @return the ms it took. */
#define EVENTUALLY(cond, ms, ...)                                                          \
    ({                                                                                     \
        int64_t t0_ = now_ms();                                                            \
        while (!(cond)) {                                                                  \
            if (now_ms() - t0_ > (ms)) {                                                   \
                dump_all();                                                                \
                TEST_FAIL_(__VA_ARGS__);                                                   \
            }                                                                              \
            sleep_ms(50);                                                                  \
        }                                                                                  \
        now_ms() - t0_;                                                                    \
    })

/* The first "<prefix><k>" (k = 0, 1, ...) of app "default" whose home is node @p node of
 * 1..NODES (home_pick: the documented rendezvous hash). @return @p out. */
static const char *homed(int node, const char *prefix, char out[32])
{
    static const uint32_t ids[NODES] = {1, 2, 3};

    for (int k = 0;; k++) {
        snprintf(out, 32, "%s%d", prefix, k);
        if (home_pick(ids, NODES, "default", out) == (uint32_t)node)
            return out;
    }
}

/* ---- one node's view ---------------------------------------------------------------- */

static long healthz(const tsrv_t *t, char *body, size_t len)
{
    thttp_t *r = malloc(sizeof(*r));
    long status;

    ASSERT_NOT_NULL(r);
    status = thttp(r, t, "GET", "/healthz", NULL, NULL);
    if (body != NULL)
        snprintf(body, len, "%.*s", (int)(len - 1), r->body);
    free(r);
    return status;
}

static bool healthy(const tsrv_t *t)
{
    return healthz(t, NULL, 0) == 200;
}

static bool bus_down(const tsrv_t *t)
{
    char body[64];
    return healthz(t, body, sizeof(body)) == 503 && strcmp(body, "bus down\n") == 0;
}

/* GET /v1/node, parsed (decref it). */
static json_t *node_info(const tsrv_t *t, const char *bearer)
{
    thttp_t *r = malloc(sizeof(*r));
    json_error_t err;
    json_t *j;

    ASSERT_NOT_NULL(r);
    if (thttp(r, t, "GET", "/v1/node", bearer, NULL) != 200)
        TEST_FAIL_("GET /v1/node: %ld %s", r->status, r->body);
    ASSERT_TRUE(strstr(r->ctype, "application/json") != NULL);
    if ((j = json_loads(r->body, 0, &err)) == NULL)
        TEST_FAIL_("/v1/node is not JSON (%s): %s", err.text, r->body);
    free(r);
    return j;
}

/* The nodes /v1/node says are alive, as a bit set of ids. */
static unsigned alive_set(const tsrv_t *t)
{
    json_t *j = node_info(t, NULL), *v;
    unsigned set = 0;
    size_t i;

    json_array_foreach(json_object_get(j, "nodes"), i, v)
        if (json_is_true(json_object_get(v, "alive")))
            set |= 1u << json_integer_value(json_object_get(v, "id"));
    json_decref(j);
    return set;
}

static const char *bus_state(const tsrv_t *t, char out[16])
{
    json_t *j = node_info(t, NULL);
    snprintf(out, 16, "%s", json_string_value(json_object_get(j, "bus")));
    json_decref(j);
    return out;
}

/* /metrics, into @p r (heap: a page is large). */
static void metrics(const tsrv_t *t, thttp_t *r)
{
    ASSERT_EQ(thttp(r, t, "GET", "/metrics", NULL, NULL), 200);
}

static double metric_of(const tsrv_t *t, const char *series)
{
    thttp_t *r = malloc(sizeof(*r));
    double v;
    ASSERT_NOT_NULL(r);
    metrics(t, r);
    v = thttp_metric(r->body, series);
    free(r);
    return v;
}

/* Does process @p pid have a thread named @p name? */
static bool has_thread(pid_t pid, const char *name)
{
    char path[320], comm[64];
    struct dirent *e;
    bool found = false;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    ASSERT_NOT_NULL(d = opendir(path));
    while (!found && (e = readdir(d)) != NULL) {
        FILE *f;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%.255s/comm", (int)pid, e->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        if (fgets(comm, sizeof(comm), f) != NULL) {
            comm[strcspn(comm, "\n")] = '\0';
            found = strcmp(comm, name) == 0;
        }
        fclose(f);
    }
    closedir(d);
    return found;
}

static size_t timeline_n(const tsrv_t *t, const char *user, const char *dev);

/* ---- a cluster ---------------------------------------------------------------------- */

/* One data directory made with `cimctl init`, for every node to copy (one identity key,
 * the same apps). @p seed: a new directory's path. */
static void seed_dir(char seed[256])
{
    char out[256], path[300];

    snprintf(seed, 256, "/tmp/cimtest-seed-XXXXXX");
    ASSERT_NOT_NULL(mkdtemp(seed));
    snprintf(path, sizeof(path), "%s/data", seed);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", path, "init", NULL), 0);
}

static void rm_rf(const char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ASSERT_EQ(system(cmd), 0);
}

/* Node @p id on a copy of the seed, on the bus @p url, in a cluster of nodes 1..NODES. */
static void start_node(tsrv_t *t, const char *seed, int id, const char *url)
{
    char dir[256], cmd[700], nid[8];

    snprintf(dir, sizeof(dir), "/tmp/cimtest-XXXXXX");
    ASSERT_NOT_NULL(mkdtemp(dir));
    snprintf(cmd, sizeof(cmd), "cp -a '%s/data/.' '%s/'", seed, dir);
    ASSERT_EQ(system(cmd), 0);
    snprintf(nid, sizeof(nid), "%d", id);
    tsrv_start_on(t, dir, "--node_id", nid, "--cluster_url", url, "--cluster_nodes", "1,2,3",
                  "--workers", "1", NULL);
}

/* nats-server and nodes 1..NODES, all healthy and seeing each other. */
static void start_cluster(tnats_t *n, tsrv_t t[NODES], char seed[256])
{
    tnats_start(n);
    shown_nats = n;
    seed_dir(seed);
    memset(t, 0, NODES * sizeof(*t));
    shown_nodes = t;
    nshown = NODES;
    for (int i = 0; i < NODES; i++)
        start_node(&t[i], seed, i + 1, n->url);
    for (int i = 0; i < NODES; i++) {
        EVENTUALLY(healthy(&t[i]), 15000, "node %d not healthy", i + 1);
        EVENTUALLY(alive_set(&t[i]) == 0xe, 15000, "node %d does not see nodes 1..3 alive", i + 1);
    }
}

/* Stop every node (one the test killed, tsrv_kill: only its directory is removed) and the
 * bus, and remove the seed. */
static void stop_cluster(tnats_t *n, tsrv_t t[NODES], const char *seed)
{
    for (int i = 0; i < NODES; i++) {
        if (t[i].pid == 0)
            (void)tsrv_stop(&t[i]);
        else
            ASSERT_EQ(tsrv_stop(&t[i]), 0);
    }
    tnats_free(n);
    rm_rf(seed);
    shown_nats = NULL;
    nshown = 0;
}

/* ---- tests -------------------------------------------------------------------------- */

TEST_TIMEOUT(e2e_cluster_three_nodes, 120)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], series[128];
    thttp_t *r = malloc(sizeof(*r));
    cim_SendRsp sent;

    ASSERT_NOT_NULL(r);
    start_cluster(&n, t, seed);
    for (int i = 0; i < NODES; i++) {
        json_t *j = node_info(&t[i], NULL), *v;
        size_t k;
        ASSERT_EQ(json_integer_value(json_object_get(j, "node_id")), i + 1);
        ASSERT_STREQ(json_string_value(json_object_get(j, "cluster")), "cim");
        ASSERT_STREQ(json_string_value(json_object_get(j, "bus")), "up");
        ASSERT_EQ(json_array_size(json_object_get(j, "nodes")), NODES);
        json_array_foreach(json_object_get(j, "nodes"), k, v) {
            ASSERT_EQ(json_integer_value(json_object_get(v, "id")), (json_int_t)k + 1);
            ASSERT_TRUE(json_is_true(json_object_get(v, "alive")));
            ASSERT_EQ(json_is_true(json_object_get(v, "self")), (int)k == i);
        }
        json_decref(j);

        /* one identity: every node serves the key of the directory they were copied from */
        ASSERT_MEMEQ(t[i].key, t[0].key, sizeof(t[0].key));
        /* the cluster thread, its log, its series */
        ASSERT_TRUE(has_thread(t[i].pid, "cimd-cluster"));
        ASSERT_TRUE(tsrv_log_has(&t[i], "cluster: bus up: connected to nats://127.0.0.1:"));
        metrics(&t[i], r);
        snprintf(series, sizeof(series), "cim_node_info{node=\"%d\",cluster=\"cim\"}", i + 1);
        ASSERT_EQ(thttp_metric(r->body, series), 1);
        ASSERT_EQ(thttp_metric(r->body, "cim_cluster_bus_up"), 1);
        ASSERT_EQ(thttp_metric(r->body, "cim_cluster_peers_up"), NODES - 1);
        ASSERT_EQ(thttp_metric(r->body, "cim_cluster_reconnects_total"), 0);
        ASSERT_TRUE(thttp_metric(r->body, "cim_cluster_bus_rtt_seconds_bucket{le=\"+Inf\"}") >= 0);
        /* pings go out every 5 s, the first 1.5 s after the start */
        EVENTUALLY(metric_of(&t[i], "cim_cluster_bus_rtt_seconds_count") > 0, 15000,
                   "node %d measured no bus round trip", i + 1);
    }
    ASSERT_TRUE(tsrv_log_has(&t[0], "cluster: node 2 is up"));
    ASSERT_TRUE(tsrv_log_has(&t[0], "cluster: node 3 is up"));

    /* cimdump tells the directories apart once a node has issued an id */
    char dump[4096];
    ASSERT_EQ(tsrv_run_tool(dump, sizeof(dump), "cimdump", "--data", t[2].dir, "stats", NULL), 0);
    ASSERT_TRUE(strstr(dump, "\nnode        - (no id issued yet)\n") != NULL);
    char carol_id[32], dave_id[32];
    cimc_t *carol = tsrv_login(&t[2], homed(3, "carol", carol_id), "d1", NULL);
    cimc_t *dave = tsrv_login(&t[2], homed(3, "dave", dave_id), "d1", NULL);
    ASSERT_OK(tmsg_send(carol, dave_id, "c1", cim_MsgType_TEXT, "hi", 2, false, &sent));
    ASSERT_EQ(sent.code, cim_Code_OK);
    cimc_close(carol);
    cimc_close(dave);
    /* users homed on the node they reached never touch the bus */
    ASSERT_EQ(metric_of(&t[2], "cim_cluster_relayed_total{dir=\"sent\"}"), 0);
    ASSERT_EQ(metric_of(&t[2], "cim_cluster_relayed_total{dir=\"received\"}"), 0);
    ASSERT_EQ(tsrv_run_tool(dump, sizeof(dump), "cimdump", "--data", t[2].dir, "stats", NULL), 0);
    ASSERT_TRUE(strstr(dump, "\nnode        3 (the node id in the last id issued)\n") != NULL);
    ASSERT_EQ(tsrv_run_tool(dump, sizeof(dump), "cimdump", "--data", t[2].dir, "--json", "stats",
                            NULL),
              0);
    ASSERT_TRUE(strstr(dump, "\"node_id\":3,") != NULL);

    /* cimctl says which node it talks to (no data directory needed) */
    char admin[32], out[512];
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", t[1].admin_port);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "node", "--admin", admin, NULL), 0);
    ASSERT_STREQ(out, "node_id  2\ncluster  cim\nbus      up\nnode 1    alive\n"
                      "node 2    alive (this node)\nnode 3    alive\n");
    free(r);
    stop_cluster(&n, t, seed);
}

TEST_TIMEOUT(e2e_cluster_bus_down_and_back, 150)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], st[16];
    int64_t took;

    start_cluster(&n, t, seed);
    tnats_stop(&n);
    for (int i = 0; i < NODES; i++) {
        took = EVENTUALLY(bus_down(&t[i]), 10000, "node %d still healthy without its bus", i + 1);
        fprintf(stderr, "node %d: healthz 503 'bus down' after %lld ms\n", i + 1, (long long)took);
        ASSERT_STREQ(bus_state(&t[i], st), "down");
    }
    /* the node still serves its own users' clients */
    for (int i = 0; i < NODES; i++) {
        char user[32];
        cimc_close(tsrv_login(&t[i], homed(i + 1, "user", user), "d1", NULL));
    }
    /* no heartbeat crosses a bus that is gone: each node is alone */
    for (int i = 0; i < NODES; i++)
        EVENTUALLY(alive_set(&t[i]) == 1u << (i + 1), 10000, "node %d still sees peers", i + 1);

    tnats_restart(&n);
    for (int i = 0; i < NODES; i++) {
        took = EVENTUALLY(healthy(&t[i]), 20000, "node %d not healthy after the bus came back",
                          i + 1);
        fprintf(stderr, "node %d: healthy again after %lld ms\n", i + 1, (long long)took);
    }
    for (int i = 0; i < NODES; i++) {
        EVENTUALLY(alive_set(&t[i]) == 0xe, 15000, "node %d does not see its peers again", i + 1);
        ASSERT_STREQ(bus_state(&t[i], st), "up");
        ASSERT_EQ(metric_of(&t[i], "cim_cluster_reconnects_total"), 1);
        ASSERT_TRUE(tsrv_log_has(&t[i], "cluster: bus down: lost the connection to NATS"));
        ASSERT_TRUE(tsrv_log_has(&t[i], "cluster: bus up again: connected to nats://"));
    }
    /* messages between homes work again on the new connections (new consumers) */
    char a_id[32], b_id[32];
    cim_SendRsp sent;
    cimc_close(tsrv_login(&t[1], homed(2, "b", b_id), "d1", NULL));
    cimc_t *a = tsrv_login(&t[0], homed(1, "a", a_id), "d1", NULL);
    ASSERT_OK(tmsg_send(a, b_id, "back1", cim_MsgType_TEXT, "x", 1, false, &sent));
    if (sent.code != cim_Code_OK)
        TEST_FAIL_("after the bus came back: %d %s", sent.code, sent.reason);
    EVENTUALLY(timeline_n(&t[1], b_id, "d2") == 1, 10000, "B did not get the message");
    cimc_close(a);
    stop_cluster(&n, t, seed);
}

TEST_TIMEOUT(e2e_cluster_node_killed_and_back, 150)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256];
    int64_t took;

    start_cluster(&n, t, seed);
    tsrv_kill(&t[2]);
    took = EVENTUALLY(!(alive_set(&t[0]) & 1u << 3) && !(alive_set(&t[1]) & 1u << 3), 8000,
                      "node 3 still alive to the others");
    fprintf(stderr, "node 3 seen down after %lld ms\n", (long long)took);
    ASSERT_EQ(alive_set(&t[0]), 0x6);
    ASSERT_TRUE(healthy(&t[0])); /* a peer down is not this node's health */
    char admin[32], out[512];
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", t[0].admin_port);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "node", "--admin", admin, NULL), 0);
    ASSERT_TRUE(strstr(out, "\nnode 3    down\n") != NULL);

    tsrv_restart(&t[2]); /* same directory and flags, new ports */
    took = EVENTUALLY(alive_set(&t[0]) == 0xe && alive_set(&t[1]) == 0xe &&
                          alive_set(&t[2]) == 0xe,
                      15000, "node 3 not back");
    fprintf(stderr, "node 3 back after %lld ms\n", (long long)took);
    EVENTUALLY(tsrv_log_has(&t[0], "cluster: node 3 is down (no heartbeat for 3 s)"), 5000,
               "node 1 did not log node 3 down");
    stop_cluster(&n, t, seed);
}

/* A node whose bus is not there yet starts, serves, and joins the bus once it is. */
TEST_TIMEOUT(e2e_cluster_node_starts_before_its_bus, 90)
{
    tnats_t n;
    tsrv_t t;
    char seed[256], st[16];

    tnats_start(&n);
    tnats_stop(&n); /* a port with nothing on it, for now */
    shown_nats = &n;
    seed_dir(seed);
    memset(&t, 0, sizeof(t));
    shown_nodes = &t;
    nshown = 1;
    start_node(&t, seed, 1, n.url);
    ASSERT_TRUE(bus_down(&t));
    ASSERT_STREQ(bus_state(&t, st), "down");
    /* logged by the cluster thread, which may come just after the ready line */
    EVENTUALLY(tsrv_log_has(&t, "cluster: bus down: no NATS server answers at nats://127.0.0.1:"),
               5000, "the bus down line was not logged");
    char alice[32];
    cimc_close(tsrv_login(&t, homed(1, "alice", alice), "d1", NULL));
    tnats_restart(&n);
    EVENTUALLY(healthy(&t), 20000, "node 1 not healthy once its bus started");
    ASSERT_STREQ(bus_state(&t, st), "up");
    ASSERT_EQ(alive_set(&t), 0x2); /* nodes 2 and 3 never started */
    ASSERT_EQ(tsrv_stop(&t), 0);
    tnats_free(&n);
    rm_rf(seed);
    nshown = 0;
    shown_nats = NULL;
}

/* cimd refuses a cluster config that cannot work, with one line saying why. */
TEST_TIMEOUT(e2e_cluster_bad_config, 60)
{
    static const struct {
        const char *flags[6];
        const char *says;
    } bad[] = {
        {{"--cluster_url", "nats://127.0.0.1:4222", NULL},
         "cimd: cluster_url is set but cluster_nodes is empty"},
        {{"--node_id", "1", "--cluster_url", "nats://127.0.0.1:4222", "--cluster_nodes", "2,3"},
         "cimd: cluster_nodes does not list this node's node_id 1"},
        {{"--cluster_nodes", "0,1", NULL}, "cimd: cluster_nodes is set but cluster_url is empty"},
        {{"--cluster_name", "a.b", NULL}, "cimd: bad value 'a.b' for cluster_name"},
        {{"--cluster_nodes", "1,1", NULL}, "cimd: bad value '1,1' for cluster_nodes: node id 1 "
                                           "is listed twice"},
        {{"--cluster_url", "127.0.0.1:4222", NULL}, "cimd: bad value for cluster_url"},
    };
    char dir[] = "/tmp/cimtest-XXXXXX", data[300];

    ASSERT_NOT_NULL(mkdtemp(dir));
    snprintf(data, sizeof(data), "%s/never", dir);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tsrv_tool_t *tt = malloc(sizeof(*tt));
        const char *const *f = bad[i].flags;
        ASSERT_NOT_NULL(tt);
        tsrv_tool_start(tt, NULL, 0, "cimd", "--data", data, "--listen", "127.0.0.1:0",
                        "--admin_listen", "off", "--ws_listen", "off", f[0], f[1], f[2], f[3],
                        f[4], f[5], NULL);
        ASSERT_EQ(tsrv_tool_finish(tt, 20000), 2);
        if (strncmp(tt->err, bad[i].says, strlen(bad[i].says)) != 0)
            TEST_FAIL_("case %zu: stderr '%s', expected it to start with '%s'", i, tt->err,
                       bad[i].says);
        ASSERT_TRUE(strchr(tt->err, '\n') == tt->err + strlen(tt->err) - 1); /* one line */
        free(tt);
    }
    ASSERT_TRUE(access(data, F_OK) != 0); /* refused before anything was made */
    rm_rf(dir);
}

/* Standalone: no thread, no connection, and /v1/node and /metrics say so. */
TEST_TIMEOUT(e2e_cluster_standalone, 60)
{
    tsrv_t t;
    thttp_t *r = malloc(sizeof(*r));
    json_t *j, *nodes;

    ASSERT_NOT_NULL(r);
    tsrv_start(&t, "--node_id", "7", "--metrics_token", "scrape-me", NULL);
    ASSERT_TRUE(!has_thread(t.pid, "cimd-cluster"));
    ASSERT_TRUE(!tsrv_log_has(&t, "cluster:"));
    ASSERT_EQ(healthz(&t, NULL, 0), 200);
    /* the metrics token guards /v1/node as it guards /metrics */
    ASSERT_EQ(thttp(r, &t, "GET", "/v1/node", NULL, NULL), 401);
    ASSERT_EQ(thttp(r, &t, "GET", "/v1/node", "wrong", NULL), 401);
    ASSERT_EQ(thttp(r, &t, "POST", "/v1/node", "scrape-me", "{}"), 405);
    j = node_info(&t, "scrape-me");
    ASSERT_EQ(json_integer_value(json_object_get(j, "node_id")), 7);
    ASSERT_TRUE(json_is_null(json_object_get(j, "cluster")));
    ASSERT_STREQ(json_string_value(json_object_get(j, "bus")), "standalone");
    nodes = json_object_get(j, "nodes");
    ASSERT_EQ(json_array_size(nodes), 1);
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(nodes, 0), "id")), 7);
    ASSERT_TRUE(json_is_true(json_object_get(json_array_get(nodes, 0), "alive")));
    json_decref(j);
    ASSERT_EQ(thttp(r, &t, "GET", "/metrics", "scrape-me", NULL), 200);
    ASSERT_EQ(thttp_metric(r->body, "cim_node_info{node=\"7\",cluster=\"\"}"), 1);
    ASSERT_TRUE(strstr(r->body, "cim_cluster_") == NULL);
    free(r);

    char admin[32], out[512];
    tsrv_tool_t *tt = malloc(sizeof(*tt));
    ASSERT_NOT_NULL(tt);
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", t.admin_port);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "node", "--admin", admin, "--token",
                            "scrape-me", NULL),
              0);
    ASSERT_STREQ(out, "node_id  7\ncluster  none (standalone)\nbus      standalone\n"
                      "node 7    alive (this node)\n");
    tsrv_tool_start(tt, NULL, 0, "cimctl", "node", "--admin", admin, NULL);
    ASSERT_EQ(tsrv_tool_finish(tt, 20000), 1);
    ASSERT_TRUE(strstr(tt->err, "cimctl: HTTP 401 UNAUTHORIZED") != NULL);
    free(tt);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* ---- relayed sessions: a client on any node, its session at its user's home ----------- */

/* GET /v1/apps/default/users/@p user on node @p t: how many devices are online there (0
 * for a user that node has never seen). */
static size_t devices_online(const tsrv_t *t, const char *secret, const char *user)
{
    thttp_t *r = malloc(sizeof(*r));
    char path[128];
    json_error_t err;
    json_t *j;
    size_t n;

    ASSERT_NOT_NULL(r);
    snprintf(path, sizeof(path), "/v1/apps/default/users/%s", user);
    if (thttp(r, t, "GET", path, secret, NULL) == 404) {
        free(r);
        return 0;
    }
    if (r->status != 200)
        TEST_FAIL_("GET %s: %ld %s", path, r->status, r->body);
    ASSERT_NOT_NULL(j = json_loads(r->body, 0, &err));
    n = json_array_size(json_object_get(j, "devices_online"));
    json_decref(j);
    free(r);
    return n;
}

/* Connect to @p t and LOGIN as @p user on @p device; the LoginRsp in @p rsp, whatever its
 * code. @return the connection. */
static cimc_t *try_login(const tsrv_t *t, const char *user, const char *device,
                         cim_LoginRsp *rsp)
{
    cim_LoginReq req = cim_LoginReq_init_zero;
    cimc_t *c = tsrv_connect(t);

    snprintf(req.user, sizeof(req.user), "%s", user);
    snprintf(req.device_id, sizeof(req.device_id), "%s", device);
    tsrv_token(t, "default", user, 3600, req.token, sizeof(req.token));
    req.device_kind = cim_DeviceKind_DESKTOP;
    memset(rsp, 0, sizeof(*rsp));
    ASSERT_OK(cimc_login(c, &req, rsp));
    return c;
}

/* The server said BYE{@p code} and closed @p c within @p ms. */
static void expect_bye(cimc_t *c, int code, unsigned ms)
{
    const cim_Bye *bye;

    if (cimc_wait_closed(c, ms) != 0) {
        dump_all();
        TEST_FAIL_("the connection is still open after %u ms", ms);
    }
    ASSERT_NOT_NULL(bye = cimc_bye(c));
    ASSERT_EQ(bye->code, code);
    ASSERT_TRUE(bye->reason[0] != '\0');
}

/* Users U and V have their home on node 1; U's client is on node 2, V's on node 3: both
 * sessions are relayed, and everything PROTOCOL.md promises holds through the relay. */
TEST_TIMEOUT(e2e_cluster_relay_session, 150)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], u_id[32], v_id[32], w_id[32], secret[65];
    tmsg_t msgs[8];
    tmsg_page_t page;
    tmsg_conv_t convs[4];
    cim_ConvListRsp cl;
    cim_LoginRsp lr;
    cim_SendRsp sent;
    cim_Result res;
    uint64_t rtt;
    size_t nconv;

    start_cluster(&n, t, seed);
    thttp_secret(&t[0], "default", secret);
    homed(1, "u", u_id);
    homed(1, "v", v_id);
    homed(2, "w", w_id);

    cimc_t *u = tsrv_login(&t[1], u_id, "d1", &lr);
    ASSERT_EQ(lr.code, cim_Code_OK);
    ASSERT_EQ(lr.latest_msg_id, 0);
    cimc_t *v = tsrv_login(&t[2], v_id, "d1", NULL);
    EVENTUALLY(tsrv_log_has(&t[1], ", served by node 1"), 5000, "node 2 did not relay U");
    ASSERT_TRUE(tsrv_log_has(&t[0], "remote session of 127.0.0.1 at node 2"));
    /* the home's router has them; the edges' do not */
    ASSERT_EQ(devices_online(&t[0], secret, u_id), 1);
    ASSERT_EQ(devices_online(&t[0], secret, v_id), 1);
    ASSERT_EQ(devices_online(&t[1], secret, u_id), 0);

    /* SEND from U (at node 2) to V (at node 3): stored at their home, pushed through node 3 */
    ASSERT_OK(tmsg_send(u, v_id, "m1", cim_MsgType_TEXT, "hello", 5, false, &sent));
    ASSERT_EQ(sent.code, cim_Code_OK);
    tmsg_expect_push(v, sent.msg_id, cim_ConvType_DIRECT, u_id, v_id, "m1", cim_MsgType_TEXT,
                     "hello", 5);
    tmsg_page_init(&page, msgs, 8, NULL, 0);
    ASSERT_OK(tmsg_sync(v, 0, 0, &page));
    ASSERT_EQ(page.code, cim_Code_OK);
    ASSERT_EQ(page.n, 1);
    ASSERT_EQ(msgs[0].msg_id, sent.msg_id);
    tmsg_page_reset(&page);
    ASSERT_OK(tmsg_history(u, cim_ConvType_DIRECT, v_id, 0, 0, &page));
    ASSERT_EQ(page.code, cim_Code_OK);
    ASSERT_EQ(page.n, 1);
    ASSERT_EQ(msgs[0].msg_id, sent.msg_id);
    ASSERT_STREQ(msgs[0].from, u_id);
    ASSERT_OK(tmsg_conv_list(u, convs, 4, &nconv, &cl));
    ASSERT_EQ(cl.code, cim_Code_OK);
    ASSERT_EQ(nconv, 1);
    ASSERT_NOT_NULL(tmsg_conv_find(convs, nconv, cim_ConvType_DIRECT, v_id));
    ASSERT_OK(cimc_ping(u, &rtt));
    /* the relay's traffic is counted on both sides: U's LOGIN, SEND, HISTORY, CONV_LIST
     * and PING went out of node 2, their five answers came back */
    ASSERT_TRUE(metric_of(&t[1], "cim_cluster_relayed_total{dir=\"sent\"}") >= 5);
    ASSERT_TRUE(metric_of(&t[1], "cim_cluster_relayed_total{dir=\"received\"}") >= 5);
    ASSERT_TRUE(metric_of(&t[0], "cim_cluster_relayed_total{dir=\"received\"}") >= 5);
    ASSERT_EQ(metric_of(&t[1], "cim_cluster_relay_refused_total"), 0);

    /* to a user of another home: that home judges (W has never logged in: unknown) */
    ASSERT_OK(tmsg_send(u, w_id, "m2", cim_MsgType_TEXT, "x", 1, false, &sent));
    ASSERT_EQ(sent.code, cim_Code_NOT_FOUND);
    ASSERT_STREQ(sent.reason, "unknown user");
    /* once W exists, from a client at the sender's home */
    cimc_close(tsrv_login(&t[1], w_id, "d1", NULL));
    cimc_t *v2 = tsrv_login(&t[0], v_id, "d2", NULL);
    ASSERT_OK(tmsg_send(v2, w_id, "m3", cim_MsgType_TEXT, "x", 1, false, &sent));
    ASSERT_EQ(sent.code, cim_Code_OK);
    cimc_close(v2);

    /* the same device on another node kicks the first, through its edge */
    cimc_t *u2 = tsrv_login(&t[2], u_id, "d1", NULL);
    expect_bye(u, cim_Code_KICKED, 5000);
    cimc_close(u);
    ASSERT_OK(cimc_ping(u2, &rtt));

    /* the admin API's kick, on the home, reaches the relayed client */
    thttp_t *r = malloc(sizeof(*r));
    char path[128];
    ASSERT_NOT_NULL(r);
    snprintf(path, sizeof(path), "/v1/apps/default/users/%s/kick", u_id);
    ASSERT_EQ(thttp(r, &t[0], "POST", path, secret, NULL), 200);
    free(r);
    expect_bye(u2, cim_Code_KICKED, 5000);
    cimc_close(u2);

    /* LOGOUT through the relay: LOGOUT_ACK, then the edge closes */
    cimc_t *u3 = tsrv_login(&t[1], u_id, "d3", NULL);
    ASSERT_OK(cimc_logout(u3, &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    ASSERT_OK(cimc_wait_closed(u3, 5000));
    cimc_close(u3);
    EVENTUALLY(devices_online(&t[0], secret, u_id) == 0, 5000, "U still online after LOGOUT");

    /* a client that goes away at its edge goes away at its home: V, who lists U, sees U
     * come online and go offline (EVENTs through V's edge) */
    cim_Event ev;
    ASSERT_OK(tmsg_user_req(v, FT_CONTACT_ADD, u_id, &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    cimc_t *u4 = tsrv_login(&t[1], u_id, "d4", NULL);
    ASSERT_EQ(devices_online(&t[0], secret, u_id), 1);
    ASSERT_OK(tmsg_next_event(v, 5000, &ev));
    ASSERT_EQ(ev.kind, cim_EventKind_PRESENCE);
    ASSERT_STREQ(ev.user, u_id);
    ASSERT_TRUE(ev.online);
    cimc_close(u4);
    ASSERT_OK(tmsg_next_event(v, 5000, &ev));
    ASSERT_EQ(ev.kind, cim_EventKind_PRESENCE);
    ASSERT_STREQ(ev.user, u_id);
    ASSERT_TRUE(!ev.online);
    EVENTUALLY(devices_online(&t[0], secret, u_id) == 0, 5000,
               "the home still routes a client gone from its edge");

    cimc_close(v);
    stop_cluster(&n, t, seed);
}

/* The home of a relayed client dies: the client is told SERVER_BUSY within seconds, and a
 * new login of that user elsewhere is refused with SERVER_BUSY, not left hanging. */
TEST_TIMEOUT(e2e_cluster_relay_home_killed, 120)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], u_id[32], v_id[32];
    cim_LoginRsp lr;
    uint64_t rtt;
    int64_t took, t0;

    start_cluster(&n, t, seed);
    homed(3, "k", u_id);
    homed(1, "c", v_id);
    cimc_t *u = tsrv_login(&t[0], u_id, "d1", NULL);
    ASSERT_OK(cimc_ping(u, &rtt));
    tsrv_kill(&t[2]);
    t0 = now_ms();
    expect_bye(u, cim_Code_SERVER_BUSY, 10000);
    took = now_ms() - t0;
    fprintf(stderr, "relayed client closed %lld ms after its home was killed\n",
            (long long)took);
    ASSERT_STREQ(cimc_bye(u)->reason, "home node unavailable");
    cimc_close(u);
    EVENTUALLY(!(alive_set(&t[1]) & 1u << 3), 8000, "node 3 still alive to node 2");
    t0 = now_ms();
    cimc_t *u2 = try_login(&t[1], u_id, "d2", &lr);
    ASSERT_EQ(lr.code, cim_Code_SERVER_BUSY);
    ASSERT_TRUE(strstr(lr.reason, "home node (node 3) is unavailable") != NULL);
    ASSERT_TRUE(now_ms() - t0 < 3000);
    cimc_close(u2);
    /* users of the live nodes are served as before */
    cimc_t *v = tsrv_login(&t[1], v_id, "d1", NULL);
    ASSERT_OK(cimc_ping(v, &rtt));
    cimc_close(v);
    stop_cluster(&n, t, seed);
}

/* The bus goes away: relayed sessions end with SERVER_BUSY on the edge (a frame may have
 * been lost), a local session carries on; once the bus is back, relaying works again. */
TEST_TIMEOUT(e2e_cluster_relay_bus_down, 150)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], r_id[32], l_id[32];
    cim_LoginRsp lr;
    uint64_t rtt;

    start_cluster(&n, t, seed);
    homed(2, "r", r_id);
    homed(1, "l", l_id);
    cimc_t *r = tsrv_login(&t[0], r_id, "d1", NULL);
    cimc_t *l = tsrv_login(&t[0], l_id, "d1", NULL);
    tnats_stop(&n);
    expect_bye(r, cim_Code_SERVER_BUSY, 10000);
    cimc_close(r);
    ASSERT_OK(cimc_ping(l, &rtt));
    /* while the bus is down, a relayed login is refused at once */
    EVENTUALLY(bus_down(&t[0]), 10000, "node 1 still healthy without its bus");
    cimc_t *r2 = try_login(&t[0], r_id, "d2", &lr);
    ASSERT_EQ(lr.code, cim_Code_SERVER_BUSY);
    cimc_close(r2);

    tnats_restart(&n);
    EVENTUALLY(healthy(&t[0]) && (alive_set(&t[0]) & 1u << 2), 20000,
               "node 1 does not see node 2 again");
    cimc_t *r3 = tsrv_login(&t[0], r_id, "d3", NULL);
    ASSERT_OK(cimc_ping(r3, &rtt));
    cimc_close(r3);
    ASSERT_OK(cimc_ping(l, &rtt));
    cimc_close(l);
    stop_cluster(&n, t, seed);
}

/* ---- messages between homes ----------------------------------------------------------- */

static uint32_t snowflake_node_of(uint64_t id)
{
    uint32_t node;
    snowflake_decode(id, NULL, &node, NULL);
    return node;
}

/* Every message of @p user's timeline, through a new login of device @p dev on node @p t;
 * the timeline must be in strictly ascending id order (no repeat). @return how many. */
static size_t timeline(const tsrv_t *t, const char *user, const char *dev, tmsg_t *msgs,
                       size_t cap)
{
    tmsg_page_t page;
    cimc_t *c = tsrv_login(t, user, dev, NULL);

    tmsg_page_init(&page, msgs, cap, NULL, 0);
    ASSERT_OK(tmsg_sync_all(c, 1, 500, &page));
    ASSERT_TRUE(!page.overflow);
    for (size_t i = 1; i < page.n; i++)
        if (msgs[i].msg_id <= msgs[i - 1].msg_id)
            TEST_FAIL_("%s's timeline: id %llu after %llu (entry %zu)", user,
                       (unsigned long long)msgs[i].msg_id,
                       (unsigned long long)msgs[i - 1].msg_id, i);
    cimc_close(c);
    return page.n;
}

/* How many times @p id is in @p msgs. */
static size_t count_id(const tmsg_t *msgs, size_t n, uint64_t id)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += msgs[i].msg_id == id;
    return k;
}

static size_t timeline_n(const tsrv_t *t, const char *user, const char *dev)
{
    static tmsg_t msgs[2048];
    return timeline(t, user, dev, msgs, 2048);
}

/* A (home 1), B (home 2) and C (home 3), their clients on nodes other than their homes and
 * on them: DIRECT messages both ways, pushes, an offline recipient's SYNC with messages
 * of three origins interleaved in id order, a resent client_msg_id. */
TEST_TIMEOUT(e2e_cluster_xhome_direct, 150)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], a_id[32], b_id[32], c_id[32], d_id[32], cmid[32];
    static tmsg_t msgs[256];
    uint64_t sent_ids[64];
    size_t nsent = 0, got;
    cim_SendRsp sent;
    tmsg_t push;

    start_cluster(&n, t, seed);
    homed(1, "a", a_id);
    homed(2, "b", b_id);
    homed(3, "c", c_id);
    homed(2, "d", d_id);
    cimc_t *a = tsrv_login(&t[2], a_id, "d1", NULL); /* relayed to node 1 */
    cimc_t *b = tsrv_login(&t[1], b_id, "d1", NULL); /* at its home */

    /* A → B: the SEND_ACK, then B's PUSH through B's home */
    ASSERT_OK(tmsg_send(a, b_id, "ab1", cim_MsgType_TEXT, "hello b", 7, false, &sent));
    if (sent.code != cim_Code_OK)
        TEST_FAIL_("A → B: %d %s", sent.code, sent.reason);
    ASSERT_EQ(snowflake_node_of(sent.msg_id), 1); /* the sender's home issues the id */
    sent_ids[nsent++] = sent.msg_id;
    tmsg_expect_push(b, sent.msg_id, cim_ConvType_DIRECT, a_id, b_id, "ab1", cim_MsgType_TEXT,
                     "hello b", 7);
    /* B → A: the other way */
    ASSERT_OK(tmsg_send(b, a_id, "ba1", cim_MsgType_TEXT, "hello a", 7, false, &sent));
    ASSERT_EQ(sent.code, cim_Code_OK);
    ASSERT_EQ(snowflake_node_of(sent.msg_id), 2);
    sent_ids[nsent++] = sent.msg_id;
    tmsg_expect_push(a, sent.msg_id, cim_ConvType_DIRECT, b_id, a_id, "ba1", cim_MsgType_TEXT,
                     "hello a", 7);
    /* a resend of a client_msg_id across homes: the original id, nothing new */
    ASSERT_OK(tmsg_send(a, b_id, "ab1", cim_MsgType_TEXT, "hello b", 7, false, &sent));
    ASSERT_EQ(sent.code, cim_Code_OK);
    ASSERT_EQ(sent.msg_id, sent_ids[0]);
    tmsg_expect_no_push(b, 300);
    /* unknown user: the recipient's home says so */
    ASSERT_OK(tmsg_send(a, homed(2, "nobody", d_id), "x1", cim_MsgType_TEXT, "x", 1, false,
                        &sent));
    ASSERT_EQ(sent.code, cim_Code_NOT_FOUND);
    homed(2, "d", d_id);
    /* B blocks A (a user of another home): B's home refuses A's messages */
    cim_Result res;
    ASSERT_OK(tmsg_user_req(b, FT_BLOCK, a_id, &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    ASSERT_OK(tmsg_send(a, b_id, "ab2", cim_MsgType_TEXT, "x", 1, false, &sent));
    ASSERT_EQ(sent.code, cim_Code_BLOCKED);
    ASSERT_STREQ(sent.reason, "the recipient has blocked you");
    ASSERT_OK(tmsg_user_req(b, FT_UNBLOCK, a_id, &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    cimc_close(b);

    /* B offline: A (origin 1), C (origin 3) and D (origin 2, B's home) write to B, and D
     * to a group of D and B (a group at their home, node 2): its messages go through the
     * same merge and interleave in id order */
    cimc_t *c = tsrv_login(&t[0], c_id, "d1", NULL);
    cimc_t *d = tsrv_login(&t[2], d_id, "d1", NULL);
    const char *members[] = {b_id};
    cim_GroupRsp gr;
    char gid[65];
    ASSERT_OK(tmsg_group_create(d, "g", members, 1, false, &gr));
    ASSERT_EQ(gr.code, cim_Code_OK);
    snprintf(gid, sizeof(gid), "%s", gr.group.group_id);
    size_t ngroup = 1; /* the GE_CREATED event in B's timeline */
    for (int k = 0; k < 10; k++) {
        cimc_t *from[3] = {a, c, d};
        for (int f = 0; f < 3; f++) {
            snprintf(cmid, sizeof(cmid), "o%d-%d", f, k);
            ASSERT_OK(tmsg_send(from[f], b_id, cmid, cim_MsgType_TEXT, cmid, strlen(cmid),
                                false, &sent));
            if (sent.code != cim_Code_OK)
                TEST_FAIL_("%s: %d %s", cmid, sent.code, sent.reason);
            sent_ids[nsent++] = sent.msg_id;
        }
        snprintf(cmid, sizeof(cmid), "g-%d", k);
        ASSERT_OK(tmsg_send_conv(d, cim_ConvType_GROUP, gid, cmid, cim_MsgType_TEXT, cmid,
                                 strlen(cmid), false, &sent));
        ASSERT_EQ(sent.code, cim_Code_OK);
        ngroup++;
    }
    /* B comes back on node 3: every message once, in id order (timeline() checks), the
     * three origins interleaved */
    EVENTUALLY(timeline_n(&t[2], b_id, "d2") == nsent + ngroup, 10000,
               "B's timeline is not whole");
    got = timeline(&t[2], b_id, "d3", msgs, 256);
    ASSERT_EQ(got, nsent + ngroup);
    for (size_t i = 0; i < nsent; i++)
        ASSERT_EQ(count_id(msgs, got, sent_ids[i]), 1);
    bool interleaved = false;
    for (size_t i = 1; i < got; i++)
        interleaved |= snowflake_node_of(msgs[i].msg_id) != snowflake_node_of(msgs[i - 1].msg_id);
    ASSERT_TRUE(interleaved);
    /* A's timeline at home 1: its own 11 messages and B's one */
    EVENTUALLY(timeline_n(&t[0], a_id, "d2") == 12, 10000, "A's timeline is not whole");
    /* the conversation on B's side knows A */
    cimc_t *b2 = tsrv_login(&t[0], b_id, "d4", NULL);
    tmsg_conv_t convs[4];
    cim_ConvListRsp cl;
    size_t nconv;
    ASSERT_OK(tmsg_conv_list(b2, convs, 4, &nconv, &cl));
    ASSERT_EQ(cl.code, cim_Code_OK);
    ASSERT_EQ(nconv, 4); /* A, C, D and the group */
    ASSERT_NOT_NULL(tmsg_conv_find(convs, nconv, cim_ConvType_DIRECT, a_id));
    /* each home holds its own users' conversation records only: at B and D's home, B's
     * four (A, C, D, the group) and D's two (B, the group); none for A or C */
    {
        /* (read with what is still on its way to convs: kv_conv_defer) */
        static char dump[65536];
        const char *users[4] = {a_id, b_id, c_id, d_id}, *want[4] = {NULL, "4", NULL, "2"};
        for (int u = 0; u < 4; u++) {
            char count[32];
            int st = tsrv_run_tool(dump, sizeof(dump), "cimdump", "--data", t[1].dir, "--json",
                                   "convs", users[u], NULL);
            snprintf(count, sizeof(count), "\"count\":%s,", want[u] ? want[u] : "0");
            if (want[u] != NULL ? st != 0 || strstr(dump, count) == NULL
                                : st == 0 && strstr(dump, count) == NULL)
                TEST_FAIL_("conversation records of %s at B's home: %.200s", users[u], dump);
        }
    }
    /* live: B (relayed through node 1) gets what C sends, pushed in order */
    ASSERT_OK(tmsg_send(c, b_id, "live", cim_MsgType_TEXT, "live", 4, false, &sent));
    ASSERT_EQ(sent.code, cim_Code_OK);
    ASSERT_OK(tmsg_next_push(b2, 5000, &push, NULL, 0));
    ASSERT_EQ(push.msg_id, sent.msg_id);

    /* counted: forwarded by the origins, consumed by B's home, merge delays observed */
    ASSERT_TRUE(metric_of(&t[0], "cim_cluster_xhome_forwarded_total") >= 11);
    ASSERT_TRUE(metric_of(&t[1], "cim_cluster_xhome_consumed_total") >= 21);
    ASSERT_TRUE(metric_of(&t[1], "cim_cluster_merge_delay_seconds_count") >= 31);
    ASSERT_EQ(metric_of(&t[1], "cim_cluster_xhome_late_total"), 0);
    ASSERT_EQ(metric_of(&t[1], "cim_cluster_xhome_dropped_total"), 0);
    cimc_close(a);
    cimc_close(b2);
    cimc_close(c);
    cimc_close(d);
    stop_cluster(&n, t, seed);
}

/* The recipient's home is down: SERVER_BUSY with the reason, nothing stored; back, it works
 * and what was said meanwhile was never stored twice. */
TEST_TIMEOUT(e2e_cluster_xhome_home_down, 150)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], a_id[32], b_id[32];
    static tmsg_t msgs[64];
    cim_SendRsp sent;

    start_cluster(&n, t, seed);
    homed(1, "a", a_id);
    homed(2, "b", b_id);
    cimc_close(tsrv_login(&t[1], b_id, "d1", NULL)); /* B exists */
    cimc_t *a = tsrv_login(&t[0], a_id, "d1", NULL);
    tsrv_kill(&t[1]);
    EVENTUALLY(!(alive_set(&t[0]) & 1u << 2), 8000, "node 2 still alive to node 1");
    ASSERT_OK(tmsg_send(a, b_id, "down1", cim_MsgType_TEXT, "x", 1, false, &sent));
    ASSERT_EQ(sent.code, cim_Code_SERVER_BUSY);
    ASSERT_STREQ(sent.reason, "the recipient's home node (node 2) is unavailable; retry later");
    ASSERT_TRUE(metric_of(&t[0], "cim_cluster_xhome_refused_total") >= 1);
    ASSERT_EQ(timeline(&t[0], a_id, "d2", msgs, 64), 0); /* nothing stored */

    tsrv_restart(&t[1]);
    EVENTUALLY(alive_set(&t[0]) == 0xe && alive_set(&t[1]) == 0xe, 15000, "node 2 not back");
    /* the same client_msg_id, now accepted: a new message, stored once */
    ASSERT_OK(tmsg_send(a, b_id, "down1", cim_MsgType_TEXT, "x", 1, false, &sent));
    if (sent.code != cim_Code_OK)
        TEST_FAIL_("after node 2 came back: %d %s", sent.code, sent.reason);
    EVENTUALLY(timeline_n(&t[1], b_id, "d2") == 1, 10000, "B did not get the message");
    ASSERT_EQ(timeline(&t[0], a_id, "d3", msgs, 64), 1);
    ASSERT_EQ(msgs[0].msg_id, sent.msg_id);
    cimc_close(a);
    stop_cluster(&n, t, seed);
}

/* One sender's stream of DIRECT messages, rounds of LOAD_ROUND pipelined ones every
 * LOAD_PAUSE_MS (under the per-connection rate limit), until told to stop or its
 * connection ends (its home was killed). */
#define LOAD_MAX 2000
#define LOAD_ROUND 4
#define LOAD_PAUSE_MS 50

typedef struct loader {
    const tsrv_t *t;
    int conv_type; /* 0: DIRECT */
    char user[32], to[65], prefix[8];
    _Atomic int stop;
    size_t round;
    uint64_t ids[LOAD_MAX];
    int codes[LOAD_MAX];
    size_t answered;
} loader_t;

static void loader_mk(void *ctx, size_t i, char *cmid, size_t cap, const uint8_t **body,
                      size_t *len)
{
    loader_t *l = ctx;
    snprintf(cmid, cap, "%s%zu-%zu", l->prefix, l->round, i);
    *body = (const uint8_t *)cmid;
    *len = strlen(cmid);
}

static void *loader_run(void *arg)
{
    loader_t *l = arg;
    cimc_t *c = tsrv_login(l->t, l->user, l->prefix, NULL);

    while (!atomic_load(&l->stop) && l->answered + LOAD_ROUND <= LOAD_MAX) {
        size_t got = 0;
        int rc = tmsg_send_many_conv(c, l->conv_type ? l->conv_type : cim_ConvType_DIRECT,
                                     l->to, LOAD_ROUND, LOAD_ROUND, cim_MsgType_TEXT, loader_mk,
                                     l, l->ids + l->answered, l->codes + l->answered, &got);
        l->answered += got;
        l->round++;
        if (rc != 0)
            break; /* the connection ended */
        sleep_ms(LOAD_PAUSE_MS);
    }
    cimc_close(c);
    return NULL;
}

/* kill -9 of a home under cross-home load, both ways: no acknowledged message is lost and
 * none is stored twice, in either timeline, once the node is back. */
TEST_TIMEOUT(e2e_cluster_xhome_kill9, 240)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], a_id[32], b_id[32];
    static tmsg_t ta[2048], tb[2048];
    loader_t *l = calloc(2, sizeof(*l));
    pthread_t th[2];
    size_t na, nb, acked = 0;

    ASSERT_NOT_NULL(l);
    start_cluster(&n, t, seed);
    homed(1, "a", a_id);
    homed(2, "b", b_id);
    cimc_close(tsrv_login(&t[0], a_id, "d0", NULL));
    cimc_close(tsrv_login(&t[1], b_id, "d0", NULL));
    /* A (home 1) writes to B from node 3; B (home 2) writes to A from node 2 */
    l[0].t = &t[2];
    l[1].t = &t[1];
    snprintf(l[0].user, 32, "%s", a_id);
    snprintf(l[0].to, 32, "%s", b_id);
    snprintf(l[0].prefix, 8, "ka");
    snprintf(l[1].user, 32, "%s", b_id);
    snprintf(l[1].to, 32, "%s", a_id);
    snprintf(l[1].prefix, 8, "kb");
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, loader_run, &l[i]), 0);
    sleep_ms(1500);
    tsrv_kill(&t[0]); /* A's home: its in-flight messages, and what B sends to A */
    sleep_ms(1000);
    tsrv_restart(&t[0]);
    sleep_ms(1500);
    for (int i = 0; i < 2; i++) {
        atomic_store(&l[i].stop, 1);
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
    }
    fprintf(stderr, "answered: A %zu, B %zu\n", l[0].answered, l[1].answered);
    EVENTUALLY(alive_set(&t[0]) == 0xe && alive_set(&t[1]) == 0xe && alive_set(&t[2]) == 0xe,
               15000, "node 1 not back");
    /* Every acknowledged message, once, in both timelines (and in id order: timeline()) */
    for (int i = 0; i < 2; i++)
        for (size_t k = 0; k < l[i].answered; k++)
            acked += l[i].codes[k] == cim_Code_OK;
    ASSERT_TRUE(acked > 0);
    int64_t t0 = now_ms();
    for (;;) {
        uint64_t missing = 0;
        na = timeline(&t[0], a_id, "v1", ta, 2048);
        nb = timeline(&t[1], b_id, "v1", tb, 2048);
        for (int i = 0; i < 2 && missing == 0; i++)
            for (size_t k = 0; k < l[i].answered && missing == 0; k++)
                if (l[i].codes[k] == cim_Code_OK && (count_id(ta, na, l[i].ids[k]) != 1 ||
                                                     count_id(tb, nb, l[i].ids[k]) != 1))
                    missing = l[i].ids[k];
        if (missing == 0)
            break;
        if (now_ms() - t0 > 20000) {
            dump_all();
            TEST_FAIL_("acknowledged message %llu (origin %u) is %zu times in A's timeline, %zu "
                       "in B's (A %zu, B %zu, acked %zu)", (unsigned long long)missing,
                       snowflake_node_of(missing), count_id(ta, na, missing),
                       count_id(tb, nb, missing), na, nb, acked);
        }
        sleep_ms(200);
    }
    /* and no message is in one timeline but not the other once all is applied */
    sleep_ms(1000);
    na = timeline(&t[0], a_id, "v2", ta, 2048);
    nb = timeline(&t[1], b_id, "v2", tb, 2048);
    for (size_t k = 0; k < na; k++)
        ASSERT_EQ(count_id(tb, nb, ta[k].msg_id), 1);
    ASSERT_EQ(na, nb);
    fprintf(stderr, "acked %zu, in each timeline %zu\n", acked, na);
    ASSERT_EQ(metric_of(&t[1], "cim_cluster_xhome_late_total"), 0);
    /* back within 3 s: nobody had waived it, so nothing was late to reissue */
    ASSERT_EQ(metric_of(&t[0], "cim_cluster_xhome_reissued_total"), 0);
    free(l);
    stop_cluster(&n, t, seed);
}

/* The bus's users for node 1..3 (n<k>, password p<k>); with @p deny, node 1 may not publish
 * to JetStream (its messages between homes then stay in its outbox). */
static void bus_users(char *out, size_t len, bool deny)
{
    snprintf(out, len,
             "authorization {\n  users = [\n"
             "    {user: n1, password: p1%s}\n"
             "    {user: n2, password: p2}\n"
             "    {user: n3, password: p3}\n  ]\n}\n",
             deny ? ", permissions: {publish: {deny: [\"cim.out.1.>\"]}}" : "");
}

/* The entry of @p msgs with client_msg_id @p cmid (NULL: none). */
static const tmsg_t *with_cmid(const tmsg_t *msgs, size_t n, const char *cmid)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(msgs[i].client_msg_id, cmid) == 0)
            return &msgs[i];
    return NULL;
}

static bool timeline_has_cmid(const tsrv_t *t, const char *user, const char *cmid)
{
    static tmsg_t msgs[64];
    size_t n = timeline(t, user, "probe", msgs, 64);
    return with_cmid(msgs, n, cmid) != NULL;
}

/* nats-server, with bus_users(deny), and nodes 1..3 on it, up and seeing each other. */
static void start_denied(tnats_t *n, tsrv_t t[NODES], char seed[256])
{
    char url[128], conf[512];

    bus_users(conf, sizeof(conf), true);
    tnats_start_conf(n, conf);
    shown_nats = n;
    seed_dir(seed);
    memset(t, 0, NODES * sizeof(*t));
    shown_nodes = t;
    nshown = NODES;
    for (int i = 0; i < NODES; i++) {
        snprintf(url, sizeof(url), "nats://n%d:p%d@127.0.0.1:%d", i + 1, i + 1, n->port);
        start_node(&t[i], seed, i + 1, url);
    }
    for (int i = 0; i < NODES; i++)
        EVENTUALLY(healthy(&t[i]) && alive_set(&t[i]) == 0xe, 15000, "node %d not up", i + 1);
}

/* start_denied, then A (home 1, its client on node 1: returned) sends B (home 2) @p cmid
 * with @p body, which node 1 commits but cannot publish: SERVER_BUSY, in its outbox.
 * @p sent: the answer. */
static cimc_t *send_stuck(tnats_t *n, tsrv_t t[NODES], char seed[256], char a_id[32],
                          char b_id[32], const char *cmid, const char *body, cim_SendRsp *sent)
{
    cimc_t *a;

    start_denied(n, t, seed);
    homed(1, "a", a_id);
    homed(2, "b", b_id);
    cimc_close(tsrv_login(&t[1], b_id, "d0", NULL));
    a = tsrv_login(&t[0], a_id, "d1", NULL);
    ASSERT_OK(tmsg_send(a, b_id, cmid, cim_MsgType_TEXT, body, strlen(body), false, sent));
    if (sent->code != cim_Code_SERVER_BUSY)
        TEST_FAIL_("node 1's message: %d %s (JetStream should have refused it)", sent->code,
                   sent->reason);
    return a;
}

/* Nodes 1..3 on a bus that keeps node 1 from publishing to JetStream; A (home 1) sends B
 * (home 2) "first" (rj-1), which stays in node 1's outbox; node 1 is then killed (@p stall:
 * stopped with SIGSTOP) long enough for node 2 to waive it and append C's rj-2 to B's
 * timeline; then the bus lets node 1 publish, and node 1 is back (restarted, or SIGCONT).
 * "first" must then be once in both timelines under one new id, after rj-2, and node 1
 * must have counted one reissue. @return that id. */
static uint64_t rejoin_away(tnats_t *n, tsrv_t t[NODES], char seed[256], char a_id[32],
                            char b_id[32], bool stall)
{
    char c_id[32], conf[512];
    static tmsg_t ta[64], tb[64];
    cim_SendRsp sent, newer_, *newer = &newer_;
    const tmsg_t *ea, *eb;
    size_t na, nb;

    cimc_close(send_stuck(n, t, seed, a_id, b_id, "rj-1", "first", &sent));
    homed(3, "c", c_id);
    if (stall)
        ASSERT_EQ(kill(t[0].pid, SIGSTOP), 0);
    else
        tsrv_kill(&t[0]); /* its outbox holds rj-1 */
    EVENTUALLY(!(alive_set(&t[1]) & 1u << 1), 8000, "node 1 still alive to node 2");

    /* node 2 waives node 1 once its stream is drained: C's message is then appended */
    cimc_t *c = tsrv_login(&t[2], c_id, "d1", NULL);
    int64_t t0 = now_ms();
    do {
        ASSERT_OK(tmsg_send(c, b_id, "rj-2", cim_MsgType_TEXT, "second", 6, false, newer));
        if (now_ms() - t0 > 20000)
            TEST_FAIL_("C's message: %d %s", newer->code, newer->reason);
    } while (newer->code != cim_Code_OK);
    cimc_close(c);
    ASSERT_TRUE(newer->msg_id > sent.msg_id || sent.msg_id == 0);

    tnats_reload(n, (bus_users(conf, sizeof(conf), false), conf));
    if (stall)
        ASSERT_EQ(kill(t[0].pid, SIGCONT), 0);
    else
        tsrv_restart(&t[0]);
    EVENTUALLY(alive_set(&t[0]) == 0xe && alive_set(&t[1]) == 0xe, 15000, "node 1 not back");
    EVENTUALLY(timeline_has_cmid(&t[1], b_id, "rj-1") && timeline_has_cmid(&t[0], a_id, "rj-1"),
               20000, "the first message did not reach both timelines");
    na = timeline(&t[0], a_id, "v1", ta, 64);
    nb = timeline(&t[1], b_id, "v1", tb, 64);
    ASSERT_EQ(na, 1);
    ASSERT_EQ(nb, 2); /* after the newer one, in id order (timeline checks it) */
    ASSERT_NOT_NULL(ea = with_cmid(ta, na, "rj-1"));
    ASSERT_NOT_NULL(eb = with_cmid(tb, nb, "rj-1"));
    ASSERT_EQ(ea->msg_id, eb->msg_id);
    ASSERT_TRUE(eb->msg_id > newer->msg_id);
    ASSERT_STREQ(tb[0].client_msg_id, "rj-2");
    ASSERT_EQ(tb[1].body_len, 5);
    ASSERT_EQ(tb[1].body_hash, tmsg_hash("first", 5));
    ASSERT_EQ(metric_of(&t[0], "cim_cluster_xhome_reissued_total"), 1);
    ASSERT_TRUE(metric_of(&t[0], "cim_cluster_xhome_held_total") >= 1);
    ASSERT_EQ(metric_of(&t[1], "cim_cluster_xhome_late_total"), 0);
    return ea->msg_id;
}

/* An origin dies with a message JetStream never took and stays down long enough to be
 * waived, and the recipient's home appends a newer message meanwhile. Back, the origin asks
 * that home before publishing the message again, and gives it a new id: it then lands once
 * in both timelines, after the newer one, and a resend of its client_msg_id answers the new
 * id (docs/SCALING.md, "Rejoining: the outbox"). Node 1's publishes to JetStream are refused
 * by the bus's permissions until it is killed. */
TEST_TIMEOUT(e2e_cluster_xhome_rejoin_reissue, 180)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], a_id[32], b_id[32];
    static tmsg_t tb[64];
    cim_SendRsp again;
    uint64_t id = rejoin_away(&n, t, seed, a_id, b_id, false);

    cimc_t *a = tsrv_login(&t[0], a_id, "d1", NULL);
    ASSERT_OK(tmsg_send(a, b_id, "rj-1", cim_MsgType_TEXT, "first", 5, false, &again));
    ASSERT_EQ(again.code, cim_Code_OK);
    ASSERT_EQ(again.msg_id, id);
    cimc_close(a);
    ASSERT_EQ(timeline(&t[1], b_id, "v2", tb, 64), 2); /* the resend stored nothing */
    stop_cluster(&n, t, seed);
}

/* The same with node 1 stopped (SIGSTOP) instead of killed: it does not know it was away,
 * but the message it publishes again is older than the homes wait for, so it asks them
 * first and reissues it the same way. */
TEST_TIMEOUT(e2e_cluster_xhome_rejoin_stalled, 180)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], a_id[32], b_id[32];

    (void)rejoin_away(&n, t, seed, a_id, b_id, true);
    stop_cluster(&n, t, seed);
}

/* A's timeline (node 1) and B's (node 2) hold one message each, the same. @return its id. */
static uint64_t one_in_each(tsrv_t t[NODES], const char *a_id, const char *b_id)
{
    static tmsg_t ta[64], tb[64];

    ASSERT_EQ(timeline(&t[0], a_id, "v1", ta, 64), 1);
    ASSERT_EQ(timeline(&t[1], b_id, "v1", tb, 64), 1);
    ASSERT_EQ(ta[0].msg_id, tb[0].msg_id);
    return ta[0].msg_id;
}

/* The home a message of the outbox goes to is down when its origin comes back: it cannot
 * be asked, so after a while the message is published as it is (the origin does not hold
 * its own timelines, nor every home's merge, for ever), and the home applies it when back. */
TEST_TIMEOUT(e2e_cluster_xhome_rejoin_home_down, 150)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], a_id[32], b_id[32], conf[512];
    cim_SendRsp first;

    cimc_close(send_stuck(&n, t, seed, a_id, b_id, "hd-1", "later", &first));
    tsrv_kill(&t[0]); /* its outbox holds hd-1 */
    tsrv_kill(&t[1]); /* and B's home is gone too */
    bus_users(conf, sizeof(conf), false);
    tnats_reload(&n, conf);
    tsrv_restart(&t[0]);
    EVENTUALLY(timeline_has_cmid(&t[0], a_id, "hd-1"), 20000,
               "node 1 held its outbox while node 2 was down");
    ASSERT_TRUE(metric_of(&t[0], "cim_cluster_xhome_held_total") >= 1);
    tsrv_restart(&t[1]);
    EVENTUALLY(alive_set(&t[0]) == 0xe && alive_set(&t[1]) == 0xe, 15000, "node 2 not back");
    EVENTUALLY(timeline_has_cmid(&t[1], b_id, "hd-1"), 20000, "B never got the message");
    (void)one_in_each(t, a_id, b_id);
    ASSERT_EQ(metric_of(&t[0], "cim_cluster_xhome_reissued_total"), 0);
    stop_cluster(&n, t, seed);
}

/* A resend of a DIRECT message committed at the sender's home but not in the timelines yet
 * (here: the bus will not take it) is neither stored again nor answered OK: SERVER_BUSY,
 * "stored but not yet in every timeline"; once the bus takes it, the resend is answered
 * OK with its id and each timeline holds it once. */
TEST_TIMEOUT(e2e_cluster_xhome_resend_pending, 150)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], a_id[32], b_id[32], conf[512];
    cim_SendRsp first, again;

    cimc_t *a = send_stuck(&n, t, seed, a_id, b_id, "pend-1", "once", &first);
    for (int k = 0; k < 2; k++) {
        ASSERT_OK(tmsg_send(a, b_id, "pend-1", cim_MsgType_TEXT, "once", 4, false, &again));
        ASSERT_EQ(again.code, cim_Code_SERVER_BUSY);
        ASSERT_STREQ(again.reason, "the message is stored but not yet in every timeline; "
                                   "retry with the same client_msg_id");
    }
    bus_users(conf, sizeof(conf), false);
    tnats_reload(&n, conf);
    EVENTUALLY(timeline_has_cmid(&t[0], a_id, "pend-1") &&
               timeline_has_cmid(&t[1], b_id, "pend-1"), 20000, "not in both timelines");
    ASSERT_OK(tmsg_send(a, b_id, "pend-1", cim_MsgType_TEXT, "once", 4, false, &again));
    ASSERT_EQ(again.code, cim_Code_OK);
    cimc_close(a);
    ASSERT_EQ(one_in_each(t, a_id, b_id), again.msg_id);
    ASSERT_EQ(metric_of(&t[0], "cim_cluster_xhome_reissued_total"), 0);
    stop_cluster(&n, t, seed);
}

/* Take every push @p c has been sent until it is quiet for 300 ms. */
static void drain(cimc_t *c)
{
    tmsg_t m;
    while (tmsg_next_push(c, 300, &m, NULL, 0) == 0)
        ;
}

/* Newest entry of @p c's HISTORY with @p peer (0: none). */
static uint64_t newest_with(cimc_t *c, const char *peer)
{
    static tmsg_t msgs[4];
    tmsg_page_t p;

    tmsg_page_init(&p, msgs, 4, NULL, 0);
    ASSERT_OK(tmsg_history(c, cim_ConvType_DIRECT, peer, 0, 1, &p));
    ASSERT_EQ(p.code, cim_Code_OK);
    return p.n > 0 ? msgs[p.n - 1].msg_id : 0;
}

/* Between homes, SEND_ACK{OK} means what it means on one node: the message is in both
 * timelines (HISTORY right after it shows it on both sides; PROTOCOL.md §6, Send); a resend
 * answers the original; CONTACT_ADD and BLOCK of a user unknown at its home: NOT_FOUND;
 * transient messages are checked and delivered by the recipient's home. */
TEST_TIMEOUT(e2e_cluster_xhome_ack_in_timelines, 150)
{
    enum { SENDS = 30 };
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], a_id[32], b_id[32], x_id[32], cmid[32];
    cim_SendRsp sent;
    cim_Result res;
    int64_t t0, total = 0;
    uint64_t first = 0;

    start_cluster(&n, t, seed);
    homed(1, "a", a_id);
    homed(2, "b", b_id);
    cimc_t *a = tsrv_login(&t[2], a_id, "d1", NULL); /* relayed to node 1 */
    cimc_t *a2 = tsrv_login(&t[0], a_id, "d2", NULL);
    cimc_t *b = tsrv_login(&t[1], b_id, "d1", NULL);
    for (int i = 0; i < SENDS; i++) {
        cimc_t *from = i % 2 == 0 ? a : b;
        snprintf(cmid, sizeof(cmid), "t%d", i);
        t0 = now_ms();
        ASSERT_OK(tmsg_send(from, i % 2 == 0 ? b_id : a_id, cmid, cim_MsgType_TEXT, "x", 1,
                            false, &sent));
        total += now_ms() - t0;
        if (sent.code != cim_Code_OK)
            TEST_FAIL_("send %d: %d %s", i, sent.code, sent.reason);
        first = i == 0 ? sent.msg_id : first;
        ASSERT_U64_EQ(newest_with(b, a_id), sent.msg_id);
        ASSERT_U64_EQ(newest_with(a2, b_id), sent.msg_id);
    }
    fprintf(stderr, "e2e_cluster_xhome_ack_in_timelines: SEND to SEND_ACK between homes, "
                    "%.1f ms on average over %d\n", (double)total / SENDS, SENDS);
    ASSERT_OK(tmsg_send(a, b_id, "t0", cim_MsgType_TEXT, "x", 1, false, &sent));
    ASSERT_EQ(sent.code, cim_Code_OK);
    ASSERT_U64_EQ(sent.msg_id, first);

    /* contacts: existence is the user's home's to say */
    homed(2, "nobody", x_id);
    ASSERT_OK(tmsg_user_req(a, FT_CONTACT_ADD, x_id, &res));
    ASSERT_EQ(res.code, cim_Code_NOT_FOUND);
    ASSERT_OK(tmsg_user_req(a, FT_BLOCK, x_id, &res));
    ASSERT_EQ(res.code, cim_Code_NOT_FOUND);
    ASSERT_OK(tmsg_user_req(a, FT_CONTACT_ADD, b_id, &res));
    ASSERT_EQ(res.code, cim_Code_OK);

    /* transient: to B's live devices and A's other one, msg_id 0, nothing stored */
    drain(a2);
    drain(b);
    ASSERT_OK(tmsg_send_conv(a, cim_ConvType_DIRECT, b_id, "typing", cim_MsgType_CUSTOM, "t", 1,
                             true, &sent));
    ASSERT_EQ(sent.code, cim_Code_OK);
    ASSERT_U64_EQ(sent.msg_id, 0);
    tmsg_expect_push(b, 0, cim_ConvType_DIRECT, a_id, b_id, "typing", cim_MsgType_CUSTOM, "t",
                     1);
    tmsg_expect_push(a2, 0, cim_ConvType_DIRECT, a_id, b_id, "typing", cim_MsgType_CUSTOM, "t",
                     1);
    ASSERT_OK(tmsg_send_conv(a, cim_ConvType_DIRECT, x_id, "typing2", cim_MsgType_CUSTOM, "t",
                             1, true, &sent));
    ASSERT_EQ(sent.code, cim_Code_NOT_FOUND);
    ASSERT_OK(tmsg_user_req(b, FT_BLOCK, a_id, &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    ASSERT_OK(tmsg_send_conv(a, cim_ConvType_DIRECT, b_id, "typing3", cim_MsgType_CUSTOM, "t",
                             1, true, &sent));
    ASSERT_EQ(sent.code, cim_Code_BLOCKED);
    /* the resend of a stored message still answers the original */
    ASSERT_OK(tmsg_send(a, b_id, "t0", cim_MsgType_TEXT, "x", 1, false, &sent));
    ASSERT_EQ(sent.code, cim_Code_OK);
    tmsg_expect_no_push(b, 300);
    cimc_close(a);
    cimc_close(a2);
    cimc_close(b);
    stop_cluster(&n, t, seed);
}

/* The next EVENT of @p c is @p kind of @p user: READ in a DIRECT conversation (@p peer, up
 * to @p id), or PRESENCE (@p online). */
static void expect_event(cimc_t *c, int kind, const char *user, const char *peer, uint64_t id,
                         bool online)
{
    cim_Event ev;

    ASSERT_OK(tmsg_next_event(c, 5000, &ev));
    ASSERT_EQ(ev.kind, kind);
    ASSERT_STREQ(ev.user, user);
    if (kind == cim_EventKind_READ) {
        ASSERT_EQ(ev.conv_type, cim_ConvType_DIRECT);
        ASSERT_STREQ(ev.peer, peer);
        ASSERT_U64_EQ(ev.up_to_msg_id, id);
    } else {
        ASSERT_EQ(ev.online, online);
    }
}

static void expect_read(cimc_t *c, const char *user, const char *peer, uint64_t id)
{
    expect_event(c, cim_EventKind_READ, user, peer, id, false);
}

/* READ between homes: the peer (another home) gets EVENT{READ} and sees the reader's cursor
 * as peer_read_up_to in CONV_LIST; the reader's other devices as on one node. */
TEST_TIMEOUT(e2e_cluster_xhome_read, 150)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], a_id[32], b_id[32];
    cim_SendRsp sent;
    cim_Result res;
    uint64_t m[3];
    tmsg_conv_t convs[4];
    cim_ConvListRsp cl;
    size_t nconv;
    const tmsg_conv_t *cv;

    start_cluster(&n, t, seed);
    homed(1, "a", a_id);
    homed(2, "b", b_id);
    cimc_t *a = tsrv_login(&t[2], a_id, "d1", NULL);
    cimc_t *b1 = tsrv_login(&t[1], b_id, "d1", NULL);
    cimc_t *b2 = tsrv_login(&t[0], b_id, "d2", NULL);
    for (int i = 0; i < 3; i++) {
        char cmid[16];
        snprintf(cmid, sizeof(cmid), "r%d", i);
        ASSERT_OK(tmsg_send(a, b_id, cmid, cim_MsgType_TEXT, "x", 1, false, &sent));
        ASSERT_EQ(sent.code, cim_Code_OK);
        m[i] = sent.msg_id;
    }
    ASSERT_OK(tmsg_read(b1, cim_ConvType_DIRECT, a_id, m[1], &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    expect_read(b2, b_id, a_id, m[1]); /* the reader's other device */
    expect_read(a, b_id, b_id, m[1]);  /* the peer, at its own home */
    ASSERT_OK(tmsg_conv_list(a, convs, 4, &nconv, &cl));
    ASSERT_EQ(cl.code, cim_Code_OK);
    ASSERT_NOT_NULL(cv = tmsg_conv_find(convs, nconv, cim_ConvType_DIRECT, b_id));
    ASSERT_U64_EQ(cv->peer_read_up_to, m[1]);
    /* and the other way: A reads B's reply */
    ASSERT_OK(tmsg_send(b1, a_id, "rb", cim_MsgType_TEXT, "y", 1, false, &sent));
    ASSERT_EQ(sent.code, cim_Code_OK);
    ASSERT_OK(tmsg_read(a, cim_ConvType_DIRECT, b_id, 0, &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    expect_read(b1, a_id, a_id, sent.msg_id);
    expect_read(b2, a_id, a_id, sent.msg_id);
    ASSERT_OK(tmsg_conv_list(b2, convs, 4, &nconv, &cl));
    ASSERT_NOT_NULL(cv = tmsg_conv_find(convs, nconv, cim_ConvType_DIRECT, a_id));
    ASSERT_U64_EQ(cv->peer_read_up_to, sent.msg_id);
    cimc_close(a);
    cimc_close(b1);
    cimc_close(b2);
    stop_cluster(&n, t, seed);
}

static void expect_presence(cimc_t *c, const char *user, bool online)
{
    expect_event(c, cim_EventKind_PRESENCE, user, NULL, 0, online);
}

/* PRESENCE between homes: A (home 1) lists B (home 2); B's first device online and last
 * offline reach A's devices, wherever they are connected; nobody else hears. */
TEST_TIMEOUT(e2e_cluster_xhome_presence, 150)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], a_id[32], b_id[32], c_id[32];
    cim_Result res;

    start_cluster(&n, t, seed);
    homed(1, "a", a_id);
    homed(2, "b", b_id);
    homed(3, "c", c_id);
    cimc_t *b0 = tsrv_login(&t[1], b_id, "d0", NULL); /* B exists */
    cimc_close(b0);
    cimc_t *a1 = tsrv_login(&t[0], a_id, "d1", NULL);
    cimc_t *a2 = tsrv_login(&t[2], a_id, "d2", NULL);
    cimc_t *c = tsrv_login(&t[2], c_id, "d1", NULL); /* does not list B */
    tmsg_expect_quiet(a1, 300); /* B's first session is over at its home */
    ASSERT_OK(tmsg_user_req(a1, FT_CONTACT_ADD, b_id, &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    cimc_t *b = tsrv_login(&t[0], b_id, "d1", NULL);
    expect_presence(a1, b_id, true);
    expect_presence(a2, b_id, true);
    cimc_close(b);
    expect_presence(a1, b_id, false);
    expect_presence(a2, b_id, false);
    tmsg_expect_quiet(c, 300);
    cimc_close(a1);
    cimc_close(a2);
    cimc_close(c);
    stop_cluster(&n, t, seed);
}

/* The home of group @p gid (app "default") among nodes 1..NODES. */
static uint32_t group_home(const char *gid)
{
    static const uint32_t ids[NODES] = {1, 2, 3};
    return home_pick(ids, NODES, "default", gid);
}

/* A group whose members live on three homes: made and changed by the group's home (the
 * creator's), its messages and events in every member's timeline at their homes, its state
 * read at any home, its requests from sessions of other homes forwarded to it. */
TEST_TIMEOUT(e2e_cluster_xhome_group, 180)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], a_id[32], b_id[32], c_id[32], x_id[32], gid[65], names[8][65];
    static tmsg_t msgs[64];
    static uint8_t bodies[8192];
    const char *bc[2], *only_c[1], *nobody[1];
    cim_GroupMembersRsp mr;
    cim_GroupListRsp lr;
    cim_Group groups[4];
    cim_GroupRsp gr;
    cim_SendRsp sent;
    cim_Result res;
    tmsg_page_t page;
    tmsg_t push;
    size_t nn;
    uint64_t ev, said;

    start_cluster(&n, t, seed);
    homed(1, "a", a_id);
    homed(2, "b", b_id);
    homed(3, "c", c_id);
    homed(3, "nobody", x_id);
    bc[0] = b_id;
    bc[1] = c_id;
    only_c[0] = c_id;
    nobody[0] = x_id;
    cimc_t *a = tsrv_login(&t[1], a_id, "d1", NULL); /* relayed to node 1 */
    cimc_t *b = tsrv_login(&t[2], b_id, "d1", NULL); /* relayed to node 2 */
    cimc_t *c = tsrv_login(&t[2], c_id, "d1", NULL); /* at its home, node 3 */

    /* A (node 1) makes it: homed at node 1, B and C asked for at their homes, and the
     * answer once the event is in every member's timeline */
    ASSERT_OK(tmsg_group_create(a, "g", nobody, 1, false, &gr));
    ASSERT_EQ(gr.code, cim_Code_NOT_FOUND);
    ASSERT_OK(tmsg_group_create(a, "g", bc, 2, false, &gr));
    if (gr.code != cim_Code_OK)
        TEST_FAIL_("GROUP_CREATE: %d %s", gr.code, gr.reason);
    snprintf(gid, sizeof(gid), "%s", gr.group.group_id);
    ASSERT_EQ(group_home(gid), 1);
    ev = tmsg_expect_sys(b, gid, cim_GroupEventKind_GE_CREATED, a_id, bc, 2, NULL);
    ASSERT_EQ(snowflake_node_of(ev), 1);
    ASSERT_U64_EQ(tmsg_expect_sys(c, gid, cim_GroupEventKind_GE_CREATED, a_id, bc, 2, NULL), ev);
    ASSERT_U64_EQ(tmsg_expect_sys(a, gid, cim_GroupEventKind_GE_CREATED, a_id, bc, 2, NULL), ev);
    /* its state at the members' homes */
    ASSERT_OK(tmsg_group_list(b, groups, 4, &nn, &lr));
    ASSERT_EQ(nn, 1);
    ASSERT_STREQ(groups[0].group_id, gid);
    ASSERT_STREQ(groups[0].owner, a_id);
    ASSERT_EQ(groups[0].member_count, 3);
    ASSERT_OK(tmsg_group_members(c, gid, names, 8, &nn, &mr));
    ASSERT_EQ(mr.code, cim_Code_OK);
    ASSERT_EQ(nn, 3);
    ASSERT_TRUE(tmsg_has_name(names, nn, a_id) && tmsg_has_name(names, nn, b_id));

    /* B (node 2) says something: forwarded to node 1, which issues the id; A and C get it,
     * B's own session does not */
    ASSERT_OK(tmsg_send_conv(b, cim_ConvType_GROUP, gid, "b1", cim_MsgType_TEXT, "hi all", 6,
                             false, &sent));
    if (sent.code != cim_Code_OK)
        TEST_FAIL_("group SEND: %d %s", sent.code, sent.reason);
    said = sent.msg_id;
    ASSERT_EQ(snowflake_node_of(said), 1);
    tmsg_expect_push(a, said, cim_ConvType_GROUP, b_id, gid, "b1", cim_MsgType_TEXT, "hi all", 6);
    tmsg_expect_push(c, said, cim_ConvType_GROUP, b_id, gid, "b1", cim_MsgType_TEXT, "hi all", 6);
    tmsg_expect_no_push(b, 300);
    /* a resend: the original id, nothing new */
    ASSERT_OK(tmsg_send_conv(b, cim_ConvType_GROUP, gid, "b1", cim_MsgType_TEXT, "hi all", 6,
                             false, &sent));
    ASSERT_EQ(sent.code, cim_Code_OK);
    ASSERT_U64_EQ(sent.msg_id, said);
    tmsg_expect_no_push(c, 300);
    /* HISTORY at C's home: the event and the message */
    tmsg_page_init(&page, msgs, 64, bodies, sizeof(bodies));
    ASSERT_OK(tmsg_history(c, cim_ConvType_GROUP, gid, 0, 50, &page));
    ASSERT_EQ(page.code, cim_Code_OK);
    ASSERT_EQ(page.n, 2);
    ASSERT_U64_EQ(msgs[0].msg_id, ev);
    ASSERT_U64_EQ(msgs[1].msg_id, said);

    /* typing reaches members at every home */
    ASSERT_OK(tmsg_send_conv(c, cim_ConvType_GROUP, gid, "typing", cim_MsgType_CUSTOM, "t", 1,
                             true, &sent));
    ASSERT_EQ(sent.code, cim_Code_OK);
    tmsg_expect_push(a, 0, cim_ConvType_GROUP, c_id, gid, "typing", cim_MsgType_CUSTOM, "t", 1);
    tmsg_expect_push(b, 0, cim_ConvType_GROUP, c_id, gid, "typing", cim_MsgType_CUSTOM, "t", 1);

    /* B recalls: erased at every home, the RECALL to every member */
    ASSERT_OK(tmsg_recall(b, said, &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    for (cimc_t **m = (cimc_t *[]){a, c, NULL}; *m != NULL; m++) {
        cim_RecallEvent re;
        ASSERT_OK(tmsg_next_push(*m, 5000, &push, bodies, sizeof(bodies)));
        ASSERT_EQ(push.msg_type, cim_MsgType_RECALL);
        tmsg_recall_event(&push, &re);
        ASSERT_U64_EQ(re.msg_id, said);
    }
    tmsg_page_init(&page, msgs, 64, bodies, sizeof(bodies));
    ASSERT_OK(tmsg_history(c, cim_ConvType_GROUP, gid, 0, 50, &page));
    ASSERT_EQ(page.n, 2);
    ASSERT_EQ(msgs[1].flags & 1u, 1u);
    ASSERT_EQ(msgs[1].body_len, 0);

    /* changes from other homes: only the owner kicks; the kicked learn it; a closed group
     * cannot be joined; an unknown user cannot be added */
    ASSERT_OK(tmsg_group_users(b, FT_GROUP_KICK, gid, only_c, 1, &res));
    ASSERT_EQ(res.code, cim_Code_FORBIDDEN);
    ASSERT_OK(tmsg_group_users(a, FT_GROUP_KICK, gid, only_c, 1, &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    tmsg_expect_sys(c, gid, cim_GroupEventKind_GE_KICKED, a_id, only_c, 1, NULL);
    tmsg_expect_sys(b, gid, cim_GroupEventKind_GE_KICKED, a_id, only_c, 1, NULL);
    ASSERT_OK(tmsg_send_conv(c, cim_ConvType_GROUP, gid, "c1", cim_MsgType_TEXT, "x", 1, false,
                             &sent));
    ASSERT_EQ(sent.code, cim_Code_NOT_MEMBER);
    ASSERT_OK(tmsg_group_list(c, groups, 4, &nn, &lr));
    ASSERT_EQ(nn, 0);
    ASSERT_OK(tmsg_group_join(c, gid, &gr));
    ASSERT_EQ(gr.code, cim_Code_FORBIDDEN);
    ASSERT_OK(tmsg_group_users(b, FT_GROUP_ADD, gid, nobody, 1, &res));
    ASSERT_EQ(res.code, cim_Code_NOT_FOUND);
    /* B (node 2) adds C (node 3) back: the group's home (node 1) asks C's home */
    ASSERT_OK(tmsg_group_users(b, FT_GROUP_ADD, gid, only_c, 1, &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    tmsg_expect_sys(c, gid, cim_GroupEventKind_GE_ADDED, b_id, only_c, 1, NULL);
    ASSERT_OK(tmsg_group_members(a, gid, names, 8, &nn, &mr));
    ASSERT_EQ(nn, 3);

    /* the owner leaves: the eldest member (B) owns it, at every home */
    drain(b);
    drain(c);
    ASSERT_OK(tmsg_group_req(a, FT_GROUP_LEAVE, gid, &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    tmsg_expect_sys(b, gid, cim_GroupEventKind_GE_LEFT, a_id, (const char *const[]){a_id}, 1,
                    NULL);
    ASSERT_OK(tmsg_group_list(c, groups, 4, &nn, &lr));
    ASSERT_EQ(nn, 1);
    ASSERT_STREQ(groups[0].owner, b_id);
    ASSERT_EQ(groups[0].member_count, 2);
    /* dismissed by its new owner (from node 2): gone at every home */
    ASSERT_OK(tmsg_group_req(b, FT_GROUP_DISMISS, gid, &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    ASSERT_OK(tmsg_group_members(c, gid, names, 8, &nn, &mr));
    ASSERT_EQ(mr.code, cim_Code_NOT_FOUND);
    ASSERT_OK(tmsg_group_list(b, groups, 4, &nn, &lr));
    ASSERT_EQ(nn, 0);
    ASSERT_OK(tmsg_send_conv(c, cim_ConvType_GROUP, gid, "c2", cim_MsgType_TEXT, "x", 1, false,
                             &sent));
    ASSERT_EQ(sent.code, cim_Code_NOT_FOUND);

    /* the group's home down: its requests are refused with SERVER_BUSY, not a hang */
    ASSERT_OK(tmsg_group_create(a, "g2", bc, 2, false, &gr));
    ASSERT_EQ(gr.code, cim_Code_OK);
    snprintf(gid, sizeof(gid), "%s", gr.group.group_id);
    cimc_close(a);
    tsrv_kill(&t[0]);
    EVENTUALLY(!(alive_set(&t[1]) & 2), 10000, "node 2 still sees node 1");
    ASSERT_OK(tmsg_send_conv(b, cim_ConvType_GROUP, gid, "b9", cim_MsgType_TEXT, "x", 1, false,
                             &sent));
    ASSERT_EQ(sent.code, cim_Code_SERVER_BUSY);
    ASSERT_OK(tmsg_group_req(c, FT_GROUP_LEAVE, gid, &res));
    ASSERT_EQ(res.code, cim_Code_SERVER_BUSY);
    cimc_close(b);
    cimc_close(c);
    stop_cluster(&n, t, seed);
}

/* POST messages at the sender's home, @p body (JSON): the HTTP status, @p r the answer. */
static long post_msg(thttp_t *r, const tsrv_t *t, const char *secret, const char *body)
{
    return thttp(r, t, "POST", "/v1/apps/default/messages", secret, body);
}

/* The msg_id of a 200 answer to POST messages. */
static uint64_t posted_id(const thttp_t *r)
{
    json_t *j = json_loads(r->body, 0, NULL);
    uint64_t id;

    ASSERT_NOT_NULL(j);
    id = strtoull(json_string_value(json_object_get(j, "msg_id")), NULL, 10);
    json_decref(j);
    return id;
}

/* The admin API's messages between homes: POSTed at the sender's home, checked at the
 * recipient's (existence, blocks unless system), in both timelines before the answer. */
TEST_TIMEOUT(e2e_cluster_xhome_admin_messages, 150)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], a_id[32], b_id[32], x_id[32], secret[65], body[512];
    thttp_t *r = malloc(sizeof(*r));
    cim_Result res;
    uint64_t id;

    ASSERT_NOT_NULL(r);
    start_cluster(&n, t, seed);
    thttp_secret(&t[0], "default", secret);
    homed(1, "a", a_id);
    homed(2, "b", b_id);
    homed(2, "nobody", x_id);
    cimc_t *a = tsrv_login(&t[0], a_id, "d1", NULL);
    cimc_t *b = tsrv_login(&t[2], b_id, "d1", NULL); /* relayed to node 2 */

    /* not at the sender's home: said where to go */
    snprintf(body, sizeof(body), "{\"from\":\"%s\",\"to\":\"%s\",\"body\":\"hi\"}", a_id, b_id);
    ASSERT_EQ(post_msg(r, &t[1], secret, body), 503);
    ASSERT_TRUE(strstr(r->body, "sender's home node (node 1)") != NULL);
    /* at A's home: B's home checks and applies it; B gets the PUSH */
    snprintf(body, sizeof(body),
             "{\"from\":\"%s\",\"to\":\"%s\",\"body\":\"hi\",\"client_msg_id\":\"api-1\"}", a_id,
             b_id);
    ASSERT_EQ(post_msg(r, &t[0], secret, body), 200);
    id = posted_id(r);
    ASSERT_EQ(snowflake_node_of(id), 1);
    tmsg_expect_push(b, id, cim_ConvType_DIRECT, a_id, b_id, "api-1", cim_MsgType_TEXT, "hi", 2);
    ASSERT_U64_EQ(newest_with(a, b_id), id);
    ASSERT_EQ(post_msg(r, &t[0], secret, body), 200); /* a resend: the original */
    ASSERT_U64_EQ(posted_id(r), id);
    tmsg_expect_no_push(b, 300);
    /* an unknown recipient, known (or not) at its home */
    snprintf(body, sizeof(body), "{\"from\":\"%s\",\"to\":\"%s\",\"body\":\"hi\"}", a_id, x_id);
    ASSERT_EQ(post_msg(r, &t[0], secret, body), 404);
    /* blocked at B's home, but for a system message */
    ASSERT_OK(tmsg_user_req(b, FT_BLOCK, a_id, &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    snprintf(body, sizeof(body), "{\"from\":\"%s\",\"to\":\"%s\",\"body\":\"spam\"}", a_id, b_id);
    ASSERT_EQ(post_msg(r, &t[0], secret, body), 403);
    ASSERT_TRUE(strstr(r->body, "BLOCKED") != NULL);
    snprintf(body, sizeof(body),
             "{\"from\":\"%s\",\"to\":\"%s\",\"body\":\"notice\",\"system\":true,"
             "\"client_msg_id\":\"api-2\"}", a_id, b_id);
    ASSERT_EQ(post_msg(r, &t[0], secret, body), 200);
    id = posted_id(r);
    tmsg_expect_push(b, id, cim_ConvType_DIRECT, a_id, b_id, "api-2", cim_MsgType_SYSTEM, "notice",
                     6);
    ASSERT_OK(tmsg_user_req(b, FT_UNBLOCK, a_id, &res));
    /* transient: delivered by B's home, stored nowhere */
    snprintf(body, sizeof(body),
             "{\"from\":\"%s\",\"to\":\"%s\",\"body\":\"typing\",\"transient\":true}", a_id, b_id);
    ASSERT_EQ(post_msg(r, &t[0], secret, body), 200);
    ASSERT_U64_EQ(posted_id(r), 0);
    tmsg_expect_push(b, 0, cim_ConvType_DIRECT, a_id, b_id, "", cim_MsgType_TEXT, "typing", 6);
    /* a group: POSTed at its owner's home, its member of another home asked there */
    snprintf(body, sizeof(body), "{\"owner\":\"%s\",\"name\":\"ops\",\"members\":[\"%s\"]}",
             a_id, b_id);
    ASSERT_EQ(thttp(r, &t[1], "POST", "/v1/apps/default/groups", secret, body), 503);
    ASSERT_TRUE(strstr(r->body, "owner's home node (node 1)") != NULL);
    snprintf(body, sizeof(body), "{\"owner\":\"%s\",\"name\":\"ops\",\"members\":[\"%s\"]}",
             a_id, x_id);
    ASSERT_EQ(thttp(r, &t[0], "POST", "/v1/apps/default/groups", secret, body), 404);
    snprintf(body, sizeof(body), "{\"owner\":\"%s\",\"name\":\"ops\",\"members\":[\"%s\"]}",
             a_id, b_id);
    ASSERT_EQ(thttp(r, &t[0], "POST", "/v1/apps/default/groups", secret, body), 201);
    {
        json_t *j = json_loads(r->body, 0, NULL);
        char path[128];
        const char *members[] = {b_id};
        ASSERT_NOT_NULL(j);
        snprintf(path, sizeof(path), "/v1/apps/default/groups/%s/members",
                 json_string_value(json_object_get(j, "group_id")));
        tmsg_expect_sys(b, json_string_value(json_object_get(j, "group_id")),
                        cim_GroupEventKind_GE_CREATED, a_id, members, 1, NULL);
        /* the group as B's home has it */
        ASSERT_EQ(thttp(r, &t[1], "GET", path, secret, NULL), 200);
        ASSERT_TRUE(strstr(r->body, a_id) != NULL && strstr(r->body, b_id) != NULL);
        /* a SYSTEM message from B to it, at B's home: stored by the group's home (node 1) */
        drain(a);
        snprintf(body, sizeof(body), "{\"from\":\"%s\",\"group\":\"%s\",\"body\":\"sys\","
                 "\"system\":true,\"client_msg_id\":\"api-g\"}", b_id,
                 json_string_value(json_object_get(j, "group_id")));
        ASSERT_EQ(post_msg(r, &t[1], secret, body), 200);
        id = posted_id(r);
        ASSERT_EQ(snowflake_node_of(id), 1);
        tmsg_expect_push(a, id, cim_ConvType_GROUP, b_id,
                         json_string_value(json_object_get(j, "group_id")), "api-g",
                         cim_MsgType_SYSTEM, "sys", 3);
        json_decref(j);
    }
    cimc_close(a);
    cimc_close(b);
    free(r);
    stop_cluster(&n, t, seed);
}

/* RECALL of a DIRECT message between homes: erased at both homes, announced to both. */
TEST_TIMEOUT(e2e_cluster_xhome_recall_direct, 150)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], a_id[32], b_id[32];
    static tmsg_t msgs[8];
    static uint8_t bodies[4096];
    cim_RecallEvent re;
    cim_SendRsp sent;
    cim_Result res;
    tmsg_page_t page;
    tmsg_t push;

    start_cluster(&n, t, seed);
    homed(1, "a", a_id);
    homed(3, "b", b_id);
    cimc_t *a = tsrv_login(&t[1], a_id, "d1", NULL);
    cimc_t *b = tsrv_login(&t[0], b_id, "d1", NULL);
    ASSERT_OK(tmsg_send(a, b_id, "r1", cim_MsgType_TEXT, "oops", 4, false, &sent));
    ASSERT_EQ(sent.code, cim_Code_OK);
    tmsg_expect_push(b, sent.msg_id, cim_ConvType_DIRECT, a_id, b_id, "r1", cim_MsgType_TEXT,
                     "oops", 4);
    ASSERT_OK(tmsg_recall(b, sent.msg_id, &res)); /* only its sender */
    ASSERT_EQ(res.code, cim_Code_FORBIDDEN);
    ASSERT_OK(tmsg_recall(a, sent.msg_id, &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    ASSERT_OK(tmsg_next_push(b, 5000, &push, bodies, sizeof(bodies)));
    ASSERT_EQ(push.msg_type, cim_MsgType_RECALL);
    tmsg_recall_event(&push, &re);
    ASSERT_U64_EQ(re.msg_id, sent.msg_id);
    /* answered once B's home has it: B's history shows it recalled, its body gone */
    tmsg_page_init(&page, msgs, 8, bodies, sizeof(bodies));
    ASSERT_OK(tmsg_history(b, cim_ConvType_DIRECT, a_id, 0, 10, &page));
    ASSERT_EQ(page.code, cim_Code_OK);
    ASSERT_EQ(page.n, 1);
    ASSERT_EQ(msgs[0].flags & 1u, 1u);
    ASSERT_EQ(msgs[0].body_len, 0);
    cimc_close(a);
    cimc_close(b);
    stop_cluster(&n, t, seed);
}

/* kill -9 of a group's home (node 1, also a member's) under the group's load from members
 * of three homes: once it is back, every acknowledged message is once in every member's
 * timeline, in id order. */
TEST_TIMEOUT(e2e_cluster_xhome_group_kill9, 240)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], ids[3][32];
    const char *bc[2];
    static tmsg_t tl[3][4096];
    size_t nt[3], acked = 0;
    loader_t *l = calloc(3, sizeof(*l));
    pthread_t th[3];
    cim_GroupRsp gr;
    uint64_t missing = 0;
    int64_t t0;

    ASSERT_NOT_NULL(l);
    start_cluster(&n, t, seed);
    for (int i = 0; i < 3; i++)
        homed(i + 1, "m", ids[i]);
    bc[0] = ids[1];
    bc[1] = ids[2];
    cimc_close(tsrv_login(&t[1], ids[1], "d0", NULL)); /* known at their homes */
    cimc_close(tsrv_login(&t[2], ids[2], "d0", NULL));
    cimc_t *a = tsrv_login(&t[0], ids[0], "d0", NULL);
    ASSERT_OK(tmsg_group_create(a, "k", bc, 2, false, &gr));
    ASSERT_EQ(gr.code, cim_Code_OK);
    cimc_close(a);
    /* each member sends from a node that is not its home, never through node 1: the
     * loaders' threads must not read t[0] while it is restarted (a new port) */
    for (int i = 0; i < 3; i++) {
        l[i].t = &t[i == 1 ? 2 : 1];
        l[i].conv_type = cim_ConvType_GROUP;
        memcpy(l[i].user, ids[i], sizeof(l[i].user));
        snprintf(l[i].to, sizeof(l[i].to), "%s", gr.group.group_id);
        snprintf(l[i].prefix, sizeof(l[i].prefix), "g%c", (char)('0' + i));
        ASSERT_EQ(pthread_create(&th[i], NULL, loader_run, &l[i]), 0);
    }
    sleep_ms(1500);
    tsrv_kill(&t[0]); /* the group's home and the first member's */
    sleep_ms(1000);
    tsrv_restart(&t[0]);
    sleep_ms(1500);
    for (int i = 0; i < 3; i++) {
        atomic_store(&l[i].stop, 1);
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
    }
    EVENTUALLY(alive_set(&t[0]) == 0xe && alive_set(&t[1]) == 0xe && alive_set(&t[2]) == 0xe,
               15000, "node 1 not back");
    for (int i = 0; i < 3; i++)
        for (size_t k = 0; k < l[i].answered; k++)
            acked += l[i].codes[k] == cim_Code_OK;
    fprintf(stderr, "answered %zu, %zu, %zu; acknowledged %zu\n", l[0].answered,
            l[1].answered, l[2].answered, acked);
    ASSERT_TRUE(acked > 0);
    t0 = now_ms();
    do {
        if (missing != 0)
            sleep_ms(200);
        missing = 0;
        for (int m = 0; m < 3; m++)
            nt[m] = timeline(&t[m], ids[m], "v1", tl[m], 4096);
        for (int i = 0; i < 3 && missing == 0; i++)
            for (size_t k = 0; k < l[i].answered && missing == 0; k++)
                for (int m = 0; m < 3 && missing == 0; m++)
                    if (l[i].codes[k] == cim_Code_OK && count_id(tl[m], nt[m], l[i].ids[k]) != 1)
                        missing = l[i].ids[k];
        if (missing != 0 && now_ms() - t0 > 20000) {
            dump_all();
            TEST_FAIL_("acknowledged message %llu is not once in every member's timeline "
                       "(%zu, %zu, %zu times)", (unsigned long long)missing,
                       count_id(tl[0], nt[0], missing), count_id(tl[1], nt[1], missing),
                       count_id(tl[2], nt[2], missing));
        }
    } while (missing != 0);
    /* and the three timelines hold the same group messages once all is applied */
    sleep_ms(1000);
    for (int m = 0; m < 3; m++)
        nt[m] = timeline(&t[m], ids[m], "v2", tl[m], 4096);
    ASSERT_EQ(nt[0], nt[1]);
    ASSERT_EQ(nt[1], nt[2]);
    for (size_t k = 0; k < nt[0]; k++)
        ASSERT_U64_EQ(tl[0][k].msg_id, tl[1][k].msg_id);
    for (size_t k = 0; k < nt[0]; k++)
        ASSERT_U64_EQ(tl[0][k].msg_id, tl[2][k].msg_id);
    fprintf(stderr, "in each timeline %zu\n", nt[0]);
    for (int m = 1; m < 3; m++)
        ASSERT_EQ(metric_of(&t[m], "cim_cluster_xhome_late_total"), 0);
    free(l);
    stop_cluster(&n, t, seed);
}

/* @p user's online flag in @p c's CONTACT_LIST (an OK answer that lists @p user); how long
 * the answer took in @p ms. */
static bool contact_online(cimc_t *c, const char *user, int64_t *ms)
{
    cim_Contact got[8];
    cim_ContactListRsp rsp;
    int64_t t0 = now_ms();
    size_t n;

    TMSG_EXPECT(tmsg_contact_list(c, got, 8, &n, &rsp), rsp, cim_Code_OK);
    if (ms != NULL)
        *ms = now_ms() - t0;
    for (size_t i = 0; i < n && i < 8; i++)
        if (strcmp(got[i].user, user) == 0)
            return got[i].online;
    dump_all();
    TEST_FAIL_("CONTACT_LIST misses %s", user);
}

/* CONTACT_LIST between homes: A (home 1) lists B (home 2), C (home 3) and L (home 1); B
 * lists A. A contact's online flag is what its home knows: true while one of its devices
 * is connected, whichever node the client reached, false once the last one is gone; a
 * contact whose home is killed is offline, answered within the bounded wait (not an
 * error), and at once once that home is known to be down. */
TEST_TIMEOUT(e2e_cluster_xhome_contact_online, 150)
{
    tnats_t n;
    tsrv_t t[NODES];
    char seed[256], a_id[32], b_id[32], c_id[32], l_id[32];
    cim_Result res;
    int64_t ms;

    start_cluster(&n, t, seed);
    homed(1, "a", a_id);
    homed(2, "b", b_id);
    homed(3, "c", c_id);
    homed(1, "l", l_id);
    cimc_close(tsrv_login(&t[1], b_id, "d0", NULL)); /* B, C and L exist */
    cimc_close(tsrv_login(&t[2], c_id, "d0", NULL));
    cimc_close(tsrv_login(&t[0], l_id, "d0", NULL));
    cimc_t *a = tsrv_login(&t[1], a_id, "d1", NULL); /* relayed: node 2 to home 1 */
    const char *contacts[] = {b_id, c_id, l_id};
    for (size_t i = 0; i < 3; i++) {
        ASSERT_OK(tmsg_user_req(a, FT_CONTACT_ADD, contacts[i], &res));
        ASSERT_EQ(res.code, cim_Code_OK);
        /* the last sessions' ends have reached their homes once this is false */
        EVENTUALLY(!contact_online(a, contacts[i], NULL), 5000, "%s still online",
                   contacts[i]);
    }

    /* online at their homes, each client at any node: B at node 1 (relayed to home 2), C
     * at its home, L at node 3 (relayed to home 1, A's own) */
    cimc_t *b1 = tsrv_login(&t[0], b_id, "d1", NULL);
    cimc_t *c1 = tsrv_login(&t[2], c_id, "d1", NULL);
    cimc_t *l1 = tsrv_login(&t[2], l_id, "d1", NULL);
    ASSERT_TRUE(contact_online(a, b_id, &ms));
    fprintf(stderr, "CONTACT_LIST with contacts of two other homes: %lld ms\n", (long long)ms);
    ASSERT_TRUE(contact_online(a, c_id, NULL));
    ASSERT_TRUE(contact_online(a, l_id, NULL));
    ASSERT_TRUE(metric_of(&t[0], "cim_cluster_online_asked_total") >= 2);
    /* and the other way: B (home 2) lists A (home 1, client at node 2) */
    ASSERT_OK(tmsg_user_req(b1, FT_CONTACT_ADD, a_id, &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    ASSERT_TRUE(contact_online(b1, a_id, NULL));

    /* B online as long as one device is: a second one at node 3, then the first goes */
    cimc_t *b2 = tsrv_login(&t[2], b_id, "d2", NULL);
    cimc_close(b1);
    ASSERT_TRUE(contact_online(a, b_id, NULL));
    cimc_close(b2);
    EVENTUALLY(!contact_online(a, b_id, NULL), 5000, "B still online after its last device");
    ASSERT_TRUE(contact_online(a, c_id, NULL));

    /* C's home dies: C is offline, answered within the wait for its home, not an error */
    tsrv_kill(&t[2]);
    ASSERT_TRUE(!contact_online(a, c_id, &ms));
    fprintf(stderr, "CONTACT_LIST right after C's home was killed: %lld ms\n", (long long)ms);
    ASSERT_TRUE(ms < CLUSTER_ONLINE_WAIT_MS + 1500);
    ASSERT_TRUE(metric_of(&t[0], "cim_cluster_online_unanswered_total") >= 1);
    EVENTUALLY(!(alive_set(&t[0]) & 1u << 3), 8000, "node 3 still alive to node 1");
    ASSERT_TRUE(!contact_online(a, c_id, &ms));
    fprintf(stderr, "CONTACT_LIST once C's home is known down: %lld ms\n", (long long)ms);
    ASSERT_TRUE(ms < CLUSTER_ONLINE_WAIT_MS);
    /* the live homes still answer: L's client was at node 3 (gone), B comes back at node 1 */
    EVENTUALLY(!contact_online(a, l_id, NULL), 8000, "L still online, its edge gone");
    cimc_t *b3 = tsrv_login(&t[0], b_id, "d3", NULL);
    ASSERT_TRUE(contact_online(a, b_id, NULL));
    ASSERT_EQ(metric_of(&t[0], "cim_cluster_xhome_dropped_total"), 0);
    ASSERT_EQ(metric_of(&t[1], "cim_cluster_xhome_dropped_total"), 0);
    cimc_close(b3);
    cimc_close(c1);
    cimc_close(l1);
    cimc_close(a);
    stop_cluster(&n, t, seed);
}
