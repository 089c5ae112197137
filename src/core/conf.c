#include "core/conf.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/rc.h"
#include "core/snowflake.h"

/* How a key's text becomes a value. */
enum kind { K_PATH, K_LISTEN, K_LISTEN_OFF, K_SECRET, K_U32, K_DURABILITY, K_BOOL, K_LOGLEVEL,
            K_LOGFORMAT, K_NATS_URL, K_TOKEN, K_NODES };

typedef struct opt {
    const char *name;
    const char *arg; /* placeholder in the usage table */
    enum kind kind;
    size_t off; /* of the field in conf_t */
    uint32_t min, max;
    const char *help;
} opt_t;

#define F(field) offsetof(conf_t, field)
#define STR_(x) #x
#define STR(x) STR_(x)

/* The keys whose value is one of a few words, stored as the word's index (an int):
 * CONF_DURABILITY_*, LOG_LVL_*, LOG_FMT_*. */
static const char *const durabilities[] = {"sync", "nosync", NULL};
static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_formats[] = {"text", "json", NULL};

/* @return the NULL-terminated words of a word kind, NULL for any other kind. */
static const char *const *words_of(enum kind k)
{
    return k == K_DURABILITY ? durabilities
           : k == K_LOGLEVEL ? log_levels
           : k == K_LOGFORMAT ? log_formats
                              : NULL;
}

/* The single table of keys: conf_set, the file, the flags and the usage text all use it. */
static const opt_t opts[] = {
    {"listen", "HOST:PORT", K_LISTEN, F(listen), 0, 0,
     "address to accept clients on (port 0: any)"},
    {"data", "DIR", K_PATH, F(data), 0, 0, "data directory (LMDB environment, identity key)"},
    {"workers", "N", K_U32, F(workers), 0, 256, "worker loops; 0 = one per core"},
    {"node_id", "N", K_U32, F(node_id), 0, SNOWFLAKE_NODE_MAX, "SnowFlake node id of this server"},
    {"heartbeat_s", "S", K_U32, F(heartbeat_s), 1, 86400,
     "heartbeat; idle connections close after 3x"},
    {"login_timeout_s", "S", K_U32, F(login_timeout_s), 1, 3600, "handshake + login deadline"},
    {"max_body", "BYTES", K_U32, F(max_body), 1024, 65536, "largest plaintext frame body"},
    {"max_msg_bytes", "BYTES", K_U32, F(max_msg_bytes), 1, 65000,
     "largest message body (at most max_body - " STR(CONF_MSG_ROOM) ")"},
    {"max_conns", "N", K_U32, F(max_conns), 1, UINT32_MAX, "connections in all"},
    {"max_conns_per_ip", "N", K_U32, F(max_conns_per_ip), 1, UINT32_MAX,
     "connections per peer address"},
    {"send_rate", "N", K_U32, F(send_rate), 1, UINT32_MAX, "SENDs per second per connection"},
    {"send_burst", "N", K_U32, F(send_burst), 1, UINT32_MAX, "SEND burst per connection"},
    {"durability", "MODE", K_DURABILITY, F(durability), 0, 0,
     "sync (survives power loss) or nosync (survives a crash)"},
    {"retention_days", "DAYS", K_U32, F(retention_days), 0, 36500,
     "drop timeline entries older than this; 0 = keep"},
    {"recall_window_s", "S", K_U32, F(recall_window_s), 0, 2592000, "how long a sender may recall"},
    {"max_group_size", "N", K_U32, F(max_group_size), 2, 100000, "members per group"},
    {"commit_pace_ms", "MS", K_U32, F(commit_pace_ms), 0, 100,
     "a writer busy over a quarter of the time commits at most this often; 0 = off"},
    {"dedup_window_h", "H", K_U32, F(dedup_window_h), 24, 8760,
     "hours a resent client_msg_id is recognised (kept in memory: ~24 B per message)"},
    {"max_conn_queue_kb", "KIB", K_U32, F(max_conn_queue_kb), 16, 1048576,
     "output one connection may hold for a slow reader before BYE{SERVER_BUSY}"},
    {"max_queued_mb", "MIB", K_U32, F(max_queued_mb), 1, 1048576,
     "output queued for all connections together; over it the heaviest slow readers close"},
    {"login_fail_max", "N", K_U32, F(login_fail_max), 0, 1000000,
     "failed logins per address per window before RATE_LIMITED; 0 = off"},
    {"login_fail_window_s", "S", K_U32, F(login_fail_window_s), 1, 86400,
     "window of login_fail_max"},
    {"webhook_queue", "N", K_U32, F(webhook_queue), 1, 1000000,
     "webhook events held at most (docs/WEBHOOKS.md); over it new ones are dropped"},
    {"webhook_queue_mb", "MIB", K_U32, F(webhook_queue_mb), 1, 65536,
     "bytes those webhook events may hold"},
    {"webhook_timeout_ms", "MS", K_U32, F(webhook_timeout_ms), 100, 600000,
     "one webhook request, connect to last byte"},
    {"webhook_retries", "N", K_U32, F(webhook_retries), 1, 100,
     "attempts per webhook event in all (1: no retry), with exponential backoff"},
    {"single_session", "BOOL", K_BOOL, F(single_session), 0, 0,
     "one session per user in all (true|false)"},
    {"log_level", "LEVEL", K_LOGLEVEL, F(log_level), 0, 0, "error, warn, info or debug"},
    {"log_format", "FORMAT", K_LOGFORMAT, F(log_format), 0, 0,
     "text, or json (JSON lines: time, level, thread, event, fields)"},
    {"admin_listen", "HOST:PORT", K_LISTEN_OFF, F(admin_listen), 0, 0,
     "admin HTTP API, /metrics, /healthz (off: none; docs/ADMIN-API.md)"},
    {"metrics_token", "TOKEN", K_SECRET, F(metrics_token), 0, 0,
     "bearer token /metrics asks for (empty: none)"},
    {"token_ttl_s", "S", K_U32, F(token_ttl_s), 1, UINT32_MAX,
     "longest token lifetime the apps mint; revoke-tokens refuses tokens expiring within it"},
    {"ws_listen", "HOST:PORT", K_LISTEN_OFF, F(ws_listen), 0, 0,
     "WebSocket endpoint GET /ws, same frames as TCP (off: none)"},
    {"ws_origins", "LIST", K_SECRET, F(ws_origins), 0, 0,
     "Origins allowed to open /ws, comma-separated (empty: the page's own; *: any)"},
    {"dev_tokens", "BOOL", K_BOOL, F(dev_tokens), 0, 0,
     "DEVELOPMENT ONLY: GET /dev/token on ws_listen mints any user's token"},
    {"cluster_url", "URL", K_NATS_URL, F(cluster_url), 0, 0,
     "NATS server(s) of the cluster, nats://HOST:PORT[,...] (empty: standalone)"},
    {"cluster_name", "NAME", K_TOKEN, F(cluster_name), 0, 0,
     "the cluster's bus subject prefix ([A-Za-z0-9_-], 1..32)"},
    {"cluster_nodes", "LIST", K_NODES, F(cluster_nodes), 0, 0,
     "the cluster's node ids, comma-separated (must list node_id)"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* Every failure here is RC_EINVAL with a reason. */
#define fail(err, errlen, ...) rc_msg((err), (errlen), RC_EINVAL, __VA_ARGS__)

static const opt_t *find(const char *name)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

void conf_defaults(conf_t *c)
{
    memset(c, 0, sizeof(*c));
    (void)snprintf(c->listen, sizeof(c->listen), "%s", "127.0.0.1:7400");
    (void)snprintf(c->data, sizeof(c->data), "%s", "data");
    c->workers = 0;
    c->node_id = 0;
    c->heartbeat_s = 30;
    c->login_timeout_s = 10;
    c->max_body = 65536;
    c->max_msg_bytes = 16384;
    c->max_conns = 100000;
    c->max_conns_per_ip = 1000;
    c->send_rate = 100;
    c->send_burst = 200;
    c->durability = CONF_DURABILITY_SYNC;
    c->retention_days = 0;
    c->recall_window_s = 120;
    c->max_group_size = 2000;
    c->dedup_window_h = 24;
    c->commit_pace_ms = 1;
    c->max_conn_queue_kb = 4096;
    c->max_queued_mb = 256;
    c->login_fail_max = 10;
    c->login_fail_window_s = 60;
    c->webhook_queue = 10000;
    c->webhook_queue_mb = 64;
    c->webhook_timeout_ms = 5000;
    c->webhook_retries = 5;
    c->single_session = false;
    c->log_level = LOG_LVL_INFO;
    c->log_format = LOG_FMT_TEXT;
    (void)snprintf(c->admin_listen, sizeof(c->admin_listen), "%s", "127.0.0.1:7401");
    c->token_ttl_s = 86400;
    (void)snprintf(c->ws_listen, sizeof(c->ws_listen), "%s", "127.0.0.1:7480");
    (void)snprintf(c->cluster_name, sizeof(c->cluster_name), "%s", "cim");
}

/* Strict unsigned decimal: digits only (no sign, space or base prefix), within [min, max]. */
static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;

    if (*s == '\0')
        return RC_EINVAL;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return RC_EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max)
            return RC_EINVAL;
    }
    if (v < min)
        return RC_EINVAL;
    *out = (uint32_t)v;
    return 0;
}

/* "HOST:PORT", split at the last colon; "[v6]:PORT" loses its brackets. */
static int split_listen(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    const char *h = s;
    size_t n;
    uint32_t p;

    if (colon == NULL || parse_u32(colon + 1, 0, 65535, &p) < 0)
        return RC_EINVAL;
    n = (size_t)(colon - s);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= hostlen || memchr(h, '[', n) != NULL || memchr(h, ']', n) != NULL)
        return RC_EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (int)p;
    return 0;
}

int conf_addr_split(const char *addr, char *host, size_t hostlen, int *port)
{
    return split_listen(addr, host, hostlen, port);
}

int conf_listen_split(const conf_t *c, char *host, size_t hostlen, int *port)
{
    return split_listen(c->listen, host, hostlen, port);
}

/* "a, b or c" of a NULL-terminated word list, into @p buf. */
static const char *words_list(const char *const *words, char *buf, size_t len)
{
    size_t n = 0;

    buf[0] = '\0';
    for (int i = 0; words[i] != NULL && n < len; i++) {
        const char *sep = i == 0 ? "" : words[i + 1] == NULL ? " or " : ", ";
        int k = snprintf(buf + n, len - n, "%s%s", sep, words[i]);
        n += k > 0 ? (size_t)k : 0;
    }
    return buf;
}

/* One URL of cluster_url: nats:// or tls://, an optional "userinfo@", a host, an optional
 * ":PORT"; no blanks, no path. */
static bool nats_url_ok(const char *s, size_t n)
{
    static const char *const schemes[] = {"nats://", "tls://"};
    const char *end = s + n, *at, *host, *colon;
    uint32_t port;
    size_t i;

    for (i = 0; i < 2 && strncmp(s, schemes[i], strlen(schemes[i])) != 0; i++)
        ;
    if (i == 2)
        return false;
    s += strlen(schemes[i]);
    for (const char *p = s; p < end; p++)
        if (*p <= ' ' || *p == '/' || *p == 0x7f)
            return false;
    at = memrchr(s, '@', (size_t)(end - s));
    host = at != NULL ? at + 1 : s;
    if (host < end && host[0] == '[') { /* [v6addr], then maybe :PORT */
        const char *rb = memchr(host, ']', (size_t)(end - host));
        if (rb == NULL || rb == host + 1 || (rb + 1 < end && rb[1] != ':'))
            return false;
        colon = rb + 1 < end ? rb + 1 : NULL;
    } else {
        colon = memrchr(host, ':', (size_t)(end - host));
    }
    if (colon != NULL) {
        char num[8];
        if ((size_t)(end - colon - 1) >= sizeof(num))
            return false;
        memcpy(num, colon + 1, (size_t)(end - colon - 1));
        num[end - colon - 1] = '\0';
        if (parse_u32(num, 1, 65535, &port) < 0)
            return false;
        end = colon;
    }
    return end > host;
}

/* cluster_url: empty, or URLs separated by commas. */
static bool nats_urls_ok(const char *s)
{
    while (*s != '\0') {
        size_t n = strcspn(s, ",");
        if (!nats_url_ok(s, n))
            return false;
        s += n;
        if (*s == ',' && *++s == '\0')
            return false; /* a trailing comma */
    }
    return true;
}

/* cluster_name: one NATS subject token of safe characters. */
static bool token_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= CONF_CLUSTER_NAME_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* cluster_nodes: "1,2,3" (blanks around the ids allowed) into @p ids; "" is none. */
static int parse_nodes(const char *s, uint32_t ids[CONF_CLUSTER_MAX], uint32_t *n, char *err,
                       size_t errlen)
{
    uint32_t count = 0;

    s += strspn(s, " \t");
    while (*s != '\0') {
        char num[16];
        size_t len = strcspn(s, ", \t");
        uint32_t id;
        if (len == 0 || len >= sizeof(num))
            return fail(err, errlen, "expected node ids 0..%u separated by commas",
                        SNOWFLAKE_NODE_MAX);
        memcpy(num, s, len);
        num[len] = '\0';
        if (parse_u32(num, 0, SNOWFLAKE_NODE_MAX, &id) < 0)
            return fail(err, errlen, "'%s' is not a node id 0..%u", num, SNOWFLAKE_NODE_MAX);
        for (uint32_t i = 0; i < count; i++)
            if (ids[i] == id)
                return fail(err, errlen, "node id %u is listed twice", id);
        if (count == CONF_CLUSTER_MAX)
            return fail(err, errlen, "more than %d node ids", CONF_CLUSTER_MAX);
        ids[count++] = id;
        s += len;
        s += strspn(s, " \t");
        if (*s == ',') {
            s++;
            s += strspn(s, " \t");
            if (*s == '\0')
                return fail(err, errlen, "a trailing comma");
        } else if (*s != '\0') {
            return fail(err, errlen, "expected node ids separated by commas");
        }
    }
    *n = count;
    return 0;
}

/* The value as shown in an error: bounded, so a runaway argument cannot flood the line. */
#define SHOWN "%.80s"

int conf_set(conf_t *c, const char *key, const char *value, char *err, size_t errlen)
{
    const opt_t *o = find(key);
    char *field;
    char host[256], list[128];
    int port;
    uint32_t u;

    if (o == NULL) {
        if (strcmp(key, "config") == 0)
            return fail(err, errlen, "config can only be given as --config FILE");
        return fail(err, errlen, "unknown key '" SHOWN "'", key);
    }
    field = (char *)c + o->off;
    switch (o->kind) {
    case K_PATH:
        if (value[0] == '\0' || strlen(value) >= sizeof(c->data))
            return fail(err, errlen,
                        "bad value '" SHOWN "' for %s: expected a path of 1..%zu bytes", value,
                        o->name, sizeof(c->data) - 1);
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case K_SECRET:
        if (strlen(value) >= CONF_STR_MAX)
            return fail(err, errlen, "bad value for %s: at most %d bytes", o->name,
                        CONF_STR_MAX - 1);
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case K_LISTEN_OFF:
        if (strcmp(value, "off") == 0) {
            memcpy(field, value, 4);
            return 0;
        }
        /* fall through */
    case K_LISTEN:
        if (strlen(value) >= sizeof(c->listen) ||
            split_listen(value, host, sizeof(host), &port) < 0)
            return fail(err, errlen,
                        "bad value '" SHOWN "' for %s: expected HOST:PORT with a port 0..65535%s",
                        value, o->name, o->kind == K_LISTEN_OFF ? ", or off" : "");
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case K_U32:
        if (parse_u32(value, o->min, o->max, &u) < 0)
            return fail(err, errlen, "bad value '" SHOWN "' for %s: expected an integer %u..%u",
                        value, o->name, o->min, o->max);
        memcpy(field, &u, sizeof(u));
        return 0;
    case K_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "1") == 0)
            *(bool *)field = true;
        else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 || strcmp(value, "0") == 0)
            *(bool *)field = false;
        else
            return fail(err, errlen,
                        "bad value '" SHOWN "' for %s: expected true, false, yes, no, 1 or 0",
                        value, o->name);
        return 0;
    case K_NATS_URL:
        if (strlen(value) >= CONF_STR_MAX || !nats_urls_ok(value))
            return fail(err, errlen,
                        "bad value for %s: expected nats://HOST[:PORT] (or tls://), several "
                        "separated by commas, or empty for standalone",
                        o->name); /* the value may hold a password: not shown */
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case K_TOKEN:
        if (!token_ok(value))
            return fail(err, errlen,
                        "bad value '" SHOWN "' for %s: expected 1..%d characters of A-Z a-z 0-9 "
                        "_ - (no dots, blanks or wildcards: it prefixes the bus subjects)",
                        value, o->name, CONF_CLUSTER_NAME_MAX);
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case K_NODES: {
        uint32_t ids[CONF_CLUSTER_MAX], n = 0;
        char why[128];
        if (parse_nodes(value, ids, &n, why, sizeof(why)) < 0)
            return fail(err, errlen, "bad value '" SHOWN "' for %s: %s", value, o->name, why);
        memcpy(c->cluster_nodes, ids, n * sizeof(ids[0]));
        c->ncluster_nodes = n;
        return 0;
    }
    case K_DURABILITY:
    case K_LOGLEVEL:
    case K_LOGFORMAT:
        for (int i = 0; words_of(o->kind)[i] != NULL; i++) {
            if (strcmp(value, words_of(o->kind)[i]) == 0) {
                memcpy(field, &i, sizeof(i));
                return 0;
            }
        }
        return fail(err, errlen, "bad value '" SHOWN "' for %s: expected %s", value, o->name,
                    words_list(words_of(o->kind), list, sizeof(list)));
    }
    return fail(err, errlen, "key '%s' has no parser", key); /* not reached */
}

/* cluster_url and cluster_nodes go together, and the list names this node. */
static int check_cluster(const conf_t *c, char *err, size_t errlen)
{
    if (c->cluster_url[0] != '\0' && c->ncluster_nodes == 0)
        return fail(err, errlen,
                    "cluster_url is set but cluster_nodes is empty: list the node ids of the "
                    "cluster (e.g. cluster_nodes = 1,2,3), this node's node_id %u among them",
                    c->node_id);
    if (c->cluster_url[0] == '\0' && c->ncluster_nodes > 0)
        return fail(err, errlen,
                    "cluster_nodes is set but cluster_url is empty: set both to join a cluster, "
                    "neither to run standalone");
    for (uint32_t i = 0; i < c->ncluster_nodes; i++)
        if (c->cluster_nodes[i] == c->node_id)
            return 0;
    if (c->ncluster_nodes > 0)
        return fail(err, errlen, "cluster_nodes does not list this node's node_id %u",
                    c->node_id);
    return 0;
}

int conf_check(const conf_t *c, char *err, size_t errlen)
{
    if (c->max_msg_bytes > c->max_body - CONF_MSG_ROOM)
        return fail(err, errlen,
                    "max_msg_bytes %u does not fit max_body %u: at most max_body - %u = %u",
                    c->max_msg_bytes, c->max_body, CONF_MSG_ROOM, c->max_body - CONF_MSG_ROOM);
    /* A connection must be able to hold at least two whole frames for its peer, or the
     * largest push would close a reader that keeps up. */
    if ((uint64_t)c->max_conn_queue_kb * 1024 < 2 * ((uint64_t)c->max_body + 24))
        return fail(err, errlen,
                    "max_conn_queue_kb %u is under two frames of max_body %u: at least %u",
                    c->max_conn_queue_kb, c->max_body,
                    (unsigned)((2 * ((uint64_t)c->max_body + 24) + 1023) / 1024));
    if ((uint64_t)c->max_queued_mb << 10 < c->max_conn_queue_kb)
        return fail(err, errlen, "max_queued_mb %u is under max_conn_queue_kb %u",
                    c->max_queued_mb, c->max_conn_queue_kb);
    return check_cluster(c, err, errlen);
}

/*
 * The file. libinih parses the lines, fed by our own reader, which
 *  - counts lines, so an error from conf_set carries its line number;
 *  - refuses lines longer than inih's buffer (ini_parse would silently cut one in two and
 *    parse the rest as a line of its own, e.g. a second key hidden in a long path);
 *  - strips leading blanks, so an indented line is an ordinary line and never becomes a
 *    "continuation" that silently overrides the previous key's value;
 *  - refuses [section] lines: cimd's file has no sections;
 *  - stops the parse at the first error.
 */
typedef struct load_ctx {
    conf_t *c;
    FILE *f;
    const char *path;
    int line;     /* lines read so far */
    int err_line; /* line of the first error; 0 while none */
    char *err;
    size_t errlen;
} load_ctx_t;

static char *read_line(char *str, int num, void *stream)
{
    load_ctx_t *ctx = stream;
    size_t n, skip;

    if (ctx->err_line != 0 || fgets(str, num, ctx->f) == NULL)
        return NULL;
    ctx->line++;
    n = strlen(str);
    if (n > 0 && str[n - 1] != '\n' && !feof(ctx->f)) {
        ctx->err_line = ctx->line;
        (void)fail(ctx->err, ctx->errlen, "%s:%d: line longer than %d characters", ctx->path,
                   ctx->line, num - 2);
        return NULL;
    }
    skip = strspn(str, " \t");
    memmove(str, str + skip, n - skip + 1);
    if (str[0] == '[') {
        ctx->err_line = ctx->line;
        (void)fail(ctx->err, ctx->errlen, "%s:%d: sections are not supported", ctx->path,
                   ctx->line);
        return NULL;
    }
    return str;
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    load_ctx_t *ctx = user;
    char msg[320];

    if (ctx->err_line != 0)
        return 0;
    if (section[0] != '\0') /* read_line refuses sections; kept as a backstop */
        (void)fail(msg, sizeof(msg), "sections are not supported");
    else if (conf_set(ctx->c, name, value, msg, sizeof(msg)) == 0)
        return 1;
    ctx->err_line = ctx->line;
    (void)fail(ctx->err, ctx->errlen, "%s:%d: %s", ctx->path, ctx->line, msg);
    return 0;
}

/* conf_load without the cross-key check, for conf_parse_args (flags may still fix it). */
static int load(conf_t *c, const char *path, char *err, size_t errlen)
{
    load_ctx_t ctx = {.c = c, .path = path, .err = err, .errlen = errlen};
    int rc, bad;

    ctx.f = fopen(path, "r");
    if (ctx.f == NULL) {
        rc = -errno;
        (void)fail(err, errlen, "cannot open config file '%s': %s", path, strerror(-rc));
        return rc;
    }
    bad = ini_parse_stream(read_line, &ctx, on_pair, &ctx);
    if (ferror(ctx.f)) {
        rc = -EIO;
        (void)fail(err, errlen, "cannot read config file '%s'", path);
    } else if (bad > 0 && (ctx.err_line == 0 || bad < ctx.err_line)) {
        /* inih's own complaint (a line with no '='), before any of ours. */
        rc = fail(err, errlen, "%s:%d: expected 'key = value'", path, bad);
    } else if (ctx.err_line != 0 || bad != 0) {
        rc = RC_EINVAL; /* err already says why */
        if (ctx.err_line == 0)
            (void)fail(err, errlen, "%s: cannot parse (inih error %d)", path, bad);
    } else {
        rc = 0;
    }
    (void)fclose(ctx.f); /* read-only: nothing to lose on a failed close */
    return rc;
}

int conf_load(conf_t *c, const char *path, char *err, size_t errlen)
{
    int rc;

    if ((rc = load(c, path, err, errlen)) < 0)
        return rc;
    return conf_check(c, err, errlen);
}

/*
 * One command-line flag: "--key value" or "--key=value". On success *name is the key
 * (copied into buf), *value points into argv, and *next is the index after the flag.
 */
static int flag_at(int argc, char **argv, int i, char *buf, size_t buflen, const char **value,
                   int *next, char *err, size_t errlen)
{
    const char *arg = argv[i];
    const char *eq;
    size_t n;

    if (arg[0] == '-' && arg[1] != '-' && arg[1] != '\0')
        return fail(err, errlen, "unknown flag '" SHOWN "' (options are --key value)", arg);
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0' || arg[2] == '=')
        return fail(err, errlen, "unexpected argument '" SHOWN "' (options are --key value)", arg);
    arg += 2;
    eq = strchr(arg, '=');
    n = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    if (n >= buflen)
        return fail(err, errlen, "unknown flag '--" SHOWN "'", arg);
    memcpy(buf, arg, n);
    buf[n] = '\0';
    if (strcmp(buf, "config") != 0 && find(buf) == NULL)
        return fail(err, errlen, "unknown flag '--%s'", buf);
    if (eq != NULL) {
        *value = eq + 1;
        *next = i + 1;
    } else if (i + 1 < argc) {
        *value = argv[i + 1];
        *next = i + 2;
    } else {
        return fail(err, errlen, "flag --%s needs a value", buf);
    }
    return 0;
}

int conf_parse_args(conf_t *c, int argc, char **argv, char *err, size_t errlen)
{
    char name[64];
    const char *value;
    int i, next, rc;

    /* First pass: check every flag, and read the config files where they are named. */
    for (i = 1; i < argc; i = next) {
        if ((rc = flag_at(argc, argv, i, name, sizeof(name), &value, &next, err, errlen)) < 0)
            return rc;
        if (strcmp(name, "config") == 0 && (rc = load(c, value, err, errlen)) < 0)
            return rc;
    }
    /* Second pass: every other flag, in order, over the files. */
    for (i = 1; i < argc; i = next) {
        if ((rc = flag_at(argc, argv, i, name, sizeof(name), &value, &next, err, errlen)) < 0)
            return rc;
        if (strcmp(name, "config") != 0 && (rc = conf_set(c, name, value, err, errlen)) < 0)
            return rc;
    }
    return conf_check(c, err, errlen);
}

static void show_default(const conf_t *d, const opt_t *o, char *buf, size_t len)
{
    const char *field = (const char *)d + o->off;
    uint32_t u;
    int i;

    switch (o->kind) {
    case K_PATH:
    case K_LISTEN:
    case K_LISTEN_OFF:
    case K_SECRET:
    case K_NATS_URL:
    case K_TOKEN:
        (void)snprintf(buf, len, "%s", field);
        return;
    case K_NODES:
        buf[0] = '\0'; /* none by default */
        return;
    case K_U32:
        memcpy(&u, field, sizeof(u));
        (void)snprintf(buf, len, "%u", u);
        return;
    case K_BOOL:
        (void)snprintf(buf, len, "%s", *(const bool *)field ? "true" : "false");
        return;
    case K_DURABILITY:
    case K_LOGLEVEL:
    case K_LOGFORMAT:
        memcpy(&i, field, sizeof(i));
        (void)snprintf(buf, len, "%s", words_of(o->kind)[i]);
        return;
    }
}

void conf_usage(int fd)
{
    conf_t d;
    char flag[48], def[64];

    conf_defaults(&d);
    (void)dprintf(fd, "Options (each is also a 'key = value' line of the --config file; "
                      "flags override the file):\n");
    (void)dprintf(fd, "  %-22s %-14s %s\n", "FLAG", "DEFAULT", "MEANING");
    (void)dprintf(fd, "  %-22s %-14s %s\n", "--config FILE", "", "read FILE first, wherever given");
    for (size_t i = 0; i < NOPTS; i++) {
        (void)snprintf(flag, sizeof(flag), "--%s %s", opts[i].name, opts[i].arg);
        show_default(&d, &opts[i], def, sizeof(def));
        if (opts[i].kind != K_U32)
            (void)dprintf(fd, "  %-22s %-14s %s\n", flag, def, opts[i].help);
        else if (opts[i].max == UINT32_MAX)
            (void)dprintf(fd, "  %-22s %-14s %s [>= %u]\n", flag, def, opts[i].help, opts[i].min);
        else
            (void)dprintf(fd, "  %-22s %-14s %s [%u..%u]\n", flag, def, opts[i].help, opts[i].min,
                          opts[i].max);
    }
}
