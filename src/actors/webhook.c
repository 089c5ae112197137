/* webhook: the webhook thread — settings, the emit filter, the events' JSON, and libcurl's
 * multi interface on a uv loop (webhook.h). */
#include "actors/webhook.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "actors/message.h"
#include "cim.pb.h"
#include "core/chan.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/mbox.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"
#include "core/version.h"

#define DRAIN_BUDGET 1024 /* mailbox messages taken per wake-up before yielding */
#define APP_BUCKETS  256  /* hash buckets of the apps table (chained) */

enum { MSG_MESSAGE = 1, MSG_PRESENCE, MSG_STOP };

/* What a producer hands over: small, fixed, no JSON. */
typedef struct hook_msg {
    mbox_node_t node;
    int kind;    /* MSG_* */
    bool online; /* MSG_PRESENCE */
    uint64_t time_ms;
    blob_t *msg; /* MSG_MESSAGE: the stored record (a reference) */
    char app[KV_ID_MAX + 1];
    char user[KV_ID_MAX + 1]; /* the recipient, or the user who came online / went offline */
} hook_msg_t;

typedef struct hook_app hook_app_t;

/* A node of an intrusive doubly-linked list (the live events, the open sockets). */
typedef struct link {
    struct link *prev, *next;
} link_t;

static void link_push(link_t **head, link_t *l)
{
    l->prev = NULL;
    l->next = *head;
    if (*head != NULL)
        (*head)->prev = l;
    *head = l;
}

static void link_drop(link_t **head, link_t *l)
{
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        *head = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
}

/* One event on this thread, from its JSON to its delivery or drop. */
typedef struct hook_ev {
    struct hook_ev *next; /* in its app's ready list */
    link_t all;           /* in wh->all: every live event (shutdown) */
    webhook_t *wh;
    hook_app_t *app;
    CURL *easy;                 /* during an attempt */
    struct curl_slist *headers; /* during an attempt */
    uv_timer_t retry;           /* between attempts */
    bool timer_open;            /* retry was initialised (uv_close before freeing) */
    bool waiting;               /* the retry timer runs */
    uint32_t event;             /* APPCONF_EV_* */
    uint32_t attempts;
    char id[WEBHOOK_ID_LEN + 1];
    char sig[WEBHOOK_SIG_LEN + 1];
    size_t len;
    char body[]; /* the JSON, exactly the signed bytes */
} hook_ev_t;

/* An app that has (or had) a webhook: created by a refresh, kept until the end. */
struct hook_app {
    hook_app_t *next; /* hash chain */
    char name[KV_ID_MAX + 1];
    uint8_t secret[32];
    appconf_t conf;
    uint32_t in_flight;
    hook_ev_t *head, *tail; /* ready to send, oldest first */
};

/* A socket libcurl asked us to watch. */
typedef struct hook_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    webhook_t *wh;
    link_t link; /* in wh->socks: the open ones (closed at the end) */
} hook_sock_t;

struct webhook {
    server_t *srv;
    uint32_t max_events; /* conf->webhook_queue */
    uint64_t max_bytes;  /* conf->webhook_queue_mb in bytes */
    /* published for producers */
    _Atomic uint32_t any; /* OR of every slot */
    _Atomic uint8_t want[WEBHOOK_FILTER_SLOTS];
    /* counters (webhook.h) */
    _Atomic uint64_t queued, in_flight, sent, delivered, failed, dropped_full, dropped_retries;
    /* the thread */
    uv_thread_t thread;
    uv_loop_t loop;
    mbox_t box;
    uv_timer_t refresh, curl_timer, grace;
    bool started, loop_open, stopping, finished;
    CURLM *multi;
    /* webhook thread only (and webhook_start before the thread exists) */
    hook_app_t *apps[APP_BUCKETS];
    link_t *all;         /* every live event (hook_ev_t.all) */
    link_t *socks;       /* every open poll handle (hook_sock_t.link) */
    uint64_t held_bytes; /* JSON and event records held */
    uint64_t abandoned;  /* events given up at shutdown */
    uint64_t rng;        /* xorshift state: retry jitter */
};

/* ---- the filter and the apps table ------------------------------------------------------ */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

static size_t slot_of(const char *app)
{
    return (size_t)(name_hash(app) >> 17) & (WEBHOOK_FILTER_SLOTS - 1);
}

bool webhook_wants(const webhook_t *wh, const char *app, uint32_t events)
{
    if (wh == NULL || (atomic_load_explicit(&wh->any, memory_order_relaxed) & events) == 0)
        return false;
    return (atomic_load_explicit(&wh->want[slot_of(app)], memory_order_relaxed) & events) != 0;
}

static hook_app_t *app_find(webhook_t *wh, const char *name)
{
    hook_app_t *a = wh->apps[name_hash(name) % APP_BUCKETS];
    while (a != NULL && strcmp(a->name, name) != 0)
        a = a->next;
    return a;
}

typedef struct refresh_ctx {
    webhook_t *wh;
    kv_txn_t *txn;
    uint8_t want[WEBHOOK_FILTER_SLOTS];
    int rc;
} refresh_ctx_t;

static int refresh_app(void *arg, const char *name, uint64_t created_ms)
{
    refresh_ctx_t *r = arg;
    hook_app_t *a = app_find(r->wh, name);
    const uint8_t *val;
    size_t len;
    appconf_t conf;
    uint8_t secret[32];
    int rc;

    (void)created_ms;
    if ((rc = kv_app_settings_get(r->txn, name, &val, &len)) < 0)
        return rc;
    if (len == 0 && a == NULL)
        return 0; /* the common case: no settings, never had any */
    appconf_decode(val, len, &conf);
    if (!appconf_has_webhook(&conf) && a == NULL)
        return 0;
    if ((rc = kv_app_get(r->txn, name, secret)) < 0)
        return rc;
    if (a == NULL) {
        size_t b = name_hash(name) % APP_BUCKETS;
        a = mem_calloc(sizeof(*a));
        snprintf(a->name, sizeof(a->name), "%s", name);
        a->next = r->wh->apps[b];
        r->wh->apps[b] = a;
    }
    if (strcmp(a->conf.webhook_url, conf.webhook_url) != 0 ||
        a->conf.webhook_events != conf.webhook_events)
        LOG_INFO("webhook: app %s: %s", name,
                 appconf_has_webhook(&conf) ? "webhook settings changed" : "no webhook");
    memcpy(a->secret, secret, sizeof(secret));
    memset(secret, 0, sizeof(secret));
    a->conf = conf;
    if (appconf_has_webhook(&conf))
        r->want[slot_of(name)] |= (uint8_t)conf.webhook_events;
    return 0;
}

/* Read every app's settings and publish the filter. A failed read keeps the last ones. */
static int refresh(webhook_t *wh)
{
    refresh_ctx_t r;
    uint32_t any = 0;
    int rc;

    memset(&r, 0, sizeof(r));
    r.wh = wh;
    if ((rc = kv_begin(wh->srv->kv, KV_READ, &r.txn)) < 0)
        goto out;
    rc = kv_app_each(r.txn, refresh_app, &r);
    kv_abort(r.txn);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < WEBHOOK_FILTER_SLOTS; i++) {
        any |= r.want[i];
        atomic_store_explicit(&wh->want[i], r.want[i], memory_order_relaxed);
    }
    atomic_store_explicit(&wh->any, any, memory_order_relaxed);
out:
    if (rc < 0)
        LOG_RL(LOG_LVL_WARN, "webhook: cannot read the apps' settings: %s", rc_str(rc));
    return rc;
}

static void on_refresh(uv_timer_t *t)
{
    (void)refresh(t->data);
}

/* ---- events: made, held, finished ------------------------------------------------------ */

static void hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int webhook_sign(const uint8_t secret[32], const void *body, size_t len,
                 char out[WEBHOOK_SIG_LEN + 1])
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;

    if (HMAC(EVP_sha256(), secret, 32, body, len, mac, &maclen) == NULL || maclen != 32)
        return RC_ECRYPTO;
    memcpy(out, "sha256=", 7);
    hex(mac, 32, out + 7);
    return 0;
}

static size_t ev_cost(const hook_ev_t *ev)
{
    return sizeof(*ev) + ev->len;
}

/* A closed handle whose data is the heap object that embeds it (an event, a socket). */
static void on_closed_free(uv_handle_t *h)
{
    mem_free(h->data);
}

/* The event is done (delivered, dropped or abandoned): forget it. */
static void ev_finish(hook_ev_t *ev)
{
    webhook_t *wh = ev->wh;

    link_drop(&wh->all, &ev->all);
    wh->held_bytes -= ev_cost(ev);
    atomic_fetch_sub_explicit(&wh->queued, 1, memory_order_relaxed);
    if (ev->timer_open) {
        uv_close((uv_handle_t *)&ev->retry, on_closed_free);
        return;
    }
    mem_free(ev);
}

static void drop_full(webhook_t *wh, const char *app)
{
    atomic_fetch_add_explicit(&wh->dropped_full, 1, memory_order_relaxed);
    LOG_RL(LOG_LVL_WARN,
           "webhook: app %s: queue full (webhook_queue %u / webhook_queue_mb %u): "
           "event dropped",
           app, wh->srv->conf->webhook_queue, wh->srv->conf->webhook_queue_mb);
}

static void pump(hook_app_t *a, webhook_t *wh);

/* Take the JSON (owned by jansson's caller here) into a new event of app @p a. */
static void ev_add(webhook_t *wh, hook_app_t *a, uint32_t event, const char *id, json_t *root)
{
    size_t len = json_dumpb(root, NULL, 0, JSON_COMPACT);
    hook_ev_t *ev;

    if (len == 0 || wh->held_bytes + sizeof(*ev) + len > wh->max_bytes ||
        (ev = mem_try_alloc(sizeof(*ev) + len)) == NULL) {
        if (len == 0)
            LOG_RL(LOG_LVL_ERROR, "webhook: app %s: cannot encode an event", a->name);
        else
            drop_full(wh, a->name);
        atomic_fetch_sub_explicit(&wh->queued, 1, memory_order_relaxed);
        return;
    }
    memset(ev, 0, sizeof(*ev));
    ev->wh = wh;
    ev->app = a;
    ev->event = event;
    ev->len = json_dumpb(root, ev->body, len, JSON_COMPACT);
    memcpy(ev->id, id, sizeof(ev->id));
    if (webhook_sign(a->secret, ev->body, ev->len, ev->sig) < 0) {
        LOG_RL(LOG_LVL_ERROR, "webhook: app %s: cannot sign an event", a->name);
        mem_free(ev);
        atomic_fetch_sub_explicit(&wh->queued, 1, memory_order_relaxed);
        return;
    }
    wh->held_bytes += ev_cost(ev);
    link_push(&wh->all, &ev->all);
    if (a->tail != NULL)
        a->tail->next = ev;
    else
        a->head = ev;
    a->tail = ev;
    pump(a, wh);
}

/* The message fields of a message event's data. */
static json_t *message_data(const hook_app_t *a, const hook_msg_t *m)
{
    cim_Message msg;
    const uint8_t *body = NULL;
    size_t blen = 0;
    char id[24];
    json_t *d, *conv, *text;
    bool group;

    if (!message_decode(m->msg->data, m->msg->len, &msg, &body, &blen))
        return NULL;
    group = msg.conv_type == cim_ConvType_GROUP;
    snprintf(id, sizeof(id), "%llu", (unsigned long long)msg.msg_id);
    d = json_object();
    json_object_set_new(d, "msg_id", json_string(id));
    json_object_set_new(d, "from", json_string(msg.from));
    json_object_set_new(d, group ? "group" : "to", json_string(msg.to));
    json_object_set_new(d, "recipient", json_string(m->user));
    /* The conversation as the recipient sees it (PROTOCOL.md Conversation). */
    conv = json_object();
    json_object_set_new(conv, "type", json_string(cim_ConvType_name(msg.conv_type)));
    json_object_set_new(conv, "peer", json_string(group ? msg.to : msg.from));
    json_object_set_new(d, "conversation", conv);
    json_object_set_new(d, "type", json_string(cim_MsgType_name(msg.msg_type)));
    json_object_set_new(d, "time_ms", json_integer((json_int_t)msg.time_ms));
    if (a->conf.webhook_bodies) {
        /* jansson refuses bytes that are not UTF-8: then base64 */
        if ((text = json_stringn((const char *)(body ? body : (const uint8_t *)""), blen)) !=
            NULL) {
            json_object_set_new(d, "body", text);
        } else {
            char *b64 = mem_alloc(4 * ((blen + 2) / 3) + 1);
            (void)EVP_EncodeBlock((unsigned char *)b64, body, (int)blen);
            json_object_set_new(d, "body_b64", json_string(b64));
            mem_free(b64);
        }
    }
    return d;
}

/* Make the event a producer queued, if its app still wants it. @p txn: this drain's read
 * transaction, begun on first need (the bot check). */
static void take(webhook_t *wh, hook_msg_t *m, kv_txn_t **txn)
{
    hook_app_t *a = app_find(wh, m->app);
    uint32_t event, flags = 0;
    uint8_t rnd[WEBHOOK_ID_LEN / 2];
    char id[WEBHOOK_ID_LEN + 1];
    json_t *root, *data;

    if (a == NULL || !appconf_has_webhook(&a->conf) || wh->stopping)
        goto skip;
    if (m->kind == MSG_MESSAGE) {
        if (*txn == NULL && kv_begin(wh->srv->kv, KV_READ, txn) < 0)
            *txn = NULL;
        if (*txn != NULL)
            (void)kv_user_flags(*txn, m->app, m->user, &flags); /* unknown: not a bot */
        event = flags & KV_USER_BOT ? APPCONF_EV_MESSAGE_TO_BOT : APPCONF_EV_MESSAGE_OFFLINE;
    } else {
        event = m->online ? APPCONF_EV_USER_ONLINE : APPCONF_EV_USER_OFFLINE;
    }
    if ((a->conf.webhook_events & event) == 0)
        goto skip; /* not wanted, or a filter slot shared with an app that wants it */
    if (m->kind == MSG_MESSAGE) {
        if ((data = message_data(a, m)) == NULL) {
            LOG_RL(LOG_LVL_ERROR, "webhook: app %s: a malformed message record", m->app);
            goto skip;
        }
    } else {
        data = json_object();
        json_object_set_new(data, "user", json_string(m->user));
    }
    if (chan_random(rnd, sizeof(rnd)) < 0) {
        json_decref(data);
        goto skip;
    }
    hex(rnd, sizeof(rnd), id);
    root = json_object();
    json_object_set_new(root, "id", json_string(id));
    json_object_set_new(root, "event", json_string(appconf_event_name(event)));
    json_object_set_new(root, "app", json_string(m->app));
    json_object_set_new(root, "time_ms", json_integer((json_int_t)m->time_ms));
    json_object_set_new(root, "data", data);
    ev_add(wh, a, event, id, root);
    json_decref(root);
    return;
skip:
    atomic_fetch_sub_explicit(&wh->queued, 1, memory_order_relaxed);
}

/* ---- requests ------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n; /* the answer's body is not read */
}

static void schedule_retry(hook_ev_t *ev);

static int start_request(webhook_t *wh, hook_ev_t *ev)
{
    const conf_t *c = wh->srv->conf;
    char line[128];
    CURL *e;
    CURLMcode mrc;

    if ((e = curl_easy_init()) == NULL)
        return RC_EINVAL;
    ev->headers = curl_slist_append(NULL, "Content-Type: application/json");
    snprintf(line, sizeof(line), "X-Cim-Signature: %s", ev->sig);
    ev->headers = curl_slist_append(ev->headers, line);
    snprintf(line, sizeof(line), "X-Cim-Event: %s", appconf_event_name(ev->event));
    ev->headers = curl_slist_append(ev->headers, line);
    snprintf(line, sizeof(line), "X-Cim-Delivery: %s", ev->id);
    ev->headers = curl_slist_append(ev->headers, line);
    ev->headers = curl_slist_append(ev->headers, "Expect:"); /* no 100-continue round trip */
    if (ev->headers == NULL) {
        curl_easy_cleanup(e);
        return RC_EINVAL;
    }
    snprintf(line, sizeof(line), "cimd/%s", cim_version);
    (void)curl_easy_setopt(e, CURLOPT_URL, ev->app->conf.webhook_url);
    (void)curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    (void)curl_easy_setopt(e, CURLOPT_HTTPHEADER, ev->headers);
    (void)curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)ev->len);
    (void)curl_easy_setopt(e, CURLOPT_POSTFIELDS, &ev->body[0]); /* not copied: ev outlives e */
    (void)curl_easy_setopt(e, CURLOPT_USERAGENT, line);
    (void)curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->webhook_timeout_ms);
    (void)curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    (void)curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    (void)curl_easy_setopt(e, CURLOPT_PRIVATE, ev);
    if ((mrc = curl_multi_add_handle(wh->multi, e)) != CURLM_OK) {
        LOG_RL(LOG_LVL_ERROR, "webhook: cannot start a request: %s", curl_multi_strerror(mrc));
        curl_easy_cleanup(e);
        curl_slist_free_all(ev->headers);
        ev->headers = NULL;
        return RC_EINVAL;
    }
    ev->easy = e;
    ev->attempts++;
    ev->app->in_flight++;
    atomic_fetch_add_explicit(&wh->in_flight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&wh->sent, 1, memory_order_relaxed);
    return 0;
}

/* Send what app @p a has ready, up to its share of requests. */
static void pump(hook_app_t *a, webhook_t *wh)
{
    while (a->head != NULL && a->in_flight < WEBHOOK_APP_INFLIGHT && !wh->finished) {
        hook_ev_t *ev = a->head;
        a->head = ev->next;
        if (a->head == NULL)
            a->tail = NULL;
        ev->next = NULL;
        if (!appconf_has_webhook(&a->conf) || (a->conf.webhook_events & ev->event) == 0) {
            ev_finish(ev); /* the app turned it off meanwhile */
            continue;
        }
        if (start_request(wh, ev) < 0) {
            atomic_fetch_add_explicit(&wh->failed, 1, memory_order_relaxed);
            ev->attempts++;
            schedule_retry(ev);
        }
    }
}

static void on_retry(uv_timer_t *t)
{
    hook_ev_t *ev = t->data;
    hook_app_t *a = ev->app;

    ev->waiting = false;
    if (a->tail != NULL)
        a->tail->next = ev;
    else
        a->head = ev;
    a->tail = ev;
    pump(a, ev->wh);
}

/* After a failed attempt: try again later, or give up. */
static void schedule_retry(hook_ev_t *ev)
{
    webhook_t *wh = ev->wh;
    uint64_t delay, r;

    if (ev->attempts >= wh->srv->conf->webhook_retries) {
        atomic_fetch_add_explicit(&wh->dropped_retries, 1, memory_order_relaxed);
        LOG_RL(LOG_LVL_WARN, "webhook: app %s: event %s dropped after %u attempts", ev->app->name,
               ev->id, ev->attempts);
        ev_finish(ev);
        return;
    }
    if (wh->stopping) {
        wh->abandoned++; /* no time left to wait for a retry */
        ev_finish(ev);
        return;
    }
    delay = (uint64_t)WEBHOOK_BACKOFF_MS << (ev->attempts - 1 < 16 ? ev->attempts - 1 : 16);
    if (delay > WEBHOOK_BACKOFF_MAX_MS)
        delay = WEBHOOK_BACKOFF_MAX_MS;
    /* jitter: anywhere in the upper half, so retries of a burst spread out */
    wh->rng ^= wh->rng << 13;
    wh->rng ^= wh->rng >> 7;
    wh->rng ^= wh->rng << 17;
    r = wh->rng % (delay / 2 + 1);
    if (!ev->timer_open) {
        uv_timer_init(&wh->loop, &ev->retry);
        ev->retry.data = ev;
        ev->timer_open = true;
    }
    ev->waiting = true;
    uv_timer_start(&ev->retry, on_retry, delay - delay / 2 + r, 0);
}

/* A request ended: delivered, or an attempt failed. */
static void request_done(webhook_t *wh, CURL *e, CURLcode res)
{
    hook_ev_t *ev = NULL;
    long status = 0;
    hook_app_t *a;

    (void)curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&ev);
    (void)curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    (void)curl_multi_remove_handle(wh->multi, e);
    curl_easy_cleanup(e);
    curl_slist_free_all(ev->headers);
    ev->headers = NULL;
    ev->easy = NULL;
    a = ev->app;
    a->in_flight--;
    atomic_fetch_sub_explicit(&wh->in_flight, 1, memory_order_relaxed);
    if (res == CURLE_OK && status >= 200 && status < 300) {
        atomic_fetch_add_explicit(&wh->delivered, 1, memory_order_relaxed);
        ev_finish(ev);
    } else {
        atomic_fetch_add_explicit(&wh->failed, 1, memory_order_relaxed);
        if (res != CURLE_OK)
            LOG_RL(LOG_LVL_WARN, "webhook: app %s: event %s attempt %u failed: %s", a->name, ev->id,
                   ev->attempts, curl_easy_strerror(res));
        else
            LOG_RL(LOG_LVL_WARN, "webhook: app %s: event %s attempt %u answered %ld", a->name,
                   ev->id, ev->attempts, status);
        schedule_retry(ev);
    }
    pump(a, wh);
}

static void check_done(webhook_t *wh)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(wh->multi, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE)
            request_done(wh, msg->easy_handle, msg->data.result);
}

static void maybe_finish(webhook_t *wh);

/* ---- libcurl on the loop -------------------------------------------------------------- */

static void on_poll(uv_poll_t *p, int status, int events)
{
    hook_sock_t *s = p->data;
    webhook_t *wh = s->wh;
    int running, flags = 0;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    (void)curl_multi_socket_action(wh->multi, s->fd, flags, &running);
    check_done(wh);
    maybe_finish(wh);
}

static void sock_close(hook_sock_t *s)
{
    link_drop(&s->wh->socks, &s->link);
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_closed_free);
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    webhook_t *wh = userp;
    hook_sock_t *s = socketp;
    int events = 0;

    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            (void)curl_multi_assign(wh->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL) {
        s = mem_calloc(sizeof(*s));
        if (uv_poll_init_socket(&wh->loop, &s->poll, fd) < 0) {
            mem_free(s);
            return -1; /* libcurl fails that transfer */
        }
        s->fd = fd;
        s->wh = wh;
        s->poll.data = s;
        link_push(&wh->socks, &s->link);
        (void)curl_multi_assign(wh->multi, fd, s);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

static void on_curl_timer(uv_timer_t *t)
{
    webhook_t *wh = t->data;
    int running;
    (void)curl_multi_socket_action(wh->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(wh);
    maybe_finish(wh);
}

static int on_curl_timeout(CURLM *multi, long timeout_ms, void *userp)
{
    webhook_t *wh = userp;
    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&wh->curl_timer);
    else
        uv_timer_start(&wh->curl_timer, on_curl_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- the mailbox, stop ---------------------------------------------------------------- */

static void msg_free(hook_msg_t *m)
{
    blob_unref(m->msg);
    mem_free(m);
}

/* Abandon every event still held, close every handle: the loop then ends. */
static void finish(webhook_t *wh)
{
    webhook_stats_t st;

    if (wh->finished)
        return;
    wh->finished = true;
    while (wh->all != NULL) {
        hook_ev_t *ev = container_of(wh->all, hook_ev_t, all);
        if (ev->easy != NULL) {
            (void)curl_multi_remove_handle(wh->multi, ev->easy);
            curl_easy_cleanup(ev->easy);
            curl_slist_free_all(ev->headers);
            ev->easy = NULL;
            ev->app->in_flight--;
            atomic_fetch_sub_explicit(&wh->in_flight, 1, memory_order_relaxed);
        }
        wh->abandoned++;
        ev_finish(ev);
    }
    for (size_t b = 0; b < APP_BUCKETS; b++)
        for (hook_app_t *a = wh->apps[b]; a != NULL; a = a->next)
            a->head = a->tail = NULL;
    (void)curl_multi_cleanup(wh->multi); /* may still ask to remove sockets */
    wh->multi = NULL;
    while (wh->socks != NULL)
        sock_close(container_of(wh->socks, hook_sock_t, link));
    uv_close((uv_handle_t *)&wh->curl_timer, NULL);
    uv_close((uv_handle_t *)&wh->refresh, NULL);
    uv_close((uv_handle_t *)&wh->grace, NULL);
    webhook_stats(wh, &st);
    LOG_INFO("webhook: stopped: %llu requests, %llu events delivered, %llu attempts failed, "
             "%llu dropped (queue full), %llu dropped (retries), %llu abandoned",
             (unsigned long long)st.sent_total, (unsigned long long)st.delivered_total,
             (unsigned long long)st.failed_attempts_total,
             (unsigned long long)st.dropped_queue_full_total,
             (unsigned long long)st.dropped_retries_total, (unsigned long long)wh->abandoned);
}

/* While stopping: done as soon as nothing is left to deliver. */
static void maybe_finish(webhook_t *wh)
{
    if (wh->stopping && !wh->finished && wh->all == NULL)
        finish(wh);
}

static void on_grace(uv_timer_t *t)
{
    finish(t->data);
}

static void begin_stop(webhook_t *wh)
{
    wh->stopping = true;
    mbox_close(&wh->box, NULL);
    uv_timer_stop(&wh->refresh);
    /* Waiting for a retry: abandoned now; in flight or ready: the grace period. */
    for (link_t *l = wh->all, *next; l != NULL; l = next) {
        hook_ev_t *ev = container_of(l, hook_ev_t, all);
        next = l->next;
        if (ev->waiting) {
            uv_timer_stop(&ev->retry);
            wh->abandoned++;
            ev_finish(ev);
        }
    }
    uv_timer_start(&wh->grace, on_grace, WEBHOOK_STOP_GRACE_MS, 0);
    maybe_finish(wh);
}

static void on_wake(mbox_t *box)
{
    webhook_t *wh = box->data;
    kv_txn_t *txn = NULL;
    mbox_node_t *node;
    size_t n = 0;

    while (n++ < DRAIN_BUDGET && (node = mbox_pop(box)) != NULL) {
        hook_msg_t *m = container_of(node, hook_msg_t, node);
        if (m->kind == MSG_STOP)
            begin_stop(wh);
        else
            take(wh, m, &txn);
        msg_free(m);
    }
    kv_abort(txn);
    if (n > DRAIN_BUDGET && !wh->stopping)
        mbox_rewake(box);
}

static void run(void *arg)
{
    webhook_t *wh = arg;
    (void)pthread_setname_np(pthread_self(), "cimd-webhook"); /* best effort: for top/perf */
    log_set_thread("webhook");
    uv_run(&wh->loop, UV_RUN_DEFAULT);
}

/* ---- lifecycle, producers, counters ------------------------------------------------- */

webhook_t *webhook_new(server_t *srv)
{
    webhook_t *wh = mem_calloc(sizeof(*wh));
    wh->srv = srv;
    wh->max_events = srv->conf->webhook_queue;
    wh->max_bytes = (uint64_t)srv->conf->webhook_queue_mb << 20;
    wh->rng = uv_hrtime() | 1;
    (void)curl_global_init(CURL_GLOBAL_DEFAULT); /* checked by curl_multi_init below */
    return wh;
}

int webhook_start(webhook_t *wh)
{
    int rc;

    if ((rc = refresh(wh)) < 0)
        return rc;
    if ((wh->multi = curl_multi_init()) == NULL) {
        LOG_ERROR("webhook: cannot start libcurl");
        return RC_EINVAL;
    }
    (void)curl_multi_setopt(wh->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    (void)curl_multi_setopt(wh->multi, CURLMOPT_SOCKETDATA, wh);
    (void)curl_multi_setopt(wh->multi, CURLMOPT_TIMERFUNCTION, on_curl_timeout);
    (void)curl_multi_setopt(wh->multi, CURLMOPT_TIMERDATA, wh);
    if ((rc = uv_loop_init(&wh->loop)) < 0)
        goto fail;
    wh->loop_open = true;
    if ((rc = mbox_init(&wh->box, &wh->loop, wh->max_events, on_wake)) < 0)
        goto fail;
    wh->box.data = wh;
    uv_timer_init(&wh->loop, &wh->refresh);
    uv_timer_init(&wh->loop, &wh->curl_timer);
    uv_timer_init(&wh->loop, &wh->grace);
    wh->refresh.data = wh->curl_timer.data = wh->grace.data = wh;
    uv_timer_start(&wh->refresh, on_refresh, WEBHOOK_REFRESH_MS, WEBHOOK_REFRESH_MS);
    if ((rc = uv_thread_create(&wh->thread, run, wh)) < 0) {
        finish(wh);
        mbox_close(&wh->box, NULL);
        uv_run(&wh->loop, UV_RUN_DEFAULT);
        goto fail;
    }
    wh->started = true;
    return 0;
fail:
    LOG_ERROR("webhook: cannot start: %s", rc_str(rc));
    if (wh->multi != NULL)
        (void)curl_multi_cleanup(wh->multi);
    wh->multi = NULL;
    if (wh->loop_open && uv_loop_close(&wh->loop) == 0)
        wh->loop_open = false;
    return rc;
}

void webhook_stop(webhook_t *wh)
{
    hook_msg_t *m;
    mbox_node_t *node;

    if (wh == NULL || !wh->started)
        return;
    m = mem_calloc(sizeof(*m));
    m->kind = MSG_STOP;
    if (mbox_send_force(&wh->box, &m->node) < 0)
        mem_free(m);
    uv_thread_join(&wh->thread);
    wh->started = false;
    /* Sends that raced with the close: the producers are stopped, this thread owns the
     * box now (the join ordered everything before it). */
    while ((node = mbox_pop(&wh->box)) != NULL) {
        msg_free(container_of(node, hook_msg_t, node));
        atomic_fetch_sub_explicit(&wh->queued, 1, memory_order_relaxed);
    }
    if (uv_loop_close(&wh->loop) != 0)
        LOG_ERROR("webhook: loop did not close cleanly");
    wh->loop_open = false;
}

void webhook_free(webhook_t *wh)
{
    if (wh == NULL)
        return;
    for (size_t b = 0; b < APP_BUCKETS; b++) {
        hook_app_t *a = wh->apps[b], *next;
        for (; a != NULL; a = next) {
            next = a->next;
            memset(a->secret, 0, sizeof(a->secret));
            mem_free(a);
        }
    }
    curl_global_cleanup();
    mem_free(wh);
}

/* Count the event in, or drop it when the queue is full. @return true when it may go. */
static bool admit(webhook_t *wh, const char *app)
{
    if (atomic_fetch_add_explicit(&wh->queued, 1, memory_order_relaxed) >= wh->max_events) {
        atomic_fetch_sub_explicit(&wh->queued, 1, memory_order_relaxed);
        drop_full(wh, app);
        return false;
    }
    return true;
}

static void post(webhook_t *wh, hook_msg_t *m)
{
    int rc = mbox_send(&wh->box, &m->node);
    if (rc == 0)
        return;
    atomic_fetch_sub_explicit(&wh->queued, 1, memory_order_relaxed);
    if (rc == RC_EFULL)
        drop_full(wh, m->app);
    msg_free(m);
}

static hook_msg_t *msg_new(int kind, const char *app, const char *user, uint64_t time_ms)
{
    hook_msg_t *m = mem_alloc(sizeof(*m));
    m->kind = kind;
    m->online = false;
    m->time_ms = time_ms;
    m->msg = NULL;
    snprintf(m->app, sizeof(m->app), "%s", app);
    snprintf(m->user, sizeof(m->user), "%s", user);
    return m;
}

void webhook_emit_message(webhook_t *wh, const char *app, const char *recipient, blob_t *msg,
                          uint64_t time_ms)
{
    hook_msg_t *m;

    if (!webhook_wants(wh, app, APPCONF_EV_MESSAGE) || !admit(wh, app))
        return;
    m = msg_new(MSG_MESSAGE, app, recipient, time_ms);
    m->msg = blob_ref(msg);
    post(wh, m);
}

void webhook_emit_presence(webhook_t *wh, const char *app, const char *user, bool online,
                           uint64_t time_ms)
{
    hook_msg_t *m;

    if (!webhook_wants(wh, app, online ? APPCONF_EV_USER_ONLINE : APPCONF_EV_USER_OFFLINE) ||
        !admit(wh, app))
        return;
    m = msg_new(MSG_PRESENCE, app, user, time_ms);
    m->online = online;
    post(wh, m);
}

void webhook_stats(const webhook_t *wh, webhook_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (wh == NULL)
        return;
    out->queued = atomic_load_explicit(&wh->queued, memory_order_relaxed);
    out->in_flight = atomic_load_explicit(&wh->in_flight, memory_order_relaxed);
    out->sent_total = atomic_load_explicit(&wh->sent, memory_order_relaxed);
    out->delivered_total = atomic_load_explicit(&wh->delivered, memory_order_relaxed);
    out->failed_attempts_total = atomic_load_explicit(&wh->failed, memory_order_relaxed);
    out->dropped_queue_full_total = atomic_load_explicit(&wh->dropped_full, memory_order_relaxed);
    out->dropped_retries_total = atomic_load_explicit(&wh->dropped_retries, memory_order_relaxed);
}
