/* admin_metrics: GET /metrics in the Prometheus text exposition format 0.0.4
 * (docs/ADMIN-API.md lists every series). Counters are read with relaxed loads from the
 * threads that own them; nothing here takes a lock on the message path. */
#include <dirent.h>
#include <openssl/crypto.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "actors/admin_int.h"
#include "actors/cluster.h"
#include "actors/dedup.h"
#include "actors/router.h"
#include "actors/webhook.h"
#include "actors/worker.h"
#include "cim.pb.h"
#include "core/mem.h"
#include "core/version.h"

typedef struct out {
    char *buf;
    size_t len, cap;
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(out_t *o, const char *fmt, ...)
{
    va_list ap;
    int n;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < o->cap - o->len)
            break;
        o->cap = o->cap * 2 + (n > 0 ? (size_t)n : 0);
        o->buf = mem_realloc(o->buf, o->cap);
    }
    o->len += (size_t)n;
}

static void head(out_t *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(out_t *o, const char *name, const char *type, const char *help, double v)
{
    head(o, name, type, help);
    put(o, "%s %.17g\n", name, v);
}

static void hist(out_t *o, const char *name, const char *help, const hist_t *h)
{
    uint64_t cum = 0;
    head(o, name, "histogram", help);
    for (size_t i = 0; i < h->nle; i++) {
        cum += ctr_get(&h->counts[i]);
        put(o, "%s_bucket{le=\"%.17g\"} %llu\n", name, h->le[i], (unsigned long long)cum);
    }
    cum += ctr_get(&h->counts[h->nle]);
    put(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.17g\n%s_count %llu\n", name,
        (unsigned long long)cum, name, hist_sum(h), name, (unsigned long long)cum);
}

static size_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    size_t n = 0;
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the directory's own descriptor */
}

static void process(out_t *o)
{
    struct rusage ru;
    struct rlimit rl;
    long page = sysconf(_SC_PAGESIZE);
    unsigned long long vsz = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f != NULL) {
        if (fscanf(f, "%llu %llu", &vsz, &rss) != 2)
            vsz = rss = 0;
        fclose(f);
    }
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        one(o, "process_cpu_seconds_total", "counter", "User and system CPU time spent.",
            (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    one(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
        (double)rss * (double)page);
    one(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
        (double)vsz * (double)page);
    one(o, "process_open_fds", "gauge", "Number of open file descriptors.", (double)open_fds());
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        one(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
            (double)rl.rlim_cur);
}

/* This node and, with a cluster, the bus. */
static void cluster(out_t *o, const cluster_t *c)
{
    cluster_stats_t st;

    head(o, "cim_node_info", "gauge", "This node: its node id and cluster (empty: standalone).");
    put(o, "cim_node_info{node=\"%u\",cluster=\"%s\"} 1\n", cluster_self(c),
        cluster_is_enabled(c) ? cluster_name(c) : "");
    if (!cluster_is_enabled(c))
        return;
    cluster_stats(c, &st);
    one(o, "cim_cluster_bus_up", "gauge", "1 while connected to the NATS bus.", st.bus_up);
    one(o, "cim_cluster_peers_up", "gauge", "Other nodes of the cluster heard from within 3 s.",
        (double)st.peers_up);
    one(o, "cim_cluster_reconnects_total", "counter",
        "Times the bus connection came back after it was lost.", (double)st.reconnects_total);
    hist(o, "cim_cluster_bus_rtt_seconds", "Round trips of pings to the live peers over the bus.",
         cluster_rtt(c));
    head(o, "cim_cluster_relayed_total", "counter",
         "Messages of relayed sessions (a client on one node, its session at its user's home) "
         "sent to and received from the bus.");
    put(o, "cim_cluster_relayed_total{dir=\"sent\"} %llu\n",
        (unsigned long long)st.relay_sent_total);
    put(o, "cim_cluster_relayed_total{dir=\"received\"} %llu\n",
        (unsigned long long)st.relay_received_total);
    one(o, "cim_cluster_relay_refused_total", "counter",
        "Relayed frames refused because the way to the bus was full (the session was closed "
        "with SERVER_BUSY).",
        (double)st.relay_refused_total);
    one(o, "cim_cluster_xhome_forwarded_total", "counter",
        "Messages this node originated that JetStream stored for another home.",
        (double)st.xhome_forwarded_total);
    one(o, "cim_cluster_xhome_consumed_total", "counter",
        "Messages of other origins this home consumed and appended to its timelines.",
        (double)st.xhome_consumed_total);
    one(o, "cim_cluster_xhome_refused_total", "counter",
        "SENDs answered SERVER_BUSY because the recipient's home or JetStream was unavailable.",
        (double)st.xhome_refused_total);
    one(o, "cim_cluster_xhome_dropped_total", "counter",
        "Malformed bus messages (between homes) dropped.", (double)st.xhome_dropped_total);
    one(o, "cim_cluster_xhome_late_total", "counter",
        "Messages dropped because a greater id was already applied to their timelines.",
        (double)st.xhome_late_total);
    one(o, "cim_cluster_xhome_held_total", "counter",
        "Messages held before publishing while their homes were asked whether they would "
        "come late (the outbox after a restart, or a publish long after the commit).",
        (double)st.xhome_held_total);
    one(o, "cim_cluster_xhome_reissued_total", "counter",
        "Held messages given a new id, as they would have come late at a home.",
        (double)st.xhome_reissued_total);
    one(o, "cim_cluster_online_asked_total", "counter",
        "Questions to other homes about which contacts of a CONTACT_LIST are online.",
        (double)st.online_asked_total);
    one(o, "cim_cluster_online_unanswered_total", "counter",
        "Homes that did not answer such a question in time (down, the bus, 1 s): their "
        "contacts were listed offline.",
        (double)st.online_unanswered_total);
    one(o, "cim_cluster_merge_pending", "gauge",
        "Messages waiting in this home's merge for the other origins' watermarks.",
        (double)st.xhome_pending);
    hist(o, "cim_cluster_merge_delay_seconds",
         "Time a message waited in this home's merge before it was appended.",
         cluster_merge_delay(c));
}

/* One worker counter (at @p off in worker_stats_t), summed over the workers. */
static uint64_t wsum(const server_t *srv, size_t off)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < srv->nworkers; i++)
        n += ctr_get((const ctr_t *)((const char *)&srv->workers[i]->stats + off));
    return n;
}

#define WSUM(a, field) wsum((a)->srv, offsetof(worker_stats_t, field))

static void render(admin_t *a, out_t *o)
{
    server_t *srv = a->srv;
    const store_stats_t *st = store_stats(srv->store);
    uint64_t opened = WSUM(a, conns_opened), closed = WSUM(a, conns_closed);

    head(o, "cim_build_info", "gauge", "The build: version (git describe) and node id.");
    put(o, "cim_build_info{version=\"%s\",node_id=\"%u\"} 1\n", cim_version, srv->conf->node_id);
    cluster(o, srv->cluster);
    one(o, "cim_up", "gauge", "1 while serving clients, 0 while starting or stopping.",
        atomic_load(&srv->ready) && !atomic_load(&srv->stopping));
    one(o, "cim_connections", "gauge", "Client connections open (TCP).",
        (double)(opened - (closed < opened ? closed : opened)));
    one(o, "cim_connections_total", "counter", "Client connections accepted.", (double)opened);
    one(o, "cim_sessions", "gauge", "Logged-in sessions.", (double)router_count(srv->router));
    head(o, "cim_logins_total", "counter", "Login answers by result (cim.Code name).");
    for (int c = 0; c < WORKER_CODES; c++) {
        uint64_t n = 0;
        for (uint32_t i = 0; i < srv->nworkers; i++)
            n += ctr_get(&srv->workers[i]->stats.logins[c]);
        if (n > 0 || c == cim_Code_OK || c == cim_Code_UNAUTHORIZED)
            put(o, "cim_logins_total{result=\"%s\"} %llu\n", cim_Code_name((cim_Code)c),
                (unsigned long long)n);
    }
    one(o, "cim_messages_stored_total", "counter", "Messages stored (not transient).",
        (double)ctr_get(&st->messages));
    one(o, "cim_pushes_total", "counter", "PUSH and EVENT frames sent to sessions.",
        (double)WSUM(a, pushes));
    one(o, "cim_frames_in_total", "counter", "Frames received from clients.",
        (double)WSUM(a, frames_in));
    one(o, "cim_bytes_in_total", "counter", "Bytes read from client connections.",
        (double)WSUM(a, bytes_in));
    one(o, "cim_bytes_out_total", "counter", "Bytes written to client connections.",
        (double)WSUM(a, bytes_out));
    one(o, "cim_queue_bytes", "gauge", "Output queued for slow readers, all sessions.",
        (double)atomic_load_explicit(&srv->queued, memory_order_relaxed));
    one(o, "cim_store_batches_total", "counter", "Write transactions committed.",
        (double)ctr_get(&st->batches));
    one(o, "cim_store_requests_total", "counter", "Requests applied by the store.",
        (double)ctr_get(&st->requests));
    hist(o, "cim_store_batch_size", "Requests per write transaction.", &st->batch_size);
    one(o, "cim_store_paced_total", "counter",
        "Wake-ups of a busy writer that waited to gather a larger batch (commit_pace_ms).",
        (double)ctr_get(&st->paced));
    hist(o, "cim_store_commit_seconds", "Time of each commit (fsync with durability=sync).",
         &st->commit_seconds);
    one(o, "cim_dedup_ids", "gauge", "client_msg_ids held in the dedup window.",
        (double)dedup_count(srv->dedup));
    one(o, "cim_dedup_bytes", "gauge", "Memory of the dedup window's tables.",
        (double)dedup_bytes(srv->dedup));
    one(o, "cim_admin_connections", "gauge", "Admin HTTP connections open.", (double)a->conns);
    if (srv->webhook != NULL) {
        webhook_stats_t wh;
        webhook_stats(srv->webhook, &wh);
        one(o, "cim_webhook_queued", "gauge",
            "Webhook events held (queued, in flight, waiting to retry).", (double)wh.queued);
        one(o, "cim_webhook_in_flight", "gauge", "Webhook requests under way.",
            (double)wh.in_flight);
        one(o, "cim_webhook_requests_total", "counter", "Webhook requests started.",
            (double)wh.sent_total);
        one(o, "cim_webhook_delivered_total", "counter", "Webhook events answered 2xx.",
            (double)wh.delivered_total);
        one(o, "cim_webhook_failed_attempts_total", "counter",
            "Webhook attempts answered otherwise, or not at all.",
            (double)wh.failed_attempts_total);
        head(o, "cim_webhook_dropped_total", "counter", "Webhook events dropped, by reason.");
        put(o, "cim_webhook_dropped_total{reason=\"queue_full\"} %llu\n",
            (unsigned long long)wh.dropped_queue_full_total);
        put(o, "cim_webhook_dropped_total{reason=\"retries_exhausted\"} %llu\n",
            (unsigned long long)wh.dropped_retries_total);
    }
    process(o);
}

bool admin_metrics_auth(admin_t *a, h2o_req_t *req)
{
    const char *want = a->srv->conf->metrics_token;
    ssize_t i;
    const h2o_iovec_t *v;
    size_t wl = strlen(want);

    if (wl == 0)
        return true;
    i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    v = i >= 0 ? &req->headers.entries[i].value : NULL;
    if (v != NULL && v->len == 7 + wl && strncasecmp(v->base, "Bearer ", 7) == 0 &&
        CRYPTO_memcmp(v->base + 7, want, wl) == 0)
        return true;
    (void)admin_error(req, 401, "UNAUTHORIZED", "send Authorization: Bearer <metrics_token>");
    return false;
}

int admin_metrics(admin_t *a, h2o_req_t *req)
{
    out_t o = {NULL, 0, 0};

    if (!admin_metrics_auth(a, req))
        return 0;
    o.cap = 8192;
    o.buf = mem_alloc(o.cap);
    render(a, &o);
    (void)admin_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", o.buf, o.len);
    mem_free(o.buf);
    return 0;
}
