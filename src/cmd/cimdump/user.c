/* dump: apps, users, user. */
#include <string.h>

#include "cmd/cimdump/dump_int.h"
#include "actors/conv.h"
#include "actors/group.h"
#include "core/mem.h"

typedef struct count {
    uint64_t n;
} count_t;

static int on_count_user(void *ctx, const char *user, uint64_t created_ms)
{
    (void)user;
    (void)created_ms;
    ((count_t *)ctx)->n++;
    return 0;
}

static int on_app(void *ctx, const char *app, uint64_t created_ms)
{
    dump_t *d = ctx;
    count_t users = {0};
    char t[32];
    int rc;

    if ((rc = kv_user_each(d->txn, app, on_count_user, &users)) < 0)
        return rc;
    dump__fmt_time(t, created_ms);
    if (d->json) {
        jw_open(&d->w, NULL, '{');
        jw_str(&d->w, "app", app);
        jw_u64(&d->w, "created_ms", created_ms);
        jw_str(&d->w, "created", t);
        jw_u64(&d->w, "users", users.n);
        jw_close(&d->w, '}');
    } else {
        fprintf(d->out, "%-24s %-26s %10llu\n", app, t, (unsigned long long)users.n);
    }
    return 0;
}

int dump__cmd_apps(dump_t *d)
{
    int rc;

    if (d->json) {
        jw_open(&d->w, NULL, '{');
        jw_open(&d->w, "apps", '[');
    } else {
        fprintf(d->out, "%-24s %-26s %10s\n", "APP", "CREATED", "USERS");
    }
    if ((rc = kv_app_each(d->txn, on_app, d)) < 0)
        return dump__fail_rc(d, "cannot list the apps", rc);
    if (d->json) {
        jw_close(&d->w, ']');
        jw_close(&d->w, '}');
    }
    return 0;
}

typedef struct userctx {
    dump_t *d;
    uint64_t n;
} userctx_t;

static int on_user(void *ctx, const char *user, uint64_t created_ms)
{
    userctx_t *u = ctx;
    dump_t *d = u->d;
    uint8_t ukey[KV_UKEY_MAX];
    uint64_t count = 0;
    char t[32];
    int rc;

    if ((rc = kv_timeline_count(d->txn, ukey, kv_ukey(ukey, d->app, user), &count)) < 0)
        return rc;
    dump__fmt_time(t, created_ms);
    u->n++;
    if (d->json) {
        jw_open(&d->w, NULL, '{');
        jw_str(&d->w, "user", user);
        jw_u64(&d->w, "created_ms", created_ms);
        jw_str(&d->w, "created", t);
        jw_u64(&d->w, "timeline", count);
        jw_close(&d->w, '}');
    } else {
        fprintf(d->out, "%-32s %-26s %10llu\n", user, t, (unsigned long long)count);
    }
    return 0;
}

int dump__cmd_users(dump_t *d)
{
    userctx_t u = {d, 0};
    int rc;

    if ((rc = dump__need_app(d)) < 0)
        return rc;
    if (d->json) {
        jw_open(&d->w, NULL, '{');
        jw_str(&d->w, "app", d->app);
        jw_open(&d->w, "users", '[');
    } else {
        fprintf(d->out, "%-32s %-26s %10s\n", "USER", "CREATED", "TIMELINE");
    }
    if ((rc = kv_user_each(d->txn, d->app, on_user, &u)) < 0)
        return dump__fail_rc(d, "cannot list the users", rc);
    if (d->json) {
        jw_close(&d->w, ']');
        jw_u64(&d->w, "count", u.n);
        jw_close(&d->w, '}');
    } else {
        fprintf(d->out, "(%llu users in app %s)\n", (unsigned long long)u.n, d->app);
    }
    return 0;
}

/* ---- user ---- */

typedef struct devctx {
    dump_t *d;
    const uint8_t *ukey;
    size_t klen;
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
    if ((rc = kv_timeline_page(dc->d->txn, dc->ukey, dc->klen, id, &none, 0, &got, &pending)) < 0)
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
    g->v[g->n++] = group_get64(sfx);
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
    count_t contacts = {0}, blocks = {0};
    FILE *f = d->out;
    jw_t *w = &d->w;
    char t[32];
    int rc;

    if ((rc = dump__need_user(d, user, &created)) < 0)
        return rc;
    klen = kv_ukey(ukey, d->app, user);
    plen = conv_uprefix(pfx, d->app, user); /* user key NUL: also the prefix elsewhere */
    dc.d = d;
    dc.ukey = ukey;
    dc.klen = klen;
    if ((rc = kv_timeline_count(d->txn, ukey, klen, &count)) < 0 ||
        (rc = kv_timeline_page(d->txn, ukey, klen, 0, &first, 1, &got, &rest)) < 0 ||
        (rc = kv_timeline_last(d->txn, ukey, klen, &last)) < 0 ||
        (rc = kv_cursor_each(d->txn, ukey, klen, on_device, &dc)) < 0 ||
        (rc = kv_rec_scan(d->txn, KV_DB_CONVS, pfx, plen, on_conv_sum, &cs)) < 0 ||
        (rc = kv_rec_scan(d->txn, KV_DB_UGROUPS, pfx, plen, on_ugroup, &gs)) < 0 ||
        (rc = kv_rec_scan(d->txn, KV_DB_CONTACTS, pfx, plen, on_count_rec, &contacts)) < 0 ||
        (rc = kv_rec_scan(d->txn, KV_DB_BLOCKS, pfx, plen, on_count_rec, &blocks)) < 0) {
        dump__fail_rc(d, "cannot read the user", rc);
        goto out;
    }
    if (got == 0)
        first = 0;
    dump__fmt_time(t, created);
    if (d->json) {
        jw_open(w, NULL, '{');
        jw_str(w, "app", d->app);
        jw_str(w, "user", user);
        jw_u64(w, "created_ms", created);
        jw_str(w, "created", t);
        jw_open(w, "timeline", '{');
        jw_u64(w, "count", count);
        jw_id_or_null(w, "first", first);
        jw_id_or_null(w, "last", last);
        jw_close(w, '}');
        jw_open(w, "devices", '[');
        for (size_t i = 0; i < dc.n; i++) {
            jw_open(w, NULL, '{');
            jw_str(w, "device", dc.devs[i].device);
            jw_id(w, "cursor", dc.devs[i].cursor);
            jw_u64(w, "pending", dc.devs[i].pending);
            jw_close(w, '}');
        }
        jw_close(w, ']');
        jw_u64(w, "conversations", cs.n);
        jw_u64(w, "unread", cs.unread);
        jw_open(w, "groups", '[');
        for (size_t i = 0; i < gs.n; i++) {
            char gid[24];
            snprintf(gid, sizeof(gid), "%llu", (unsigned long long)gs.v[i]);
            jw_str(w, NULL, gid);
        }
        jw_close(w, ']');
        jw_u64(w, "contacts", contacts.n);
        jw_u64(w, "blocked", blocks.n);
        jw_close(w, '}');
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
    return rc;
}
