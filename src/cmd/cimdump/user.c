/* dump: apps, users, user. */
#include <string.h>

#include "cmd/cimdump/dump_int.h"
#include "cmd/cimdump/jv.h"
#include "actors/conv.h"
#include "actors/feed.h"
#include "actors/group.h"
#include "core/be.h"
#include "core/mem.h"

typedef struct count {
    uint64_t n;
} count_t;

/* A listing in progress (apps, users). */
typedef struct listctx {
    dump_t *d;
    uint64_t n;
    json_t *arr; /* --json: the array, held by d->doc */
} listctx_t;

static int on_count_user(void *ctx, const char *user, uint64_t created_ms)
{
    (void)user;
    (void)created_ms;
    ((count_t *)ctx)->n++;
    return 0;
}

static int on_app(void *ctx, const char *app, uint64_t created_ms)
{
    listctx_t *l = ctx;
    dump_t *d = l->d;
    count_t users = {0};
    char t[32];
    int rc;

    if ((rc = kv_user_each(d->txn, app, on_count_user, &users)) < 0)
        return rc;
    dump__fmt_time(t, created_ms);
    if (d->json) {
        json_t *o = jv_obj();
        jv_set(o, "app", jv_str(app));
        jv_set(o, "created_ms", jv_u64(created_ms));
        jv_set(o, "created", jv_str(t));
        jv_set(o, "users", jv_u64(users.n));
        jv_push(l->arr, o);
    } else {
        fprintf(d->out, "%-24s %-26s %10llu\n", app, t, (unsigned long long)users.n);
    }
    return 0;
}

int dump__cmd_apps(dump_t *d)
{
    listctx_t l = {d, 0, NULL};
    int rc;

    if (d->json) {
        d->doc = jv_obj();
        jv_set(d->doc, "apps", l.arr = jv_arr());
    } else {
        fprintf(d->out, "%-24s %-26s %10s\n", "APP", "CREATED", "USERS");
    }
    if ((rc = kv_app_each(d->txn, on_app, &l)) < 0)
        return dump__fail_rc(d, "cannot list the apps", rc);
    return 0;
}

static int on_user(void *ctx, const char *user, uint64_t created_ms)
{
    listctx_t *u = ctx;
    dump_t *d = u->d;
    uint64_t count = 0;
    char t[32];
    int rc;

    if ((rc = feed_count(d->txn, d->app, user, &count)) < 0)
        return rc;
    dump__fmt_time(t, created_ms);
    u->n++;
    if (d->json) {
        json_t *o = jv_obj();
        jv_set(o, "user", jv_str(user));
        jv_set(o, "created_ms", jv_u64(created_ms));
        jv_set(o, "created", jv_str(t));
        jv_set(o, "timeline", jv_u64(count));
        jv_push(u->arr, o);
    } else {
        fprintf(d->out, "%-32s %-26s %10llu\n", user, t, (unsigned long long)count);
    }
    return 0;
}

int dump__cmd_users(dump_t *d)
{
    listctx_t u = {d, 0, NULL};
    int rc;

    if ((rc = dump__need_app(d)) < 0)
        return rc;
    if (d->json) {
        d->doc = jv_obj();
        jv_set(d->doc, "app", jv_str(d->app));
        jv_set(d->doc, "users", u.arr = jv_arr());
    } else {
        fprintf(d->out, "%-32s %-26s %10s\n", "USER", "CREATED", "TIMELINE");
    }
    if ((rc = kv_user_each(d->txn, d->app, on_user, &u)) < 0)
        return dump__fail_rc(d, "cannot list the users", rc);
    if (d->json)
        jv_set(d->doc, "count", jv_u64(u.n));
    else
        fprintf(d->out, "(%llu users in app %s)\n", (unsigned long long)u.n, d->app);
    return 0;
}

/* ---- user ---- */

typedef struct devctx {
    dump_t *d;
    const char *user;
    struct dev {
        char device[65];
        uint64_t cursor, pending;
    } * devs;
    size_t n, cap;
} devctx_t;

static int on_device(void *ctx, const char *device, uint64_t id)
{
    devctx_t *dc = ctx;
    size_t got;
    uint64_t pending = 0, none;
    int rc;

    /* entries after the cursor: what this device has not acknowledged yet */
    if ((rc = feed_page(dc->d->txn, dc->d->app, dc->user, id, &none, 0, &got, &pending)) < 0)
        return rc;
    if (dc->n == dc->cap) {
        dc->cap = dc->cap ? 2 * dc->cap : 8;
        dc->devs = mem_realloc(dc->devs, dc->cap * sizeof(*dc->devs));
    }
    snprintf(dc->devs[dc->n].device, sizeof(dc->devs[0].device), "%.64s", device);
    dc->devs[dc->n].cursor = id;
    dc->devs[dc->n++].pending = pending;
    return 0;
}

typedef struct convsum {
    dump_t *d;
    const char *user;
    uint64_t n, unread;
} convsum_t;

static int on_conv_sum(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val, size_t vlen)
{
    convsum_t *s = ctx;
    char peer[KV_ID_MAX + 1];
    conv_rec_t c;
    conv_view_t v;
    int rc;

    if (slen < 2 || slen - 1 > KV_ID_MAX)
        return 0;
    memcpy(peer, sfx + 1, slen - 1);
    peer[slen - 1] = '\0';
    conv_decode(val, vlen, &c);
    if ((rc = conv_view(s->d->txn, s->d->app, s->user, sfx[0], peer, &c, &v)) < 0)
        return rc;
    s->n++;
    s->unread += v.unread; /* derived, as CONV_LIST does */
    return 0;
}

typedef struct gids {
    uint64_t *v;
    size_t n, cap;
} gids_t;

static int on_ugroup(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val, size_t vlen)
{
    gids_t *g = ctx;

    (void)val;
    (void)vlen;
    if (slen != 8)
        return 0; /* not a group key */
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 16;
        g->v = mem_realloc(g->v, g->cap * sizeof(*g->v));
    }
    g->v[g->n++] = be64_get(sfx);
    return 0;
}

static int on_count_rec(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val, size_t vlen)
{
    (void)sfx;
    (void)slen;
    (void)val;
    (void)vlen;
    ((count_t *)ctx)->n++;
    return 0;
}

int dump__cmd_user(dump_t *d)
{
    const char *user = d->pos[0];
    uint8_t ukey[KV_UKEY_MAX], pfx[CONV_UKEY_MAX];
    size_t klen, plen, got = 0;
    uint64_t created = 0, count = 0, first = 0, last = 0, rest = 0;
    devctx_t dc = {0};
    convsum_t cs = {.d = d, .user = user};
    gids_t gs = {0};
    feed_span_t *sp = NULL;
    size_t nsp = 0;
    count_t contacts = {0}, blocks = {0};
    FILE *f = d->out;
    char t[32];
    int rc;

    if ((rc = dump__need_user(d, user, &created)) < 0)
        return rc;
    klen = kv_ukey(ukey, d->app, user);
    plen = conv_uprefix(pfx, d->app, user); /* user key NUL: also the prefix elsewhere */
    dc.d = d;
    dc.user = user;
    if ((rc = feed_count(d->txn, d->app, user, &count)) < 0 ||
        (rc = feed_page(d->txn, d->app, user, 0, &first, 1, &got, &rest)) < 0 ||
        (rc = feed_last(d->txn, d->app, user, &last)) < 0 ||
        (rc = kv_cursor_each(d->txn, ukey, klen, on_device, &dc)) < 0 ||
        (rc = conv_scan(d->txn, d->app, user, on_conv_sum, &cs)) < 0 ||
        (rc = kv_rec_scan(d->txn, KV_DB_UGROUPS, pfx, plen, on_ugroup, &gs)) < 0 ||
        (rc = feed_spans(d->txn, d->app, user, &sp, &nsp)) < 0 ||
        (rc = kv_rec_scan(d->txn, KV_DB_CONTACTS, pfx, plen, on_count_rec, &contacts)) < 0 ||
        (rc = kv_rec_scan(d->txn, KV_DB_BLOCKS, pfx, plen, on_count_rec, &blocks)) < 0) {
        dump__fail_rc(d, "cannot read the user", rc);
        goto out;
    }
    if (got == 0)
        first = 0;
    dump__fmt_time(t, created);
    if (d->json) {
        json_t *tl = jv_obj(), *devs = jv_arr(), *groups = jv_arr(), *spans = jv_arr();
        jv_set(tl, "count", jv_u64(count));
        jv_set(tl, "first", jv_id_or_null(first));
        jv_set(tl, "last", jv_id_or_null(last));
        for (size_t i = 0; i < dc.n; i++) {
            json_t *o = jv_obj();
            jv_set(o, "device", jv_str(dc.devs[i].device));
            jv_set(o, "cursor", jv_id(dc.devs[i].cursor));
            jv_set(o, "pending", jv_u64(dc.devs[i].pending));
            jv_push(devs, o);
        }
        for (size_t i = 0; i < gs.n; i++)
            jv_push(groups, jv_id(gs.v[i]));
        for (size_t i = 0; i < nsp; i++) {
            json_t *o = jv_obj();
            jv_set(o, "group", jv_id(sp[i].gid));
            jv_set(o, "first", jv_id(sp[i].first));
            jv_set(o, "last", jv_id_or_null(sp[i].last == UINT64_MAX ? 0 : sp[i].last));
            jv_push(spans, o);
        }
        d->doc = jv_obj();
        jv_set(d->doc, "app", jv_str(d->app));
        jv_set(d->doc, "user", jv_str(user));
        jv_set(d->doc, "created_ms", jv_u64(created));
        jv_set(d->doc, "created", jv_str(t));
        jv_set(d->doc, "timeline", tl);
        jv_set(d->doc, "devices", devs);
        jv_set(d->doc, "conversations", jv_u64(cs.n));
        jv_set(d->doc, "unread", jv_u64(cs.unread));
        jv_set(d->doc, "groups", groups);
        jv_set(d->doc, "spans", spans);
        jv_set(d->doc, "contacts", jv_u64(contacts.n));
        jv_set(d->doc, "blocked", jv_u64(blocks.n));
        goto out;
    }
    fprintf(f, "user           %s (app %s)\ncreated        %s\n", user, d->app, t);
    fprintf(f, "timeline       %llu messages", (unsigned long long)count);
    if (count > 0)
        fprintf(f, ", first %llu, last %llu", (unsigned long long)first, (unsigned long long)last);
    fprintf(f, "\nconversations  %llu (%llu unread)\ngroups         %zu", (unsigned long long)cs.n,
            (unsigned long long)cs.unread, gs.n);
    for (size_t i = 0; i < gs.n; i++)
        fprintf(f, "%s%llu", i == 0 ? ": " : " ", (unsigned long long)gs.v[i]);
    fprintf(f, "\nspans          %zu", nsp);
    for (size_t i = 0; i < nsp; i++) {
        fprintf(f, "%s%llu: %llu-", i == 0 ? ": " : ", ", (unsigned long long)sp[i].gid,
                (unsigned long long)sp[i].first);
        if (sp[i].last != UINT64_MAX)
            fprintf(f, "%llu", (unsigned long long)sp[i].last);
    }
    fprintf(f, "\ncontacts       %llu (%llu blocked)\n", (unsigned long long)contacts.n,
            (unsigned long long)blocks.n);
    fprintf(f, "devices        %zu (with a delivery cursor)\n", dc.n);
    if (dc.n > 0)
        fprintf(f, "  %-32s %22s %10s\n", "DEVICE", "CURSOR", "PENDING");
    for (size_t i = 0; i < dc.n; i++)
        fprintf(f, "  %-32s %22llu %10llu\n", dc.devs[i].device,
                (unsigned long long)dc.devs[i].cursor, (unsigned long long)dc.devs[i].pending);
out:
    mem_free(dc.devs);
    mem_free(gs.v);
    mem_free(sp);
    return rc;
}
