/* cimctl: the admin tool. Works on the data directory directly (LMDB is multi-process
 * safe), so it runs beside a live cimd; its write transactions are a few puts each. It
 * never takes cimd's lock on the directory (datadir): that lock keeps a second cimd out,
 * not the tools.
 *
 *   cimctl [--data DIR] COMMAND [ARGS]      see usage() below and DESIGN.md
 *
 * Only `init` creates a data directory (LMDB, the app "default", the identity key, as
 * cimd's first start does); every other command refuses a directory that holds no cim
 * data, so a mistyped --data is an error, not a new server identity.
 *
 * Results go to stdout, one item per line; errors are one line "cimctl: reason" on stderr.
 * Exit status: 0 success, 1 failure, 2 usage error. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <time.h>

#include "actors/appconf.h"
#include "cmd/cimctl_http.h"
#include "core/backup.h"
#include "core/chan.h"
#include "core/datadir.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/token.h"
#include "core/version.h"

#define DEFAULT_DATA "data"
#define DEFAULT_APP "default"
#define DEFAULT_TTL 86400
#define MAX_TTL (100LL * 365 * 86400) /* keeps expiry far from int64 overflow */

enum { EXIT_USAGE = 2 };

typedef struct cmd cmd_t;

/* Everything a command needs, parsed from the command line. */
typedef struct ctl {
    const char *data; /* data directory */
    const char *app;  /* --app, "default" when absent or empty */
    const char *user; /* --user */
    long long ttl;    /* --ttl, seconds */
    const char *admin; /* --admin HOST:PORT of the running cimd's admin API */
    const char *token; /* node --token: the metrics_token */
    bool group;       /* send --group: TO is a group id */
    bool system;      /* send --system: a SYSTEM message */
    bool settings;    /* --settings */
    int npos;         /* positional arguments after the command words */
    char **pos;
    kv_t *kv;
} ctl_t;

struct cmd {
    const char *name;    /* "app add" */
    const char *args;    /* synopsis after the name */
    const char *help;    /* one line, lower case, no full stop */
    int npos;            /* exact number of positionals (the least, with more) */
    bool more;           /* more positionals than npos may follow */
    bool app, user, ttl, settings; /* which options it takes */
    int (*run)(ctl_t *c);
    bool init; /* opens what it needs itself (init, backup, restore), or nothing (node); for
                  the others, main opens c->kv on an existing data directory */
    bool http; /* talks to the running cimd's admin API (--admin; send: --group, --system) */
};

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print one error line: "cimctl: reason". */
static void fail(const char *fmt, ...)
{
    va_list ap;
    fputs("cimctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- helpers ---------------------------------------------------------------------- */

/* Run @p fn in a short write transaction; a full map is grown once and the write retried
 * (cimd may have filled the map this process opened with). */
static int with_write(kv_t *kv, int (*fn)(kv_txn_t *txn, void *arg), void *arg)
{
    kv_txn_t *txn = NULL;
    int rc;

    for (int attempt = 0; attempt < 2; attempt++) {
        if ((rc = kv_begin(kv, KV_WRITE, &txn)) < 0)
            return rc;
        if ((rc = fn(txn, arg)) < 0) {
            kv_abort(txn);
        } else {
            rc = kv_commit(txn);
        }
        txn = NULL;
        if (rc != RC_EMAPFULL || attempt == 1)
            break;
        if ((rc = kv_grow(kv)) < 0)
            break;
    }
    return rc;
}

/* Read an app's secret; prints the error itself. */
static int app_secret(ctl_t *c, const char *app, uint8_t secret[TOKEN_SECRET])
{
    kv_txn_t *txn = NULL;
    int rc;

    if ((rc = kv_begin(c->kv, KV_READ, &txn)) < 0) {
        fail("cannot read %s: %s", c->data, rc_str(rc));
        return rc;
    }
    rc = kv_app_get(txn, app, secret);
    kv_abort(txn);
    if (rc == RC_ENOTFOUND)
        fail("unknown app '%s'", app);
    else if (rc < 0)
        fail("cannot read app '%s': %s", app, rc_str(rc));
    return rc;
}

static int check_id(const char *what, const char *id)
{
    if (kv_id_valid(id))
        return 0;
    fail("invalid %s '%s' (1..%d characters of A-Z a-z 0-9 . _ @ -)", what, id, KV_ID_MAX);
    return RC_EINVAL;
}

static void print_hex(const uint8_t b[CHAN_KEY])
{
    char hex[2 * CHAN_KEY + 1];
    chan_hex(b, hex);
    printf("%s\n", hex);
}

/* ---- commands --------------------------------------------------------------------- */

/* Load the identity key, creating it only for init. Prints the public key. */
static int identity_show(ctl_t *c, bool create)
{
    chan_identity_t *id = NULL;
    uint8_t pub[CHAN_KEY];
    char path[DATADIR_PATH_MAX];
    int rc;

    if (datadir_path(path, sizeof(path), c->data, DATADIR_IDENTITY) < 0) {
        fail("data directory path too long");
        return RC_EINVAL;
    }
    rc = create ? chan_identity_load(path, &id, NULL) : chan_identity_open(path, &id);
    if (rc < 0) {
        fail("cannot %s identity %s: %s", create ? "create" : "load", path, rc_str(rc));
        return rc;
    }
    chan_identity_public(id, pub);
    chan_identity_free(id);
    print_hex(pub);
    return 0;
}

static int cmd_show_key(ctl_t *c)
{
    return identity_show(c, false);
}

/* What cimd's first start does, in the same order (server_start): the LMDB environment
 * (and the directory, parents too, 0700), the app "default", then the identity key. A
 * directory left half-made (a first start that crashed) is completed; one that already
 * holds cim data is left alone. */
static int cmd_init(ctl_t *c)
{
    char why[256];
    int rc;

    if ((rc = datadir_check(c->data, why, sizeof(why))) == 0) {
        fail("%s already holds cim data; nothing changed ('cimctl --data %s show-key' "
             "prints its key)", c->data, c->data);
        return RC_EEXIST;
    }
    if (rc != RC_ENOTFOUND) {
        fail("data directory path too long");
        return rc;
    }
    if ((rc = kv_open(c->data, 0, &c->kv)) < 0) {
        fail("cannot create the data directory '%s': %s", c->data, rc_str(rc));
        return rc;
    }
    if ((rc = kv_app_ensure_default(c->kv)) < 0) {
        fail("cannot create the app '" DEFAULT_APP "': %s", rc_str(rc));
        return rc;
    }
    return identity_show(c, true);
}

typedef struct app_add {
    const char *app;
    const uint8_t *secret;
} app_add_t;

static int do_app_add(kv_txn_t *txn, void *arg)
{
    app_add_t *a = arg;
    return kv_app_add(txn, a->app, a->secret, (uint64_t)time(NULL) * 1000);
}

static int cmd_app_add(ctl_t *c)
{
    const char *app = c->pos[0];
    uint8_t secret[TOKEN_SECRET];
    app_add_t a = {app, secret};
    int rc;

    if ((rc = check_id("app name", app)) < 0)
        return rc;
    if ((rc = chan_random(secret, sizeof(secret))) < 0) {
        fail("cannot make a secret: %s", rc_str(rc));
        return rc;
    }
    rc = with_write(c->kv, do_app_add, &a);
    if (rc == RC_EEXIST)
        fail("app '%s' already exists", app);
    else if (rc < 0)
        fail("cannot add app '%s': %s", app, rc_str(rc));
    else
        print_hex(secret);
    memset(secret, 0, sizeof(secret));
    return rc;
}

/* An app's settings in @p txn, printed as `key=value` words separated by @p sep. */
static int print_settings(kv_txn_t *txn, const char *app, const char *sep)
{
    char text[3 * APPCONF_URL_MAX];
    const uint8_t *val;
    size_t len;
    appconf_t conf;
    int rc;

    if ((rc = kv_app_settings_get(txn, app, &val, &len)) < 0)
        return rc;
    appconf_decode(val, len, &conf);
    if ((rc = appconf_format(&conf, sep, text, sizeof(text))) < 0)
        return rc;
    return printf("%s\n", text) < 0 ? -EIO : 0;
}

static int cmd_app_show(ctl_t *c)
{
    uint8_t secret[TOKEN_SECRET];
    kv_txn_t *txn = NULL;
    int rc;

    if (!c->settings) {
        if ((rc = app_secret(c, c->pos[0], secret)) < 0)
            return rc;
        print_hex(secret);
        memset(secret, 0, sizeof(secret));
        return 0;
    }
    if ((rc = kv_begin(c->kv, KV_READ, &txn)) == 0) {
        rc = print_settings(txn, c->pos[0], "\n");
        kv_abort(txn);
    }
    if (rc == RC_ENOTFOUND)
        fail("unknown app '%s'", c->pos[0]);
    else if (rc < 0)
        fail("cannot read app '%s': %s", c->pos[0], rc_str(rc));
    return rc;
}

static int print_name(void *ctx, const char *name, uint64_t created_ms)
{
    (void)ctx;
    (void)created_ms;
    return printf("%s\n", name) < 0 ? -EIO : 0;
}

/* `app list --settings`: the name, then the settings on the same line. */
static int print_app_settings(void *ctx, const char *name, uint64_t created_ms)
{
    (void)created_ms;
    if (printf("%s ", name) < 0)
        return -EIO;
    return print_settings(ctx, name, " ");
}

static int cmd_app_list(ctl_t *c)
{
    kv_txn_t *txn = NULL;
    int rc;

    if ((rc = kv_begin(c->kv, KV_READ, &txn)) == 0) {
        rc = c->settings ? kv_app_each(txn, print_app_settings, txn)
                         : kv_app_each(txn, print_name, NULL);
        kv_abort(txn);
    }
    if (rc < 0)
        fail("cannot list apps: %s", rc_str(rc));
    return rc;
}

typedef struct app_set {
    const char *app;
    char **set; /* KEY=VALUE arguments, checked */
    int n;
} app_set_t;

/* Read the app's settings, apply the arguments, write them back: one transaction, so a
 * concurrent `app set` of another key is not lost. */
static int do_app_set(kv_txn_t *txn, void *arg)
{
    app_set_t *a = arg;
    uint8_t buf[KV_APP_SETTINGS_MAX];
    const uint8_t *val;
    size_t len;
    appconf_t conf;
    int rc;

    if ((rc = kv_app_settings_get(txn, a->app, &val, &len)) < 0)
        return rc;
    appconf_decode(val, len, &conf);
    for (int i = 0; i < a->n; i++)
        if ((rc = appconf_set(&conf, a->set[i], NULL, 0)) < 0)
            return rc;
    if ((rc = appconf_encode(&conf, buf, sizeof(buf))) < 0)
        return rc;
    return kv_app_settings_put(txn, a->app, buf, (size_t)rc);
}

static int cmd_app_set(ctl_t *c)
{
    app_set_t a = {c->pos[0], c->pos + 1, c->npos - 1};
    char err[256];
    appconf_t check;
    int rc;

    /* Every argument is checked before anything is written: one bad one changes nothing. */
    appconf_defaults(&check);
    for (int i = 0; i < a.n; i++) {
        if ((rc = appconf_set(&check, a.set[i], err, sizeof(err))) < 0) {
            fail("app set %s: %s; nothing changed", a.app, err);
            return rc;
        }
    }
    rc = with_write(c->kv, do_app_set, &a);
    if (rc == RC_ENOTFOUND)
        fail("unknown app '%s'", a.app);
    else if (rc < 0)
        fail("cannot change app '%s': %s", a.app, rc_str(rc));
    return rc;
}

static int cmd_token(ctl_t *c)
{
    uint8_t secret[TOKEN_SECRET];
    char tok[TOKEN_MAX];
    int rc;

    if ((rc = check_id("user id", c->user)) < 0 || (rc = app_secret(c, c->app, secret)) < 0)
        return rc;
    rc = token_mint(secret, c->app, c->user, (int64_t)time(NULL) + c->ttl, tok, sizeof(tok));
    memset(secret, 0, sizeof(secret));
    if (rc < 0) {
        fail("cannot mint a token: %s", rc_str(rc));
        return rc;
    }
    printf("%s\n", tok);
    return 0;
}

typedef struct user_add {
    const char *app;
    const char *user;
} user_add_t;

static int do_user_add(kv_txn_t *txn, void *arg)
{
    user_add_t *u = arg;
    uint8_t secret[TOKEN_SECRET];
    int rc;

    /* The app check shares the write txn, so it cannot race with anything. */
    if ((rc = kv_app_get(txn, u->app, secret)) < 0)
        return rc;
    memset(secret, 0, sizeof(secret));
    return kv_user_add(txn, u->app, u->user, (uint64_t)time(NULL) * 1000);
}

static int cmd_user_add(ctl_t *c)
{
    user_add_t u = {c->app, c->pos[0]};
    int rc;

    if ((rc = check_id("user id", u.user)) < 0)
        return rc;
    rc = with_write(c->kv, do_user_add, &u);
    if (rc == RC_ENOTFOUND)
        fail("unknown app '%s'", u.app);
    else if (rc == RC_EEXIST)
        fail("user '%s' already exists in app '%s'", u.user, u.app);
    else if (rc < 0)
        fail("cannot add user '%s': %s", u.user, rc_str(rc));
    return rc;
}

typedef struct user_set {
    const char *app;
    const char *user;
    bool bot;
} user_set_t;

static int do_user_set(kv_txn_t *txn, void *arg)
{
    user_set_t *u = arg;
    uint8_t secret[TOKEN_SECRET];
    uint32_t flags;
    int rc;

    if ((rc = kv_app_get(txn, u->app, secret)) < 0)
        return rc == RC_ENOTFOUND ? RC_EINVAL : rc; /* told apart from an unknown user */
    memset(secret, 0, sizeof(secret));
    if ((rc = kv_user_flags(txn, u->app, u->user, &flags)) < 0)
        return rc;
    flags = u->bot ? flags | KV_USER_BOT : flags & ~(uint32_t)KV_USER_BOT;
    return kv_user_set_flags(txn, u->app, u->user, flags);
}

static int cmd_user_set(ctl_t *c)
{
    user_set_t u = {c->app, c->pos[0], false};
    int rc;

    if ((rc = check_id("user id", u.user)) < 0)
        return rc;
    for (int i = 1; i < c->npos; i++) {
        const char *v = c->pos[i] + 4;
        if (strncmp(c->pos[i], "bot=", 4) != 0 ||
            (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)) {
            fail("user set %s: expected bot=true or bot=false, got '%.80s'; nothing changed",
                 u.user, c->pos[i]);
            return RC_EINVAL;
        }
        u.bot = strcmp(v, "true") == 0;
    }
    rc = with_write(c->kv, do_user_set, &u);
    if (rc == RC_EINVAL)
        fail("unknown app '%s'", u.app);
    else if (rc == RC_ENOTFOUND)
        fail("unknown user '%s' in app '%s'", u.user, u.app);
    else if (rc < 0)
        fail("cannot change user '%s': %s", u.user, rc_str(rc));
    return rc;
}

static int cmd_user_list(ctl_t *c)
{
    uint8_t secret[TOKEN_SECRET];
    kv_txn_t *txn = NULL;
    int rc;

    if ((rc = kv_begin(c->kv, KV_READ, &txn)) < 0)
        goto out;
    rc = kv_app_get(txn, c->app, secret);
    memset(secret, 0, sizeof(secret));
    if (rc == RC_ENOTFOUND) {
        fail("unknown app '%s'", c->app);
        goto out;
    }
    if (rc == 0)
        rc = kv_user_each(txn, c->app, print_name, NULL);
    if (rc < 0)
        fail("cannot list users: %s", rc_str(rc));
out:
    kv_abort(txn);
    return rc;
}

/* A hot, compacted copy of the data directory into a new or empty DIR (core/backup). */
static int cmd_backup(ctl_t *c)
{
    char why[512];
    uint64_t bytes = 0;
    int rc;

    if ((rc = backup_make(c->data, c->pos[0], why, sizeof(why), &bytes)) < 0) {
        fail("%s", why);
        return rc;
    }
    printf("backed up %s to %s (%s %llu bytes, %s)\n", c->data, c->pos[0], DATADIR_DATA,
           (unsigned long long)bytes, DATADIR_IDENTITY);
    return 0;
}

/* A backup put back as the (new or empty) data directory. */
static int cmd_restore(ctl_t *c)
{
    uint8_t pub[CHAN_KEY];
    char why[512], hex[2 * CHAN_KEY + 1];
    int rc;

    if ((rc = backup_restore(c->pos[0], c->data, why, sizeof(why), pub)) < 0) {
        fail("%s", why);
        return rc;
    }
    chan_hex(pub, hex);
    printf("restored %s into %s; identity key %s\n", c->pos[0], c->data, hex);
    return 0;
}

/* ---- commands through the running cimd's admin API (docs/ADMIN-API.md) ---------------- */

/* @p method @p path on the admin listener (--admin, else $CIM_ADMIN, else the default)
 * with the bearer @p bearer (NULL: none). Prints nothing on success; *answer is the parsed
 * JSON answer (decref it). @return 0 or rc (the error printed). */
static int http_json(ctl_t *c, const char *method, const char *path, const char *bearer,
                     json_t *body, json_t **answer)
{
    char err[512], *text = NULL, *req = NULL;
    long status = 0;
    json_t *j = NULL;
    int rc;

    *answer = NULL;
    if (body != NULL)
        req = json_dumps(body, JSON_COMPACT);
    rc = ctl_http(c->admin ? c->admin
                  : getenv("CIM_ADMIN") && *getenv("CIM_ADMIN") ? getenv("CIM_ADMIN")
                                                                  : CTL_ADMIN_DEFAULT,
                  bearer, method, path, req, &status, &text, err, sizeof(err));
    free(req);
    if (rc < 0) {
        fail("%s", err);
        return -EIO;
    }
    j = text ? json_loads(text, 0, NULL) : NULL;
    if (status / 100 != 2) {
        json_t *code = json_object_get(j, "code"), *why = json_object_get(j, "reason");
        fail("HTTP %ld %s: %s", status, json_is_string(code) ? json_string_value(code) : "",
             json_is_string(why) ? json_string_value(why) : (text ? text : ""));
        json_decref(j);
        mem_free(text);
        return status == 404 ? RC_ENOTFOUND : RC_EINVAL;
    }
    mem_free(text);
    *answer = j;
    return 0;
}

/* Call the admin API as app c->app (its secret read from the data dir), as http_json. */
static int admin_call(ctl_t *c, const char *method, const char *path, json_t *body,
                      json_t **answer)
{
    uint8_t secret[TOKEN_SECRET];
    char hex[2 * TOKEN_SECRET + 1];
    int rc;

    *answer = NULL;
    if ((rc = app_secret(c, c->app, secret)) < 0)
        return rc;
    for (size_t i = 0; i < TOKEN_SECRET; i++)
        snprintf(hex + 2 * i, 3, "%02x", secret[i]);
    memset(secret, 0, sizeof(secret));
    rc = http_json(c, method, path, hex, body, answer);
    memset(hex, 0, sizeof(hex));
    return rc;
}

/* The path of a user under the app, ids checked. */
static int user_path(ctl_t *c, const char *user, const char *suffix, char *out, size_t len)
{
    int rc;
    if ((rc = check_id("user id", user)) < 0)
        return rc;
    snprintf(out, len, "/v1/apps/%s/users/%s%s", c->app, user, suffix);
    return 0;
}

static int cmd_kick(ctl_t *c)
{
    char path[256];
    json_t *j;
    int rc;

    if ((rc = user_path(c, c->pos[0], "/kick", path, sizeof(path))) < 0 ||
        (rc = admin_call(c, "POST", path, NULL, &j)) < 0)
        return rc;
    printf("kicked %lld\n", (long long)json_integer_value(json_object_get(j, "kicked")));
    json_decref(j);
    return 0;
}

static int set_disabled(ctl_t *c, bool disabled)
{
    char path[256];
    json_t *j, *body = json_pack("{s:b}", "disabled", disabled);
    int rc;

    if ((rc = user_path(c, c->pos[0], "", path, sizeof(path))) == 0)
        rc = admin_call(c, "PUT", path, body, &j);
    json_decref(body);
    if (rc < 0)
        return rc;
    printf("%s %s\n", c->pos[0], disabled ? "disabled" : "enabled");
    json_decref(j);
    return 0;
}

static int cmd_user_disable(ctl_t *c)
{
    return set_disabled(c, true);
}

static int cmd_user_enable(ctl_t *c)
{
    return set_disabled(c, false);
}

static int cmd_send(ctl_t *c)
{
    char path[256];
    json_t *j, *body;
    int rc;

    if ((rc = check_id("sender", c->pos[0])) < 0)
        return rc;
    body = json_pack("{s:s, s:s, s:s, s:b}", "from", c->pos[0], c->group ? "group" : "to",
                     c->pos[1], "body", c->pos[2], "system", c->system);
    if (body == NULL) {
        fail("send: the text must be UTF-8");
        return RC_EINVAL;
    }
    snprintf(path, sizeof(path), "/v1/apps/%s/messages", c->app);
    rc = admin_call(c, "POST", path, body, &j);
    json_decref(body);
    if (rc < 0)
        return rc;
    printf("%s\n", json_string_value(json_object_get(j, "msg_id")));
    json_decref(j);
    return 0;
}

/* Which node the admin listener belongs to, its cluster and what it knows of the others
 * (GET /v1/node, guarded by metrics_token: --token, else $CIM_METRICS_TOKEN). */
static int cmd_node(ctl_t *c)
{
    const char *token = c->token ? c->token : getenv("CIM_METRICS_TOKEN");
    json_t *j, *cluster, *v;
    size_t i;
    int rc;

    if ((rc = http_json(c, "GET", "/v1/node", token && *token ? token : NULL, NULL, &j)) < 0)
        return rc;
    cluster = json_object_get(j, "cluster");
    printf("node_id  %lld\n", (long long)json_integer_value(json_object_get(j, "node_id")));
    printf("cluster  %s\n", json_is_string(cluster) ? json_string_value(cluster)
                                                    : "none (standalone)");
    printf("bus      %s\n", json_string_value(json_object_get(j, "bus")));
    json_array_foreach(json_object_get(j, "nodes"), i, v) {
        bool self = json_is_true(json_object_get(v, "self"));
        printf("node %-4lld %s%s\n", (long long)json_integer_value(json_object_get(v, "id")),
               json_is_true(json_object_get(v, "alive")) ? "alive" : "down",
               self ? " (this node)" : "");
    }
    json_decref(j);
    return 0;
}

static const cmd_t cmds[] = {
    {.name = "init", .args = "",
     .help = "make a new data directory, print its identity key (64 hex)", .run = cmd_init,
     .init = true},
    {.name = "show-key", .args = "", .help = "print the server's identity public key (64 hex)",
     .run = cmd_show_key},
    {.name = "app add", .args = "NAME", .help = "create an app, print its secret (64 hex)",
     .npos = 1, .run = cmd_app_add},
    {.name = "app show", .args = "NAME [--settings]",
     .help = "print an app's secret (64 hex), or with --settings its settings (KEY=VALUE "
             "lines)",
     .npos = 1, .settings = true, .run = cmd_app_show},
    {.name = "app set", .args = "NAME KEY=VALUE...",
     .help = "change an app's settings (webhook_url, webhook_events, webhook_bodies: "
             "docs/WEBHOOKS.md)",
     .npos = 2, .more = true, .run = cmd_app_set},
    {.name = "app list", .args = "[--settings]",
     .help = "list the apps, one per line (with --settings: NAME KEY=VALUE...)",
     .settings = true, .run = cmd_app_list},
    {.name = "token", .args = "[--app A] --user U [--ttl SECONDS]",
     .help = "print a login token for U", .app = true, .user = true, .ttl = true,
     .run = cmd_token},
    {.name = "user add", .args = "U [--app A]", .help = "register a user before their first login",
     .npos = 1, .app = true, .run = cmd_user_add},
    {.name = "user set", .args = "U bot=true|false [--app A]",
     .help = "mark a user as a bot or not (webhook message.to_bot: docs/WEBHOOKS.md)",
     .npos = 2, .more = true, .app = true, .run = cmd_user_set},
    {.name = "user list", .args = "[--app A]", .help = "list an app's users, one per line",
     .app = true, .run = cmd_user_list},
    {.name = "backup", .args = "DIR",
     .help = "hot, compacted copy of the data into a new or empty DIR", .npos = 1,
     .run = cmd_backup, .init = true},
    {.name = "restore", .args = "DIR", .help = "put the backup DIR back as --data (new or empty)",
     .npos = 1, .run = cmd_restore, .init = true},
    {.name = "kick", .args = "U [--app A] [--admin HOST:PORT]",
     .help = "close every session of U (BYE KICKED) on the running cimd", .npos = 1,
     .app = true, .run = cmd_kick, .http = true},
    {.name = "user disable", .args = "U [--app A] [--admin HOST:PORT]",
     .help = "refuse U's logins and close U's sessions (running cimd)", .npos = 1,
     .app = true, .run = cmd_user_disable, .http = true},
    {.name = "user enable", .args = "U [--app A] [--admin HOST:PORT]",
     .help = "let a disabled U log in again", .npos = 1, .app = true, .run = cmd_user_enable,
     .http = true},
    {.name = "send", .args = "FROM TO TEXT [--group] [--system] [--app A] [--admin HOST:PORT]",
     .help = "store and push TEXT from FROM to user TO (--group: group TO)", .npos = 3,
     .app = true, .run = cmd_send, .http = true},
    {.name = "node", .args = "[--admin HOST:PORT] [--token T]",
     .help = "which node the running cimd is: node id, cluster, bus, peers (docs/SCALING.md)",
     .run = cmd_node, .init = true, .http = true},
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static void list_cmds(FILE *f, const char *group)
{
    size_t glen = group != NULL ? strlen(group) : 0;

    for (size_t i = 0; i < NCMDS; i++) {
        char syn[64];
        if (group != NULL && (strncmp(cmds[i].name, group, glen) != 0 ||
                              cmds[i].name[glen] != ' '))
            continue;
        snprintf(syn, sizeof(syn), "%s %s", cmds[i].name, cmds[i].args);
        fprintf(f, "  %-41s %s\n", syn, cmds[i].help);
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: cimctl [--data DIR] COMMAND [ARGS]\n"
               "       cimctl --help | --version\n\n"
               "Administer a cim data directory (default '" DEFAULT_DATA "'); safe while "
               "cimd runs.\n\ncommands:\n");
    list_cmds(f, NULL);
    fprintf(f, "\nA data directory (LMDB, the app '" DEFAULT_APP "', the identity key) is made "
               "by the first\nstart of cimd or by 'cimctl init'; the other commands refuse a "
               "directory without\ncim data. 'cimctl COMMAND --help' describes a command.\n");
}

static void cmd_usage(FILE *f, const cmd_t *cmd)
{
    fprintf(f, "usage: cimctl [--data DIR] %s %s\n\n%c%s.\n", cmd->name, cmd->args,
            toupper((unsigned char)cmd->help[0]), cmd->help + 1);
    if (cmd->app)
        fprintf(f, "  --app A          the app (default \"" DEFAULT_APP "\")\n");
    if (cmd->user)
        fprintf(f, "  --user U         the user id (required)\n");
    if (cmd->ttl)
        fprintf(f, "  --ttl SECONDS    validity from now (default %d)\n", DEFAULT_TTL);
    if (cmd->settings)
        fprintf(f, "  --settings       the app's settings (KEY=VALUE, as app set takes them)\n");
    if (cmd->http)
        fprintf(f, "  --admin HOST:PORT  the running cimd's admin_listen (default: $CIM_ADMIN, "
                   "else %s)\n",
                CTL_ADMIN_DEFAULT);
    if (cmd->run == cmd_node)
        fprintf(f, "  --token T        the metrics_token, when cimd has one (default: "
                   "$CIM_METRICS_TOKEN)\n");
    if (cmd->run == cmd_send)
        fprintf(f, "  --group          TO is a group id\n"
                   "  --system         a SYSTEM message (blocks and membership do not apply)\n");
    fprintf(f, "  --data DIR       the data directory (default '" DEFAULT_DATA "')\n");
}

/* Match "app add" against argv: one or two words. @return the words used, or 0. */
static int match(const cmd_t *cmd, int argc, char **argv)
{
    const char *sp = strchr(cmd->name, ' ');

    if (sp == NULL)
        return argc >= 1 && strcmp(argv[0], cmd->name) == 0 ? 1 : 0;
    if (argc < 2 || strncmp(argv[0], cmd->name, (size_t)(sp - cmd->name)) != 0 ||
        argv[0][sp - cmd->name] != '\0' || strcmp(argv[1], sp + 1) != 0)
        return 0;
    return 2;
}

/* argv names no command: "help", a bare group ("app", "user --help") or a typo.
 * @return the exit status. */
static int no_command(int argc, char **argv)
{
    bool help = argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    FILE *f = help ? stdout : stderr;

    if (strcmp(argv[0], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[0], "app") != 0 && strcmp(argv[0], "user") != 0) {
        fail("unknown command '%s' (see 'cimctl --help')", argv[0]);
        return EXIT_USAGE;
    }
    if (argc > 1 && !help) {
        fail("unknown command '%s %s' (see 'cimctl %s --help')", argv[0], argv[1], argv[0]);
        return EXIT_USAGE;
    }
    fprintf(f, "usage: cimctl [--data DIR] %s SUBCOMMAND [ARGS]\n\n", argv[0]);
    list_cmds(f, argv[0]);
    return help ? 0 : EXIT_USAGE;
}

static int parse_ttl(const char *s, long long *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > MAX_TTL) {
        fail("invalid --ttl '%s' (seconds, 1..%lld)", s, MAX_TTL);
        return RC_EINVAL;
    }
    *out = v;
    return 0;
}

/* Parse the options and positionals after the command words (GNU getopt permutes, so
 * options may come before or after the positionals). @return 0, 1 for --help, or rc. */
static int parse_cmd(ctl_t *c, const cmd_t *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"app", required_argument, NULL, 'a'},  {"user", required_argument, NULL, 'u'},
        {"ttl", required_argument, NULL, 't'},  {"data", required_argument, NULL, 'd'},
        {"admin", required_argument, NULL, 'A'}, {"group", no_argument, NULL, 'g'},
        {"system", no_argument, NULL, 'S'},     {"settings", no_argument, NULL, 's'},
        {"token", required_argument, NULL, 'T'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt, rc;

    optind = 0; /* full reset: a new argument vector */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case 'h': return 1;
        case 'd': c->data = optarg; break;
        case 'a': ok = cmd->app; c->app = optarg; break;
        case 'u': ok = cmd->user; c->user = optarg; break;
        case 's': ok = cmd->settings; c->settings = true; break;
        case 't':
            ok = cmd->ttl;
            if (ok && (rc = parse_ttl(optarg, &c->ttl)) < 0)
                return rc;
            break;
        case 'A': ok = cmd->http; c->admin = optarg; break;
        case 'g': ok = cmd->run == cmd_send; c->group = true; break;
        case 'S': ok = cmd->run == cmd_send; c->system = true; break;
        case 'T': ok = cmd->run == cmd_node; c->token = optarg; break;
        case ':': fail("%s: %s needs a value", cmd->name, argv[optind - 1]); return RC_EINVAL;
        default:
            fail("%s: unknown option '%s' (see 'cimctl %s --help')", cmd->name,
                 argv[optind - 1], cmd->name);
            return RC_EINVAL;
        }
        if (!ok) {
            fail("%s: option '%s' does not apply (see 'cimctl %s --help')", cmd->name,
                 argv[optind - 1], cmd->name);
            return RC_EINVAL;
        }
    }
    if (cmd->user && c->user == NULL) {
        fail("%s: --user is required", cmd->name);
        return RC_EINVAL;
    }
    c->npos = argc - optind;
    c->pos = argv + optind;
    if (c->npos < cmd->npos || (c->npos > cmd->npos && !cmd->more)) {
        fail("%s: expected %s%s (see 'cimctl %s --help')", cmd->name,
             cmd->npos ? cmd->args : "no arguments", c->npos > cmd->npos ? ", got more" : "",
             cmd->name);
        return RC_EINVAL;
    }
    if (c->app == NULL || c->app[0] == '\0')
        c->app = DEFAULT_APP; /* PROTOCOL.md §6: an empty app is "default" */
    if (cmd->app)
        return check_id("app name", c->app);
    return 0;
}

/* Open an existing data directory; refuse (one line, nothing created: LMDB would make
 * lock.mdb, even the directory) one that holds no cim data. */
static int open_data(ctl_t *c)
{
    char why[256];
    int rc;

    if ((rc = datadir_check(c->data, why, sizeof(why))) == RC_ENOTFOUND) {
        fail("no cim data in %s: %s (start cimd on it, or create it with: cimctl --data %s "
             "init)", c->data, why, c->data);
        return rc;
    }
    if (rc < 0) {
        fail("data directory path too long");
        return rc;
    }
    if ((rc = kv_open(c->data, 0, &c->kv)) < 0)
        fail("cannot open data directory '%s': %s", c->data, rc_str(rc));
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option gopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    ctl_t c = {.data = DEFAULT_DATA, .ttl = DEFAULT_TTL};
    const cmd_t *cmd = NULL;
    int opt, words = 0, rc;

    log_set_level(LOG_LVL_WARN);
    opterr = 0;
    /* '+': stop at the command word; its own options are parsed by parse_cmd. */
    while ((opt = getopt_long(argc, argv, "+:h", gopts, NULL)) != -1) {
        if (opt == 'd') {
            c.data = optarg;
        } else if (opt == 'h') {
            usage(stdout);
            return 0;
        } else if (opt == 'V') {
            version_print("cimctl");
            return 0;
        } else {
            fail("%s '%s' (see 'cimctl --help')",
                 opt == ':' ? "missing value for" : "unknown option", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    argc -= optind;
    argv += optind;
    if (argc == 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < NCMDS && cmd == NULL; i++)
        if ((words = match(&cmds[i], argc, argv)) > 0)
            cmd = &cmds[i];
    if (cmd == NULL)
        return no_command(argc, argv);
    /* getopt sees argv[0] as the program name: hand it the last command word. */
    rc = parse_cmd(&c, cmd, argc - words + 1, argv + words - 1);
    if (rc == 1) {
        cmd_usage(stdout, cmd);
        return 0;
    }
    if (rc < 0)
        return EXIT_USAGE;

    if ((rc = chan_global_init()) < 0) {
        fail("crypto initialisation failed: %s", rc_str(rc));
        return EXIT_FAILURE;
    }
    if (!cmd->init && (rc = open_data(&c)) < 0)
        goto out;
    rc = cmd->run(&c);
    if (rc == 0 && fflush(stdout) != 0) {
        fail("cannot write the result: %s", strerror(errno));
        rc = -EIO;
    }
out:
    kv_close(c.kv);
    chan_global_free();
    return rc < 0 ? EXIT_FAILURE : 0;
}
