/* dump: groups: groups, group. */
#include <string.h>

#include "cmd/cimdump/dump_int.h"
#include "actors/group.h"
#include "core/rc.h"
#include "core/snowflake.h"

/* Open an object holding a group record's fields; the caller may add more, then closes it. */
static void json_group_rec(jw_t *w, const char *key, const group_t *g)
{
    char t[32], gid[24];

    dump__fmt_time(t, g->created_ms);
    snprintf(gid, sizeof(gid), "%llu", (unsigned long long)g->gid);
    jw_open(w, key, '{');
    jw_str(w, "group_id", gid);
    jw_str(w, "name", g->name);
    jw_str(w, "owner", g->owner);
    jw_u64(w, "created_ms", g->created_ms);
    jw_str(w, "created", t);
    jw_u64(w, "member_count", g->member_count);
    jw_bool(w, "open", g->open);
    jw_bool(w, "dismissed", g->dismissed);
}

typedef struct groupsctx {
    dump_t *d;
    uint64_t n;
} groupsctx_t;

static int on_group(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val, size_t vlen)
{
    groupsctx_t *gc = ctx;
    dump_t *d = gc->d;
    group_t g;
    char t[32];
    int rc;

    (void)val;
    (void)vlen;
    if (slen != 8)
        return 0; /* not a group key */
    if ((rc = group_load(d->txn, d->app, group_get64(sfx), &g)) < 0)
        return rc;
    gc->n++;
    if (d->json) {
        json_group_rec(&d->w, NULL, &g);
        jw_close(&d->w, '}');
        return 0;
    }
    dump__fmt_time(t, g.created_ms);
    fprintf(d->out, "%-12llu %-20s %8u %-5s %-9s %s  ", (unsigned long long)g.gid, g.owner,
            (unsigned)g.member_count, g.open ? "open" : "-", g.dismissed ? "dismissed" : "-", t);
    dump__text_str(d->out, g.name);
    fputc('\n', d->out);
    return 0;
}

int dump__cmd_groups(dump_t *d)
{
    uint8_t pfx[KV_ID_MAX + 1];
    size_t plen = strlen(d->app);
    groupsctx_t gc = {d, 0};
    int rc;

    if ((rc = dump__need_app(d)) < 0)
        return rc;
    memcpy(pfx, d->app, plen);
    pfx[plen++] = '\0';
    if (d->json) {
        jw_open(&d->w, NULL, '{');
        jw_str(&d->w, "app", d->app);
        jw_open(&d->w, "groups", '[');
    } else {
        fprintf(d->out, "%-12s %-20s %8s %-5s %-9s %-24s  %s\n", "GROUP", "OWNER", "MEMBERS",
                "OPEN", "STATE", "CREATED", "NAME");
    }
    if ((rc = kv_rec_scan(d->txn, KV_DB_GROUPS, pfx, plen, on_group, &gc)) < 0)
        return dump__fail_rc(d, "cannot list the groups", rc);
    if (d->json) {
        jw_close(&d->w, ']');
        jw_u64(&d->w, "count", gc.n);
        jw_close(&d->w, '}');
    } else {
        fprintf(d->out, "(%llu groups in app %s)\n", (unsigned long long)gc.n, d->app);
    }
    return 0;
}

typedef struct memberctx {
    dump_t *d;
    const char *owner;
} memberctx_t;

static int on_member(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val, size_t vlen)
{
    const memberctx_t *mc = ctx;
    dump_t *d = mc->d;
    bool owner = slen == strlen(mc->owner) && memcmp(sfx, mc->owner, slen) == 0;
    uint64_t joined = vlen == 8 ? group_get64(val) : 0;
    char t[32];

    dump__fmt_time(t, joined ? snowflake_time_ms(joined) : 0);
    if (d->json) {
        jw_open(&d->w, NULL, '{');
        jw_strn(&d->w, "user", sfx, slen);
        jw_bool(&d->w, "owner", owner);
        jw_id(&d->w, "joined", joined);
        jw_u64(&d->w, "joined_ms", joined ? snowflake_time_ms(joined) : 0);
        jw_close(&d->w, '}');
    } else {
        fputs("  ", d->out);
        dump__text_put(d->out, sfx, slen, 0);
        fprintf(d->out, "%*s %22llu  %s%s\n", slen < 32 ? (int)(32 - slen) : 0, "",
                (unsigned long long)joined, t, owner ? "  (owner)" : "");
    }
    return 0;
}

int dump__cmd_group(dump_t *d)
{
    uint8_t key[GROUP_KEY_MAX];
    memberctx_t mc;
    uint64_t gid;
    group_t g;
    FILE *f = d->out;
    char t[32];
    int rc;

    if ((rc = dump__need_app(d)) < 0)
        return rc;
    if (group_id_parse(d->pos[0], &gid) < 0) {
        dump__fail("invalid group id '%s' (a decimal number)", d->pos[0]);
        return RC_EINVAL;
    }
    rc = group_load(d->txn, d->app, gid, &g);
    if (rc == RC_ENOTFOUND) {
        if (strcmp(d->app, DEFAULT_APP) == 0)
            dump__fail("unknown group '%s'", d->pos[0]);
        else
            dump__fail("unknown group '%s' in app '%s'", d->pos[0], d->app);
        return rc;
    }
    if (rc < 0)
        return dump__fail_rc(d, "cannot read the group", rc);
    if (d->json) {
        json_group_rec(&d->w, NULL, &g);
        jw_str(&d->w, "app", d->app);
        jw_open(&d->w, "members", '[');
    } else {
        dump__fmt_time(t, g.created_ms);
        fprintf(f, "group          %llu (app %s)\nname           \"", (unsigned long long)g.gid,
                d->app);
        dump__text_str(f, g.name);
        fprintf(f, "\"\nowner          %s\ncreated        %s\nstate          %s%s\n", g.owner, t,
                g.dismissed ? "dismissed" : "live", g.open ? ", open (anyone may join)" : "");
        fprintf(f, "members        %u\n  %-32s %22s  %s\n", (unsigned)g.member_count, "USER",
                "JOINED (EVENT ID)", "JOINED AT");
    }
    mc.d = d;
    mc.owner = g.owner;
    if ((rc = kv_rec_scan(d->txn, KV_DB_MEMBERS, key, group_key(key, d->app, gid), on_member,
                          &mc)) < 0)
        return dump__fail_rc(d, "cannot list the members", rc);
    if (d->json) {
        jw_close(&d->w, ']');
        jw_close(&d->w, '}');
    }
    return 0;
}
