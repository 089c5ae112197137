/* libFuzzer target fuzz_busmsg: the handlers that decode what other nodes put on the
 * cluster's NATS bus inside the cluster code (src/actors/cluster_xhome.c,
 * cluster_rejoin.c, cluster_online.c: N.node.<self>.<suffix>, docs/SCALING.md) and the
 * relay's (relay.c: .rin, .rout), which fuzz_bus cannot call: they need a cluster_t and a
 * natsMsg, or a server_t with workers.
 *
 * Context, built once: node 1 of cluster "cim" with nodes 1, 2 and 3, made with
 * cluster_new and never started (no thread, no connection: the handlers get nc NULL, as
 * test_xhome.c passes), its mailbox set up here on a loop that never runs; a server_t
 * with a router (user "alice" of app "default" is online), a store that never starts
 * (only its mailbox) and two workers (only their mailboxes; worker 1's is full).
 * After each input, what the handler posted to these mailboxes is taken out, checked and
 * freed the way the cluster frees what it drops (cluster__onl_drop, cluster__xh_drop).
 *
 * Input: [sel u8][env u8][rlen u8][reply: rlen bytes][data]. sel % HANDLERS picks the
 * handler (and the suffix of the message's subject); the reply subject is the rlen bytes
 * up to a NUL (none when empty); the rest is the message's data. env:
 *   bit 0, 1  node 2, node 3 heard from just now (alive)
 *   bit 2     the check callback answers OK (else NOT_FOUND, with a reason too long
 *             for the answer)
 *   bit 3     the "applied?" callback says yes
 *   bit 4     no server (c->srv NULL: the node is stopping)
 *   bit 5     no callbacks (cluster_set_xhome and cluster_set_presence with NULL)
 *   bit 6     the store's mailbox is full
 *   bit 7     the message has the header "Status: 503" (with no data: NATS's "no
 *             responders")
 *
 * Oracle, besides ASan/UBSan and LeakSanitizer: an input is dropped (one count in the
 * cluster's xhome_dropped_total) or has effects — a message in the cluster's, the store's
 * or a worker's mailbox (one at most), a publish, callbacks — never both; which effects,
 * and their content, are what a model of the handler's format says (the formats in the
 * comments of cluster_xhome.c, cluster_rejoin.c, cluster_online.c, relay.h; the models
 * read them with their own byte reader and id check, fuzz/model.h). Publishes are seen
 * through __wrap_natsConnection_Publish (linked with -Wl,--wrap: test/fuzz/SConscript,
 * test/SConscript) while a handler runs; the published bytes are copied, so ASan checks
 * their whole length. */
#include <inttypes.h>
#include <nats/nats.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/cluster.h"
#include "actors/cluster_int.h"
#include "actors/relay.h"
#include "actors/router.h"
#include "actors/server.h"
#include "actors/store.h"
#include "actors/store_int.h"
#include "actors/worker.h"
#include "actors/xhome.h"
#include "actors/xonline.h"
#include "cim.pb.h"
#include "core/be.h"
#include "core/conf.h"
#include "core/frame_type.h"
#include "core/log.h"
#include "core/mbox.h"
#include "core/mem.h"
#include "fuzz/model.h"
#include "fuzz/targets.h"

#define SELF        1u
#define PREFIX      "cim.node."
#define ONLINE_APP  "default"
#define ONLINE_USER "alice"
#define REFUSE_CODE cim_Code_NOT_FOUND
#define PUBS_MAX    4

/* The formats' limits as cluster_xhome.c and cluster_rejoin.c define them (private there). */
#define REASON_MAX    96
#define CHECK_REQ_MAX (8 + 4 + 1 + 3 * (KV_ID_MAX + 1))
#define QUERY_MAX     (8 + 1 + 2 * (KV_ID_MAX + 1))
#define FWD_HDR       (8 + 4 + 8 + 1)
#define FWD_SEND_MAX  (FWD_HDR + 2 + 4 * (KV_ID_MAX + 1))
#define FWD_OP_MAX    (FWD_HDR + 4 + 1 + 8 + 3 * (KV_ID_MAX + 1) + 4)
#define FWD_ANS_HDR   (8 + 4 + 8 + 8 + 2)
#define FWD_ANS_MAX   (FWD_ANS_HDR + 256 + REASON_MAX)
#define RJ_ANSWER_LEN (8 + 4 + 1 + 8)
#define RJ_FLAGS      7 /* RJ_HAS | RJ_LATE | RJ_NOT_YET */

enum {
    ENV_ALIVE2 = 1,
    ENV_ALIVE3 = 2,
    ENV_CHECK_OK = 4,
    ENV_HAS = 8,
    ENV_NO_SRV = 16,
    ENV_NO_CB = 32,
    ENV_STORE_FULL = 64,
    ENV_STATUS = 128
};

/* The handlers, by sel % HANDLERS. */
enum {
    H_CHECK,
    H_ANSWER,
    H_QUERY,
    H_APPLIED,
    H_FWD_SEND,
    H_FWD_OP,
    H_FWD_ANSWER,
    H_READ,
    H_PRESENCE,
    H_TRANSIENT,
    H_RJ_ASK,
    H_RJ_ANSWER,
    H_ONL_ASK,
    H_ONL_ANSWER,
    H_RIN,
    H_ROUT,
    HANDLERS
};

static const char *const suffix[HANDLERS] = {"xchk", "xans", "xapq", "xapd", "xsnd", "xop",
                                             "xfa",  "xrd",  "xpr",  "xtg",  "xrjq", "xrja",
                                             "xonl", "xona", "rin",  "rout"};

static const char why_long[] = "refused by the fuzz target's check callback, with a reason "
                               "longer than the 95 bytes an answer to a check has room for";

static __attribute__((format(printf, 1, 2), noreturn)) void fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fuzz_busmsg: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* ---- what a handler did ------------------------------------------------------------------ */

#define REPLY_MAX 255 /* the input's reply subject */

typedef struct pub {
    char subj[REPLY_MAX + 1];
    uint8_t *data; /* a copy */
    size_t len;
} pub_t;

typedef struct call {
    int kind; /* 0 none, else H_CHECK (check), H_QUERY (has), H_PRESENCE (presence) or
                 H_TRANSIENT (deliver) */
    char app[KV_ID_MAX + 1], a[KV_ID_MAX + 1], b[KV_ID_MAX + 1]; /* its names, in order */
    bool flag;     /* check: system; has: record; deliver: group */
    uint64_t id;   /* has */
    uint8_t *data; /* presence, deliver: a copy */
    size_t len;
    void *srv;
} call_t;

typedef struct effects {
    uint64_t dropped;    /* the counter's increase */
    cl_msg_t *post;      /* the cluster's mailbox */
    store_req_t *stq;    /* the store's */
    worker_msg_t *wq[2]; /* the workers' */
    size_t nposts, nstq, nwq[2];
    pub_t pubs[PUBS_MAX];
    size_t npubs;
    call_t calls[2];
    size_t ncalls;
} effects_t;

static effects_t fx;
static bool armed; /* a handler runs: publishes and callbacks are recorded */

natsStatus __real_natsConnection_Publish(natsConnection *nc, const char *subj, const void *data,
                                         int len);
natsStatus __wrap_natsConnection_Publish(natsConnection *nc, const char *subj, const void *data,
                                         int len);

/* Every caller of natsConnection_Publish in the programs that link this file comes here
 * (-Wl,--wrap): recorded while a handler of this target runs, else libnats's. */
natsStatus __wrap_natsConnection_Publish(natsConnection *nc, const char *subj, const void *data,
                                         int len)
{
    pub_t *p;

    if (!armed)
        return __real_natsConnection_Publish(nc, subj, data, len);
    if (nc != NULL || subj == NULL || len < 0 || fx.npubs == PUBS_MAX ||
        strlen(subj) >= sizeof(p->subj))
        fail("a publish with nc %p, subject %s, %d bytes (publish %zu)", (void *)nc,
             subj != NULL ? subj : "NULL", len, fx.npubs + 1);
    p = &fx.pubs[fx.npubs++];
    snprintf(p->subj, sizeof(p->subj), "%s", subj);
    p->len = (size_t)len;
    p->data = mem_alloc(p->len + 1);
    if (len > 0)
        memcpy(p->data, data, p->len);
    return NATS_INVALID_ARG; /* what libnats returns for nc NULL */
}

static call_t *call_new(int kind, void *srv, const char *app, const char *a)
{
    call_t *k;

    if (!armed || fx.ncalls == 2)
        fail("a callback outside a handler, or a third one");
    k = &fx.calls[fx.ncalls++];
    k->kind = kind;
    k->srv = srv;
    snprintf(k->app, sizeof(k->app), "%s", app);
    snprintf(k->a, sizeof(k->a), "%s", a);
    return k;
}

/* ---- the context ------------------------------------------------------------------------- */

static struct {
    bool ready;
    bool debug; /* CIM_FUZZ_DEBUG: the server's debug log, and a line per input */
    uint8_t env;
    conf_t conf;
    cluster_t *c;
    server_t srv;
    uv_loop_t loop;
    worker_t *w[2];
    mbox_node_t filler[2]; /* keep the store's and worker 1's mailboxes full */
} cx;

static int on_check(void *srv, const char *app, const char *from, const char *to, bool system,
                    const char **why)
{
    call_t *k = call_new(H_CHECK, srv, app, from);

    snprintf(k->b, sizeof(k->b), "%s", to);
    k->flag = system;
    if (cx.env & ENV_CHECK_OK)
        return cim_Code_OK;
    *why = why_long;
    return REFUSE_CODE;
}

static bool on_has(void *srv, const char *app, const char *name, uint64_t id, bool record)
{
    call_t *k = call_new(H_QUERY, srv, app, name);

    k->id = id;
    k->flag = record;
    return (cx.env & ENV_HAS) != 0;
}

static void keep_data(call_t *k, const uint8_t *data, size_t len)
{
    k->len = len;
    k->data = mem_alloc(len + 1);
    memcpy(k->data, data, len); /* all of it: ASan checks the range */
}

static void on_deliver(void *srv, const char *app, const char *name, bool group, const uint8_t *rec,
                       size_t len)
{
    call_t *k = call_new(H_TRANSIENT, srv, app, name);

    k->flag = group;
    keep_data(k, rec, len);
}

static void on_presence(void *srv, const char *app, const char *user, const uint8_t *ev, size_t len)
{
    keep_data(call_new(H_PRESENCE, srv, app, user), ev, len);
}

static void on_wake(mbox_t *box)
{
    (void)box; /* the loop never runs: the target takes the messages out itself */
}

static void box_init(mbox_t *box, size_t max)
{
    if (mbox_init(box, &cx.loop, max, on_wake) < 0)
        fail("mbox_init");
}

static void build_context(void)
{
    router_ent_t ent, kicked[1];
    size_t nkicked;
    bool first;

    cx.debug = getenv("CIM_FUZZ_DEBUG") != NULL && getenv("CIM_FUZZ_DEBUG")[0] != '\0';
    log_set_level(cx.debug ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    if (nats_Open(-1) != NATS_OK || uv_loop_init(&cx.loop) < 0)
        fail("nats_Open or uv_loop_init");
    conf_defaults(&cx.conf);
    cx.conf.node_id = SELF;
    snprintf(cx.conf.cluster_url, sizeof(cx.conf.cluster_url), "nats://127.0.0.1:1");
    cx.conf.ncluster_nodes = 3;
    for (uint32_t i = 0; i < 3; i++)
        cx.conf.cluster_nodes[i] = i + 1;
    cx.c = cluster_new(&cx.conf); /* never started */
    /* what cluster_start would set up and the handlers use: the mailbox, the prefix */
    box_init(&cx.c->box, CLUSTER_MBOX_MAX);
    cx.c->box.data = cx.c;
    snprintf(cx.c->prefix, sizeof(cx.c->prefix), "%s", PREFIX);
    atomic_store(&cx.c->xreleased, 0x0102030405060708ull);
    cx.srv.conf = &cx.conf;
    cx.srv.cluster = cx.c;
    cx.srv.router = router_new();
    memset(&ent, 0, sizeof(ent));
    ent.sid = 1;
    (void)router_add(cx.srv.router, ONLINE_APP, ONLINE_USER, &ent, false, kicked, 1, &nkicked,
                     &first);
    cx.srv.store = mem_calloc(sizeof(*cx.srv.store)); /* never started: only its mailbox */
    box_init(&cx.srv.store->box, 1);
    cx.srv.nworkers = 2;
    cx.srv.workers = cx.w;
    for (int i = 0; i < 2; i++) {
        cx.w[i] = mem_calloc(sizeof(*cx.w[i])); /* only the mailbox */
        cx.w[i]->srv = &cx.srv;
        box_init(&cx.w[i]->box, 1);
    }
    cx.ready = true;
}

/* The context as @p env says. */
static void set_env(uint8_t env)
{
    cluster_t *c = cx.c;
    uint64_t now = cluster__now_ms();
    void *srv = (env & ENV_NO_SRV) ? NULL : &cx.srv;

    cx.env = env;
    atomic_store(&c->seen_ms[1], (env & ENV_ALIVE2) ? now : 0);
    atomic_store(&c->seen_ms[2], (env & ENV_ALIVE3) ? now : 0);
    if (env & ENV_NO_CB) {
        cluster_set_xhome(c, NULL, NULL, NULL, srv);
        cluster_set_presence(c, NULL);
    } else {
        cluster_set_xhome(c, on_check, on_has, on_deliver, srv);
        cluster_set_presence(c, on_presence);
    }
    if ((env & ENV_STORE_FULL) && mbox_send(&cx.srv.store->box, &cx.filler[0]) != 0)
        fail("cannot fill the store's mailbox");
    if (mbox_send(&cx.w[1]->box, &cx.filler[1]) != 0) /* worker 1's stays full */
        fail("cannot fill worker 1's mailbox");
}

/* Take every message out of @p box (the fillers go too): how many, the first in *@p first.
 * More than one fails the input, so the others are not kept. */
static size_t take_all(mbox_t *box, mbox_node_t **first)
{
    mbox_node_t *n;
    size_t k = 0;

    *first = NULL;
    while ((n = mbox_pop(box)) != NULL)
        if (n != &cx.filler[0] && n != &cx.filler[1] && k++ == 0)
            *first = n;
    return k;
}

/* What the handler did, from the mailboxes and the counter (the rest is in fx already). */
static void collect(uint64_t dropped_before)
{
    mbox_node_t *n;

    fx.dropped = atomic_load(&cx.c->x_dropped) - dropped_before;
    fx.nposts = take_all(&cx.c->box, &n);
    fx.post = n != NULL ? container_of(n, cl_msg_t, node) : NULL;
    fx.nstq = take_all(&cx.srv.store->box, &n);
    fx.stq = n != NULL ? container_of(n, store_req_t, node) : NULL;
    for (int i = 0; i < 2; i++) {
        fx.nwq[i] = take_all(&cx.w[i]->box, &n);
        fx.wq[i] = n != NULL ? container_of(n, worker_msg_t, node) : NULL;
    }
    /* every handler: a message is dropped (counted) or taken, and posts one message at most */
    if (fx.dropped > 1 || fx.nposts + fx.nstq + fx.nwq[0] + fx.nwq[1] > 1 ||
        (fx.dropped == 1 && fx.nposts + fx.nstq + fx.nwq[0] + fx.nwq[1] + fx.npubs + fx.ncalls > 0))
        fail("%" PRIu64 " drops with %zu cluster messages, %zu store requests, %zu worker "
             "messages, %zu publishes, %zu callbacks",
             fx.dropped, fx.nposts, fx.nstq, fx.nwq[0] + fx.nwq[1], fx.npubs, fx.ncalls);
}

/* Free what collect took, as the cluster, the store and the workers free what they drop. */
static void release(void)
{
    if (fx.post != NULL) {
        cluster__onl_drop(cx.c, fx.post);
        cluster__xh_drop(cx.c, fx.post);
        mem_free(fx.post);
    }
    mem_free(fx.stq); /* a store_send_t (its body inside, no xmsg) or a store_op_t */
    for (int i = 0; i < 2; i++)
        if (fx.wq[i] != NULL) {
            mem_free(fx.wq[i]->u.relay.data);
            mem_free(fx.wq[i]);
        }
    for (size_t i = 0; i < fx.npubs; i++)
        mem_free(fx.pubs[i].data);
    for (size_t i = 0; i < fx.ncalls; i++)
        mem_free(fx.calls[i].data);
    memset(&fx, 0, sizeof(fx));
}

/* ---- the models -------------------------------------------------------------------------- */

/* One input, as the handler sees it. */
typedef struct in {
    int h;
    const uint8_t *p; /* the data */
    size_t n;
    const char *reply; /* NULL: none */
} in_t;

/* The id NUL at *@p off of @p in into @p out (moves *@p off past it); false: none there. */
static bool read_id(const in_t *in, size_t *off, char out[KV_ID_MAX + 1])
{
    size_t k = 0;

    while (*off + k < in->n && in->p[*off + k] != 0)
        k++;
    if (*off + k >= in->n || !model_id(in->p + *off, k))
        return false;
    memcpy(out, in->p + *off, k);
    out[k] = '\0';
    *off += k + 1;
    return true;
}

/* @p k ids from @p off (false: not that many). */
static bool read_ids(const in_t *in, size_t *off, int k, char (*out)[KV_ID_MAX + 1])
{
    for (int i = 0; i < k; i++)
        if (!read_id(in, off, out[i]))
            return false;
    return true;
}

static bool is_node(uint64_t node)
{
    return node >= 1 && node <= 3;
}

static bool is_alive_peer(uint64_t node)
{
    return (node == 2 && (cx.env & ENV_ALIVE2)) || (node == 3 && (cx.env & ENV_ALIVE3));
}

static bool has_cb(void)
{
    return (cx.env & ENV_NO_CB) == 0;
}

static void *srv_of(void)
{
    return (cx.env & ENV_NO_SRV) ? NULL : &cx.srv;
}

/* What the model expects a handler to have done. */
typedef struct want {
    bool dropped;
    int post;      /* the kind of the one cluster message, or 0 */
    int store;     /* the kind of the one store request, or 0 */
    int worker;    /* the worker with the one message, or -1 */
    bool pub;      /* one publish */
    size_t ncalls; /* callbacks */
} want_t;

static const want_t NONE = {false, 0, 0, -1, false, 0};
static const want_t DROPPED = {true, 0, 0, -1, false, 0};

static void expect(const in_t *in, const want_t *w)
{
    if (fx.dropped != (w->dropped ? 1 : 0) || fx.nposts != (w->post != 0) ||
        (w->post != 0 && fx.post->kind != w->post) || fx.nstq != (w->store != 0) ||
        (w->store != 0 && fx.stq->kind != w->store) || fx.nwq[0] != (w->worker == 0) ||
        fx.nwq[1] != (w->worker == 1) || fx.npubs != (w->pub ? 1 : 0) || fx.ncalls != w->ncalls)
        fail("%s (%zu bytes, env 0x%02x): dropped %" PRIu64 ", cluster message %d, store "
             "request %d, worker messages %zu+%zu, %zu publishes, %zu callbacks; the model: "
             "dropped %d, cluster message %d, store request %d, worker %d, %d publishes, %zu "
             "callbacks",
             suffix[in->h], in->n, cx.env, fx.dropped, fx.post != NULL ? fx.post->kind : 0,
             fx.stq != NULL ? fx.stq->kind : 0, fx.nwq[0], fx.nwq[1], fx.npubs, fx.ncalls,
             w->dropped, w->post, w->store, w->worker, w->pub, w->ncalls);
}

/* Callback @p i was @p kind, with @p app and @p a, and the env's server. */
static const call_t *want_call(const in_t *in, size_t i, int kind, const char *app, const char *a)
{
    const call_t *k = &fx.calls[i];

    if (k->kind != kind || strcmp(k->app, app) != 0 || strcmp(k->a, a) != 0 || k->srv != srv_of())
        fail("%s: callback %zu is kind %d (%s, %s), the model's kind %d (%s, %s)", suffix[in->h], i,
             k->kind, k->app, k->a, kind, app, a);
    return k;
}

static void want_bytes(const in_t *in, const char *what, const uint8_t *got, size_t glen,
                       const uint8_t *want, size_t wlen)
{
    if (glen != wlen || (wlen > 0 && memcmp(got, want, wlen) != 0))
        fail("%s: %s (%zu bytes) is not the input's (%zu bytes)", suffix[in->h], what, glen, wlen);
}

/* The publish went to @p subj, with @p min .. @p max bytes. */
static const pub_t *want_pub(const in_t *in, const char *subj, size_t min, size_t max)
{
    const pub_t *p = &fx.pubs[0];

    if (strcmp(p->subj, subj) != 0 || p->len < min || p->len > max)
        fail("%s: a publish to %s of %zu bytes, the model's to %s of %zu..%zu bytes", suffix[in->h],
             p->subj, p->len, subj, min, max);
    return p;
}

/* .xchk: u64 token, u32 origin, u8 flags (1: system), app NUL from NUL to NUL, then a
 * transient message (maybe none), from an origin; answered on the reply subject (one of
 * the cluster's, else dropped): u64 token, u32 code, u64 this home's floor (xreleased),
 * the reason when not OK. The check callback is asked when the origin is a live peer and
 * the recipient is homed here. */
static void check_check(const in_t *in)
{
    char ids[3][KV_ID_MAX + 1];
    want_t w = NONE;
    size_t off = 13;
    uint64_t origin;
    bool asked = false;
    int code = cim_Code_SERVER_BUSY;
    const pub_t *r;

    if (in->reply == NULL || strncmp(in->reply, PREFIX, strlen(PREFIX)) != 0 || in->n < 13 ||
        in->n > CHECK_REQ_MAX + XHOME_REC_MAX || !read_ids(in, &off, 3, ids)) {
        expect(in, &DROPPED);
        return;
    }
    origin = model_get(in->p + 8, 4);
    if (origin != SELF && is_alive_peer(origin) && cluster_home(cx.c, ids[0], ids[2]) == SELF &&
        has_cb()) {
        asked = true;
        code = (cx.env & ENV_CHECK_OK) ? cim_Code_OK : REFUSE_CODE;
    }
    w.pub = true;
    w.ncalls = asked + (code == cim_Code_OK && off != in->n);
    expect(in, &w);
    if (asked && want_call(in, 0, H_CHECK, ids[0], ids[1]) &&
        (strcmp(fx.calls[0].b, ids[2]) != 0 || fx.calls[0].flag != ((in->p[12] & 1) != 0)))
        fail("xchk: the check callback was not asked about the input's recipient and flag");
    if (w.ncalls == 2) {
        const call_t *k = want_call(in, 1, H_TRANSIENT, ids[0], ids[2]);
        if (k->flag)
            fail("xchk: a transient message delivered as a group's");
        want_bytes(in, "the transient message", k->data, k->len, in->p + off, in->n - off);
    }
    r = want_pub(in, in->reply, 20, 20 + REASON_MAX - 1);
    if (memcmp(r->data, in->p, 8) != 0 || model_get(r->data + 8, 4) != (uint64_t)code ||
        model_get(r->data + 12, 8) != atomic_load(&cx.c->xreleased))
        fail("xchk: the answer's token, code (%" PRIu64 ", the model %d) or floor is wrong",
             model_get(r->data + 8, 4), code);
    if (memchr(r->data + 20, 0, r->len - 20) != NULL || (code == cim_Code_OK && r->len != 20) ||
        (asked && code != cim_Code_OK &&
         (r->len != 20 + REASON_MAX - 1 || memcmp(r->data + 20, why_long, r->len - 20) != 0)))
        fail("xchk: the answer's reason (%zu bytes) is not the callback's", r->len - 20);
}

/* .xans: the answer to a check (above). */
static void check_answer(const in_t *in)
{
    cl_msg_t *m;

    if (in->n < 20 || in->n > 20 + REASON_MAX) {
        expect(in, &DROPPED);
        return;
    }
    expect(in, &(want_t){false, MSG_XANS, 0, -1, false, 0});
    m = fx.post;
    if (m->id != model_get(in->p, 8) || m->code != (int)model_get(in->p + 8, 4) ||
        m->seq != model_get(in->p + 12, 8))
        fail("xans: token, code or floor is not the input's");
    want_bytes(in, "the reason", m->data, m->len, in->p + 20, in->n - 20);
    if (m->data[m->len] != '\0')
        fail("xans: the reason is not NUL-terminated");
}

/* .xapq: u64 id, u8 1 (its record) or 0 (in the timeline of user name), app NUL name NUL;
 * answered "yes" (u64 id, u32 this node) on the reply subject, one of the cluster's, when
 * the "applied?" callback says so, nothing otherwise. */
static void check_query(const in_t *in)
{
    char ids[2][KV_ID_MAX + 1];
    size_t off = 9;
    const pub_t *r;
    want_t w = NONE;

    if (in->reply == NULL || in->n < 9 || in->n > QUERY_MAX || in->p[8] > 1 ||
        !read_ids(in, &off, 2, ids) || off != in->n ||
        strncmp(in->reply, PREFIX, strlen(PREFIX)) != 0) {
        expect(in, &DROPPED);
        return;
    }
    w.ncalls = has_cb();
    w.pub = has_cb() && (cx.env & ENV_HAS);
    expect(in, &w);
    if (w.ncalls == 1 && (want_call(in, 0, H_QUERY, ids[0], ids[1])->id != model_get(in->p, 8) ||
                          fx.calls[0].flag != (in->p[8] == 1)))
        fail("xapq: the callback was not asked about the input's id and kind");
    if (w.pub) {
        r = want_pub(in, in->reply, 12, 12);
        if (memcmp(r->data, in->p, 8) != 0 || model_get(r->data + 8, 4) != SELF)
            fail("xapq: the answer is not (the id, this node)");
    }
}

/* .xapd: u64 id, u32 the home (a node of the cluster) that applied it. */
static void check_applied(const in_t *in)
{
    if (in->n != 12 || !is_node(model_get(in->p + 8, 4))) {
        expect(in, &DROPPED);
        return;
    }
    expect(in, &(want_t){false, MSG_XAPD, 0, -1, false, 0});
    if (fx.post->id != model_get(in->p, 8) || fx.post->from != model_get(in->p + 8, 4))
        fail("xapd: id or home is not the input's");
}

/* Forwarded requests (.xsnd, .xop): from a peer, for a group homed here, to a server that
 * is not stopping; else refused to the origin's .xfa (SERVER_BUSY and a reason), or
 * dropped when the origin is no peer. @return true when the request goes on. */
static bool fwd_model(const in_t *in, const char *app, const char *group, want_t *w)
{
    uint64_t origin = model_get(in->p + 8, 4);
    char subj[SUBJ_MAX];
    const pub_t *r;

    if (!is_node(origin) || origin == SELF) {
        *w = DROPPED;
        return false;
    }
    if (cluster_home(cx.c, app, group) == SELF && srv_of() != NULL)
        return true;
    expect(in, &(want_t){false, 0, 0, -1, true, 0});
    snprintf(subj, sizeof(subj), "cim.node.%" PRIu64 ".xfa", origin);
    r = want_pub(in, subj, FWD_ANS_HDR + 1, FWD_ANS_HDR + REASON_MAX - 1);
    for (size_t i = 12; i < FWD_ANS_HDR; i++)
        if (r->data[i] != 0)
            fail("%s: the refusal has a message id, a time or a group", suffix[in->h]);
    if (memcmp(r->data, in->p, 8) != 0 || model_get(r->data + 8, 4) != cim_Code_SERVER_BUSY ||
        memchr(r->data + FWD_ANS_HDR, 0, r->len - FWD_ANS_HDR) != NULL)
        fail("%s: the refusal's token, code or reason is wrong", suffix[in->h]);
    return false;
}

/* .xsnd: u64 token, u32 origin, u64 its session, u8 from_kind, u8 flags (1: the admin
 * API's SYSTEM message), u8 msg_type, app NUL from NUL to NUL client_msg_id NUL, the body:
 * into the store as the group's SEND. */
static void check_fwd_send(const in_t *in)
{
    char ids[4][KV_ID_MAX + 1];
    size_t off = FWD_HDR + 2;
    want_t w = {false, 0, STORE_REQ_SEND, -1, false, 0};
    bool system = (in->n > FWD_HDR && (in->p[FWD_HDR] & 1) != 0);
    store_send_t *r;

    if (in->n < FWD_HDR + 2 || in->n > FWD_SEND_MAX + XHOME_REC_MAX ||
        !read_ids(in, &off, 4, ids)) {
        expect(in, &DROPPED);
        return;
    }
    if (!fwd_model(in, ids[0], ids[2], &w)) {
        if (w.dropped)
            expect(in, &w);
        return;
    }
    if ((in->p[FWD_HDR] & ~1) != 0 ||
        (system ? in->p[FWD_HDR + 1] != cim_MsgType_SYSTEM
                : in->p[FWD_HDR + 1] < cim_MsgType_TEXT || in->p[FWD_HDR + 1] > cim_MsgType_CUSTOM))
        w = DROPPED;
    else if (cx.env & ENV_STORE_FULL)
        w = NONE; /* the store refused it: the origin times out */
    expect(in, &w);
    if (w.store == 0)
        return;
    r = (store_send_t *)fx.stq;
    if (r->xtoken != model_get(in->p, 8) || r->xorigin != model_get(in->p + 8, 4) ||
        r->sid != model_get(in->p + 12, 8) || r->from_kind != in->p[20] || r->system != system ||
        r->msg_type != in->p[FWD_HDR + 1] || r->conv_type != cim_ConvType_GROUP ||
        r->worker != STORE_NO_WORKER || strcmp(r->app, ids[0]) != 0 ||
        strcmp(r->from, ids[1]) != 0 || strcmp(r->to, ids[2]) != 0 ||
        strcmp(r->cmid, ids[3]) != 0 || r->xmsg != NULL)
        fail("xsnd: the SEND for the store is not the input's");
    want_bytes(in, "the body", r->body, r->body_len, in->p + off, in->n - off);
}

static bool group_change(uint64_t type)
{
    return type == FT_GROUP_JOIN || type == FT_GROUP_LEAVE || type == FT_GROUP_ADD ||
           type == FT_GROUP_KICK || type == FT_GROUP_DISMISS;
}

/* .xop: u64 token, u32 origin, u64 its session, u8 from_kind, u32 type, u8 open, u64
 * msg_id, app NUL user NUL target NUL, u32 count, then that many users NUL-terminated (at
 * most 1000): a group's change, to the cluster thread (MSG_XRUN_OP). */
static void check_fwd_op(const in_t *in)
{
    char ids[3][KV_ID_MAX + 1], (*users)[KV_ID_MAX + 1] = NULL;
    size_t off = FWD_HDR + 13;
    uint64_t count = 0;
    want_t w = {false, MSG_XRUN_OP, 0, -1, false, 0};
    store_op_t *op;

    if (in->n < FWD_HDR + 13 || in->n > FWD_OP_MAX + 1000 * (KV_ID_MAX + 1) ||
        !read_ids(in, &off, 3, ids) || in->n - off < 4 ||
        (count = model_get(in->p + off, 4)) > 1000) {
        expect(in, &DROPPED);
        return;
    }
    off += 4;
    users = mem_alloc((count + 1) * sizeof(*users));
    if (!read_ids(in, &off, (int)count, users) || off != in->n ||
        !group_change(model_get(in->p + FWD_HDR, 4)))
        w = DROPPED;
    else if (!fwd_model(in, ids[0], ids[2], &w) && !w.dropped)
        goto out; /* refused: checked */
    expect(in, &w);
    if (w.post == 0)
        goto out;
    op = fx.post->ptr;
    if (op->xtoken != model_get(in->p, 8) || op->xorigin != model_get(in->p + 8, 4) ||
        op->sid != model_get(in->p + 12, 8) || op->from_kind != in->p[20] ||
        op->type != model_get(in->p + FWD_HDR, 4) || op->open != (in->p[FWD_HDR + 4] != 0) ||
        op->msg_id != model_get(in->p + FWD_HDR + 5, 8) || op->worker != STORE_NO_WORKER ||
        strcmp(op->app, ids[0]) != 0 || strcmp(op->user, ids[1]) != 0 ||
        strcmp(op->target, ids[2]) != 0 || op->nusers != count)
        fail("xop: the change is not the input's");
    for (uint64_t i = 0; i < count; i++)
        if (strcmp(op->users[i], users[i]) != 0)
            fail("xop: user %" PRIu64 " is not the input's", i);
out:
    mem_free(users);
}

/* .xfa: the answer to a forwarded request: u64 token, u32 code, u64 msg_id, u64 time_ms,
 * u16 length of the encoded cim.Group and it, then the reason text. */
static void check_fwd_answer(const in_t *in)
{
    if (in->n < FWD_ANS_HDR || in->n > FWD_ANS_MAX ||
        FWD_ANS_HDR + model_get(in->p + 28, 2) > in->n) {
        expect(in, &DROPPED);
        return;
    }
    expect(in, &(want_t){false, MSG_XFWD_ANS, 0, -1, false, 0});
    want_bytes(in, "the answer", fx.post->data, fx.post->len, in->p, in->n);
    if (fx.post->data[in->n] != '\0')
        fail("xfa: the answer is not NUL-terminated");
}

/* .xrd: u64 up_to, then app NUL reader NUL peer NUL, the peer homed here: into the store
 * (STORE_OP_PEER_READ). */
static void check_read(const in_t *in)
{
    char ids[3][KV_ID_MAX + 1];
    size_t off = 8;
    store_op_t *op;

    if (in->n < 8 || in->n > QUERY_MAX + KV_ID_MAX + 1 || !read_ids(in, &off, 3, ids) ||
        off != in->n || cluster_home(cx.c, ids[0], ids[2]) != SELF || srv_of() == NULL) {
        expect(in, &DROPPED);
        return;
    }
    if (cx.env & ENV_STORE_FULL) {
        expect(in, &NONE); /* stopping */
        return;
    }
    expect(in, &(want_t){false, 0, STORE_REQ_OP, -1, false, 0});
    op = (store_op_t *)fx.stq;
    if (op->type != STORE_OP_PEER_READ || op->msg_id != model_get(in->p, 8) ||
        op->worker != STORE_NO_WORKER || op->hdr.done == NULL || strcmp(op->app, ids[0]) != 0 ||
        strcmp(op->user, ids[1]) != 0 || strcmp(op->target, ids[2]) != 0)
        fail("xrd: the read for the store is not the input's");
}

/* .xpr (a presence change of a user homed elsewhere), .xtg (a group's transient message):
 * app NUL name NUL, then at least one byte and at most @p max: to the presence or the
 * deliver callback. */
static void check_notice(const in_t *in, bool presence)
{
    char ids[2][KV_ID_MAX + 1];
    size_t off = 0, max = presence ? CLUSTER_EVENT_MAX : XHOME_REC_MAX;
    const call_t *k;

    if (in->n > 2 * (KV_ID_MAX + 1) + max || !read_ids(in, &off, 2, ids) || off == in->n ||
        (presence && cluster_home(cx.c, ids[0], ids[1]) == SELF)) {
        expect(in, &DROPPED);
        return;
    }
    expect(in, &(want_t){false, 0, 0, -1, false, has_cb()});
    if (!has_cb())
        return;
    k = want_call(in, 0, presence ? H_PRESENCE : H_TRANSIENT, ids[0], ids[1]);
    if (!presence && !k->flag)
        fail("xtg: a group's transient message delivered as a user's");
    want_bytes(in, presence ? "the event" : "the message", k->data, k->len, in->p + off,
               in->n - off);
}

/* .xrjq: u32 origin, then the copy's XHOME_MSG (for this home, from that origin, a
 * peer): to the cluster thread (MSG_XRJQ). */
static void check_rj_ask(const in_t *in)
{
    store_rejoin_t *q;
    xhome_msg_t x;

    if (in->n < 4 || xhome_parse(in->p + 4, in->n - 4, &x) < 0 || x.kind != XHOME_MSG ||
        x.home != SELF || x.origin != model_get(in->p, 4) || x.origin == SELF ||
        !is_node(x.origin)) {
        expect(in, &DROPPED);
        return;
    }
    expect(in, &(want_t){false, MSG_XRJQ, 0, -1, false, 0});
    q = fx.post->ptr;
    if (q->what != STORE_RJ_ASK || q->id != x.id || q->origin != x.origin)
        fail("xrjq: the question is not the input's");
    want_bytes(in, "the copy", q->copy, q->len, in->p + 4, in->n - 4);
}

/* .xrja: u64 msg id, u32 the home (a node of the cluster), u8 RJ_* flags, u64 its floor. */
static void check_rj_answer(const in_t *in)
{
    cl_msg_t *m;

    if (in->n != RJ_ANSWER_LEN || !is_node(model_get(in->p + 8, 4)) || in->p[12] > RJ_FLAGS) {
        expect(in, &DROPPED);
        return;
    }
    expect(in, &(want_t){false, MSG_XRJA, 0, -1, false, 0});
    m = fx.post;
    if (m->id != model_get(in->p, 8) || m->from != model_get(in->p + 8, 4) ||
        m->code != in->p[12] || m->seq != model_get(in->p + 13, 8))
        fail("xrja: the answer is not the input's");
}

/* .xonl: a question (xonline.h; its parser is fuzz_bus's) with a reply subject of the
 * cluster; answered there: which of the users are online here (in the router). */
static void check_onl_ask(const in_t *in)
{
    char user[KV_ID_MAX + 1];
    xonline_ask_t q;
    xonline_ans_t a;
    const pub_t *r;
    size_t pos = 0;

    if (in->reply == NULL || strncmp(in->reply, PREFIX, strlen(PREFIX)) != 0 ||
        xonline_ask_parse(in->p, in->n, &q) < 0) {
        expect(in, &DROPPED);
        return;
    }
    expect(in, &(want_t){false, 0, 0, -1, true, 0});
    r = want_pub(in, in->reply, XONLINE_ANS_HDR, XONLINE_ANS_MAX);
    if (xonline_ans_parse(r->data, r->len, &a) < 0 || a.token != q.token || a.node != SELF ||
        a.n != q.n)
        fail("xonl: the answer is not one to the question");
    for (uint32_t i = 0; xonline_ask_user(&q, &pos, user); i++)
        if (xonline_ans_get(&a, i) !=
            (srv_of() != NULL && strcmp(q.app, ONLINE_APP) == 0 && strcmp(user, ONLINE_USER) == 0))
            fail("xonl: user %u (%s) is said %s", i, user,
                 xonline_ans_get(&a, i) ? "online" : "offline");
}

/* .xona: an answer (xonline.h), or NATS's "no responders" (no data, status 503): not
 * malformed, nothing to take. */
static void check_onl_answer(const in_t *in)
{
    xonline_ans_t a;

    if (in->n == 0 && (cx.env & ENV_STATUS)) {
        expect(in, &NONE);
        return;
    }
    if (xonline_ans_parse(in->p, in->n, &a) < 0) {
        expect(in, &DROPPED);
        return;
    }
    expect(in, &(want_t){false, MSG_XONA, 0, -1, false, 0});
    want_bytes(in, "the answer", fx.post->data, fx.post->len, in->p, in->n);
}

/* .rin, .rout (relay.h): the RELAY_HDR-byte header, then the body, for the worker of its
 * session (at the edge: the one in the sid's top 16 bits; none of this process: nothing);
 * a frame that finds that mailbox full becomes a RELAY_OVERFLOW without its body. Worker 1's
 * mailbox is full. */
static void check_relay(const in_t *in, bool to_home)
{
    uint64_t sid;
    worker_msg_t *m;
    int wi;

    if (in->n < RELAY_HDR || in->p[0] < RELAY_LOGIN || in->p[0] > RELAY_CLOSED) {
        expect(in, &NONE);
        return;
    }
    sid = model_get(in->p + 8, 8);
    if (!to_home && (sid >> 48) >= 2) {
        expect(in, &NONE);
        return;
    }
    wi = to_home ? (fx.nwq[1] == 1) : (int)(sid >> 48); /* at the home: a hash */
    expect(in, &(want_t){false, 0, 0, wi, false, 0});
    m = fx.wq[wi];
    if (m->kind != WORKER_MSG_RELAY || m->u.relay.to_home != to_home ||
        m->u.relay.edge != model_get(in->p + 4, 4) || m->u.relay.sid != sid ||
        m->u.relay.type != model_get(in->p + 16, 4) || m->u.relay.home != model_get(in->p + 20, 4))
        fail("%s: the worker's message is not the header's", suffix[in->h]);
    if (wi == 1 && in->p[0] == RELAY_FRAME) {
        if (m->u.relay.kind != RELAY_OVERFLOW || m->u.relay.data != NULL || m->u.relay.len != 0)
            fail("%s: a frame into a full mailbox is not a RELAY_OVERFLOW", suffix[in->h]);
        return;
    }
    if (m->u.relay.kind != in->p[0])
        fail("%s: kind %u, not the input's %u", suffix[in->h], m->u.relay.kind, in->p[0]);
    want_bytes(in, "the body", m->u.relay.data, m->u.relay.len, in->p + RELAY_HDR,
               in->n - RELAY_HDR);
}

/* ---- one input --------------------------------------------------------------------------- */

/* Call handler in->h with @p msg (its data is in->p's copy). */
static void run(const in_t *in, natsMsg *msg)
{
    cluster_t *c = cx.c;

    switch (in->h) {
    case H_CHECK:
        cluster__xh_on_check(c, NULL, msg);
        break;
    case H_ANSWER:
        cluster__xh_on_answer(c, msg);
        break;
    case H_QUERY:
        cluster__xh_on_query(c, NULL, msg);
        break;
    case H_APPLIED:
        cluster__xh_on_applied(c, msg);
        break;
    case H_FWD_SEND:
        cluster__xh_on_fwd_send(c, NULL, msg);
        break;
    case H_FWD_OP:
        cluster__xh_on_fwd_op(c, NULL, msg);
        break;
    case H_FWD_ANSWER:
        cluster__xh_on_fwd_answer(c, msg);
        break;
    case H_READ:
        cluster__xh_on_read(c, msg);
        break;
    case H_PRESENCE:
        cluster__xh_on_presence(c, msg);
        break;
    case H_TRANSIENT:
        cluster__xh_on_group_transient(c, msg);
        break;
    case H_RJ_ASK:
        cluster__rj_on_ask(c, msg);
        break;
    case H_RJ_ANSWER:
        cluster__rj_on_answer(c, msg);
        break;
    case H_ONL_ASK:
        cluster__onl_on_ask(c, NULL, msg);
        break;
    case H_ONL_ANSWER:
        cluster__onl_on_answer(c, msg);
        break;
    default: /* the relay is handed the bytes, not a natsMsg (cluster.c's on_direct_msg) */
        relay_on_bus(&cx.srv, in->h == H_RIN, in->p, in->n);
        break;
    }
}

static void check(const in_t *in)
{
    switch (in->h) {
    case H_CHECK:
        check_check(in);
        break;
    case H_ANSWER:
        check_answer(in);
        break;
    case H_QUERY:
        check_query(in);
        break;
    case H_APPLIED:
        check_applied(in);
        break;
    case H_FWD_SEND:
        check_fwd_send(in);
        break;
    case H_FWD_OP:
        check_fwd_op(in);
        break;
    case H_FWD_ANSWER:
        check_fwd_answer(in);
        break;
    case H_READ:
        check_read(in);
        break;
    case H_PRESENCE:
        check_notice(in, true);
        break;
    case H_TRANSIENT:
        check_notice(in, false);
        break;
    case H_RJ_ASK:
        check_rj_ask(in);
        break;
    case H_RJ_ANSWER:
        check_rj_answer(in);
        break;
    case H_ONL_ASK:
        check_onl_ask(in);
        break;
    case H_ONL_ANSWER:
        check_onl_answer(in);
        break;
    default:
        check_relay(in, in->h == H_RIN);
        break;
    }
}

int fuzz_busmsg_input(const uint8_t *data, size_t size)
{
    char subj[SUBJ_MAX], reply[REPLY_MAX + 1];
    natsMsg *msg = NULL;
    uint64_t dropped;
    size_t rlen;
    in_t in;

    if (size < 3)
        return 0;
    if (!cx.ready)
        build_context();
    in.h = data[0] % HANDLERS;
    rlen = data[2] < size - 3 ? data[2] : size - 3;
    memcpy(reply, data + 3, rlen);
    reply[rlen] = '\0';
    in.reply = reply[0] != '\0' ? reply : NULL; /* NATS has no empty subject */
    in.p = data + 3 + rlen;
    in.n = size - 3 - rlen;
    snprintf(subj, sizeof(subj), "%s%u.%s", PREFIX, SELF, suffix[in.h]);
    set_env(data[1]);
    if (natsMsg_Create(&msg, subj, in.reply, (const char *)in.p, (int)in.n) != NATS_OK ||
        ((cx.env & ENV_STATUS) && natsMsgHeader_Set(msg, "Status", "503") != NATS_OK))
        fail("natsMsg_Create or natsMsgHeader_Set");
    dropped = atomic_load(&cx.c->x_dropped);
    armed = true;
    run(&in, msg);
    armed = false;
    natsMsg_Destroy(msg); /* borrowed by the handlers, as on_direct_msg lends it */
    collect(dropped);
    if (cx.debug)
        fprintf(stderr,
                "fuzz_busmsg: %s, %zu bytes, env 0x%02x: dropped %" PRIu64 ", cluster message "
                "%d, store request %d, worker messages %zu+%zu, publish %s, callbacks %zu\n",
                suffix[in.h], in.n, cx.env, fx.dropped, fx.post != NULL ? fx.post->kind : 0,
                fx.stq != NULL ? fx.stq->kind : 0, fx.nwq[0], fx.nwq[1],
                fx.npubs > 0 ? fx.pubs[0].subj : "none", fx.ncalls);
    check(&in);
    release();
    return 0;
}

#ifdef CIM_FUZZ_TARGET
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_busmsg_input(data, size);
}
#endif
