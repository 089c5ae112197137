/* dump: groups: groups, group. */
#include <string.h>

#include "cmd/cimdump/dump_int.h"
#include "cmd/cimdump/jv.h"
#include "actors/group.h"
#include "core/be.h"
#include "core/rc.h"
#include "core/snowflake.h"

/* An object holding a group record's fields; the caller may add more. */
static json_t *json_group_rec(const group_t *g)
{
    json_t *o = jv_obj();
    char t[32];

    dump__fmt_time(t, g->created_ms);
    jv_set(o, "group_id", jv_id(g->gid));
    jv_set(o, "name", jv_str(g->name));
    jv_set(o, "owner", jv_str(g->owner));
    jv_set(o, "created_ms", jv_u64(g->created_ms));
    jv_set(o, "created", jv_str(t));
    jv_set(o, "member_count", jv_u64(g->member_count));
    jv_set(o, "open", json_boolean(g->open));
    jv_set(o, "dismissed", json_boolean(g->dismissed));
    return o;
}

typedef struct groupsctx {
    dump_t *d;
    uint64_t n;
    json_t *groups; /* --json: the array, held by d->doc */
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
    if ((rc = group_load(d->txn, d->app, be64_get(sfx), &g)) < 0)
        return rc;
    gc->n++;
    if (d->json) {
        jv_push(gc->groups, json_group_rec(&g));
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
    groupsctx_t gc = {d, 0, NULL};
    int rc;

    if ((rc = dump__need_app(d)) < 0)
        return rc;
    memcpy(pfx, d->app, plen);
    pfx[plen++] = '\0';
    if (d->json) {
        d->doc = jv_obj();
        jv_set(d->doc, "app", jv_str(d->app));
        jv_set(d->doc, "groups", gc.groups = jv_arr());
    } else {
        fprintf(d->out, "%-12s %-20s %8s %-5s %-9s %-24s  %s\n", "GROUP", "OWNER", "MEMBERS",
                "OPEN", "STATE", "CREATED", "NAME");
    }
    if ((rc = kv_rec_scan(d->txn, KV_DB_GROUPS, pfx, plen, on_group, &gc)) < 0)
        return dump__fail_rc(d, "cannot list the groups", rc);
    if (d->json)
        jv_set(d->doc, "count", jv_u64(gc.n));
    else
        fprintf(d->out, "(%llu groups in app %s)\n", (unsigned long long)gc.n, d->app);
    return 0;
}

typedef struct memberctx {
    dump_t *d;
    const char *owner;
    json_t *members; /* --json: the array, held by d->doc */
} memberctx_t;

static int on_member(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val, size_t vlen)
{
    const memberctx_t *mc = ctx;
    dump_t *d = mc->d;
    bool owner = slen == strlen(mc->owner) && memcmp(sfx, mc->owner, slen) == 0;
    uint64_t joined = vlen == 8 ? be64_get(val) : 0;
    char t[32];

    dump__fmt_time(t, joined ? snowflake_time_ms(joined) : 0);
    if (d->json) {
        json_t *o = jv_obj();
        jv_set(o, "user", jv_text(sfx, slen));
        jv_set(o, "owner", json_boolean(owner));
        jv_set(o, "joined", jv_id(joined));
        jv_set(o, "joined_ms", jv_u64(joined ? snowflake_time_ms(joined) : 0));
        jv_push(mc->members, o);
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
    memberctx_t mc = {d, NULL, NULL};
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
        d->doc = json_group_rec(&g);
        jv_set(d->doc, "app", jv_str(d->app));
        jv_set(d->doc, "members", mc.members = jv_arr());
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
    mc.owner = g.owner;
    if ((rc = kv_rec_scan(d->txn, KV_DB_MEMBERS, key, group_key(key, d->app, gid), on_member,
                          &mc)) < 0)
        return dump__fail_rc(d, "cannot list the members", rc);
    return 0;
}
