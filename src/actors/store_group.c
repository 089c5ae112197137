/* store_group: the writes behind groups, READ, RECALL, contacts and blocks (PROTOCOL.md
 * §6). Each op is checked against the data in the writer's order, applied, and answered
 * through op->code/reason; what others must learn is stored and pushed as SYSTEM or RECALL
 * messages, or pushed as EVENTs, after the commit. Store thread only. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "actors/cluster.h"
#include "actors/feed.h"
#include "actors/group.h"
#include "actors/message.h"
#include "actors/store_int.h"
#include "cim.pb.h"
#include "core/be.h"
#include "core/conf.h"
#include "core/frame.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"


static int reject(store_op_t *op, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int reject(store_op_t *op, int code, const char *fmt, ...)
{
    va_list ap;
    op->code = code;
    va_start(ap, fmt);
    vsnprintf(op->reason, sizeof(op->reason), fmt, ap);
    va_end(ap);
    return 0;
}

/* Is @p user (or group) homed on this node? Always, standalone. */
static bool homed_here(const store_t *st, const char *app, const char *user)
{
    const cluster_t *c = st->srv->cluster;
    return !cluster_is_enabled(c) || cluster_home(c, app, user) == cluster_self(c);
}

/* ---- group records ------------------------------------------------------------------ */

int store__group_state(kv_txn_t *txn, const char *app, const char *group_id, uint64_t *gid,
                       bool *alive)
{
    group_t g;
    int rc;
    *alive = false;
    if (group_id_parse(group_id, gid) < 0)
        return RC_ENOTFOUND;
    if ((rc = group_load(txn, app, *gid, &g)) < 0)
        return rc;
    *alive = !g.dismissed;
    return 0;
}

static int member_key(uint8_t *out, const char *app, uint64_t gid, const char *user)
{
    size_t n = group_key(out, app, gid), u = strlen(user);
    memcpy(out + n, user, u);
    return (int)(n + u);
}

static int ugroup_key(uint8_t *out, const char *app, const char *user, uint64_t gid)
{
    size_t n = kv_ukey(out, app, user);
    out[n++] = '\0';
    for (int i = 0; i < 8; i++)
        out[n++] = (uint8_t)(gid >> (56 - 8 * i));
    return (int)n;
}

static int is_member(kv_txn_t *txn, const char *app, uint64_t gid, const char *user,
                     uint64_t *joined)
{
    uint8_t key[GROUP_KEY_MAX + KV_ID_MAX];
    const uint8_t *v;
    size_t vlen;
    int rc = kv_rec_get(txn, KV_DB_MEMBERS, key, (size_t)member_key(key, app, gid, user), &v,
                        &vlen);
    if (rc == 0 && joined != NULL)
        *joined = vlen == 8 ? be64_get(v) : 0;
    return rc;
}

/* @p user joins group @p gid at event @p joined; the user's group list (GROUP_LIST) is
 * its home's to keep. */
static int member_add(store_t *st, kv_txn_t *txn, const char *app, uint64_t gid,
                      const char *user, uint64_t joined)
{
    uint8_t key[GROUP_KEY_MAX + KV_ID_MAX], val[8];
    int rc;
    be64_put(val, joined);
    if ((rc = kv_rec_put(txn, KV_DB_MEMBERS, key, (size_t)member_key(key, app, gid, user), val,
                         8)) < 0 ||
        !homed_here(st, app, user))
        return rc;
    /* the group's messages from the event on are in the user's feed (feed.h) */
    if ((rc = kv_rec_put(txn, KV_DB_UGROUPS, key, (size_t)ugroup_key(key, app, user, gid), NULL,
                         0)) < 0)
        return rc;
    return feed_join(txn, app, user, gid, joined);
}

static int member_del(kv_txn_t *txn, const char *app, uint64_t gid, const char *user)
{
    uint8_t key[GROUP_KEY_MAX + KV_ID_MAX];
    int rc = kv_rec_del(txn, KV_DB_MEMBERS, key, (size_t)member_key(key, app, gid, user));
    if (rc < 0 && rc != RC_ENOTFOUND)
        return rc;
    rc = kv_rec_del(txn, KV_DB_UGROUPS, key, (size_t)ugroup_key(key, app, user, gid));
    return rc == RC_ENOTFOUND ? 0 : rc;
}

/* @p user (homed here: their feed is here) leaves group @p gid at event @p event. */
static int feed_leaves(store_t *st, kv_txn_t *txn, const char *app, const char *user,
                       uint64_t gid, uint64_t event)
{
    return homed_here(st, app, user) ? feed_leave(txn, app, user, gid, event) : 0;
}

/* Mark a user's view of the group as left at event @p left, or as (re)joined at event
 * @p joined (@p left 0): what was said while they were away is not unread. The record is
 * the user's home's (nothing here for a user of another home). */
static int conv_member(store_t *st, kv_txn_t *txn, const char *app, const char *user,
                       const char *group_id, uint64_t left, uint64_t joined)
{
    uint8_t key[CONV_UKEY_MAX];
    size_t klen = conv_ukey(key, app, user, cim_ConvType_GROUP, group_id);
    conv_ent_t *e;
    int rc;

    if (!homed_here(st, app, user))
        return 0;
    if ((rc = store__conv(st, txn, key, klen, true, &e)) < 0)
        return rc;
    e->rec.left_id = left;
    if (joined > e->rec.since_id)
        e->rec.since_id = joined;
    e->dirty = true;
    return 0;
}

/* ---- the SYSTEM message of a group change --------------------------------------------- */

/* A GroupEvent is the body of a SYSTEM message and, like any message body, leaves
 * CONF_MSG_ROOM of the frame to the Message around it: every stored message then fits one
 * PUSH and one SYNC or HISTORY page (PROTOCOL.md §3). */
static size_t event_cap(const store_t *st)
{
    return st->srv->conf->max_body - CONF_MSG_ROOM;
}

/* GroupEvent{kind, actor, users, group}, field by field: GroupEvent.users is bounded (1000)
 * for decoding, and writing it this way tells any list the change made whole. */
static bool event_encode(pb_ostream_t *os, int kind, const char *actor,
                         const store_uid_t *users, size_t nusers, const group_t *g)
{
    cim_Group pb;
    bool ok;

    group_to_pb(g, &pb);
    ok = pb_encode_tag(os, PB_WT_VARINT, cim_GroupEvent_kind_tag) &&
         pb_encode_varint(os, (uint64_t)kind) &&
         pb_encode_tag(os, PB_WT_STRING, cim_GroupEvent_actor_tag) &&
         pb_encode_string(os, (const pb_byte_t *)actor, strlen(actor));
    for (size_t i = 0; ok && i < nusers; i++)
        ok = pb_encode_tag(os, PB_WT_STRING, cim_GroupEvent_users_tag) &&
             pb_encode_string(os, (const pb_byte_t *)users[i], strlen(users[i]));
    return ok && pb_encode_tag(os, PB_WT_STRING, cim_GroupEvent_group_tag) &&
           pb_encode_submessage(os, cim_Group_fields, &pb);
}

/* Does the event of a change naming @p users fit a message? Asked before the change is
 * written, so that a refusal (TOO_LARGE) leaves nothing behind. */
static bool event_fits(const store_t *st, const store_op_t *op, const group_t *g,
                       const store_uid_t *users, size_t nusers)
{
    pb_ostream_t os = PB_OSTREAM_SIZING;
    return event_encode(&os, cim_GroupEventKind_GE_DISMISSED, op->user, users, nusers, g) &&
           os.bytes_written <= event_cap(st);
}

/* Store and push GroupEvent{kind, actor, users, group} as a SYSTEM message from @p actor
 * to @p rcpt (the members after the change and the users it removed). */
static int group_event(store_t *st, kv_txn_t *txn, store_op_t *op, const group_t *g,
                       int kind, const store_uid_t *users, size_t nusers,
                       const store_uid_t *rcpt, size_t nrcpt, uint64_t *event_id)
{
    size_t cap = event_cap(st);
    uint8_t *buf = mem_alloc(cap);
    pb_ostream_t os = pb_ostream_from_buffer(buf, cap);
    char gidtxt[24];
    smsg_t m;
    uint64_t t;
    int rc;

    if (!event_encode(&os, kind, op->user, users, nusers, g)) {
        mem_free(buf);
        LOG_ERROR("store: a GroupEvent of %zu users does not fit a message: %s", nusers,
                  PB_GET_ERROR(&os));
        return RC_ETOOBIG;
    }
    snprintf(gidtxt, sizeof(gidtxt), "%llu", (unsigned long long)g->gid);
    memset(&m, 0, sizeof(m));
    m.app = op->app;
    m.from = op->user;
    m.from_kind = op->from_kind;
    m.conv_type = cim_ConvType_GROUP;
    m.to = gidtxt;
    m.msg_type = cim_MsgType_SYSTEM;
    m.cmid = "";
    m.body = buf;
    m.body_len = os.bytes_written;
    m.users = rcpt;
    m.nusers = nrcpt;
    m.index = true;
    m.skip_sid = 0; /* the actor's own device learns it too, in order with its timeline */
    rc = store__put_message(st, txn, &m, event_id, &t, &op->wait_homes);
    op->wait_id = *event_id; /* in a cluster: answered once it is applied */
    mem_free(buf);
    return rc;
}

/* Users of @p a not in @p b (both small lists). */
static size_t minus(const store_uid_t *a, size_t na, const store_uid_t *b, size_t nb,
                    store_uid_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < na; i++) {
        bool found = false;
        for (size_t j = 0; j < nb && !found; j++)
            found = strcmp(a[i], b[j]) == 0;
        for (size_t j = 0; j < n && !found; j++)
            found = strcmp(a[i], out[j]) == 0;
        if (!found)
            memcpy(out[n++], a[i], sizeof(store_uid_t));
    }
    return n;
}

static void answer_group(store_op_t *op, const group_t *g)
{
    cim_Group pb = cim_Group_init_zero;
    pb_ostream_t os = pb_ostream_from_buffer(op->group, sizeof(op->group));
    group_to_pb(g, &pb);
    if (pb_encode(&os, cim_Group_fields, &pb)) {
        op->has_group = true;
        op->group_len = os.bytes_written;
    }
}

/* Do the users named exist? Those of other homes were asked there first (op->xusers). */
static int users_exist(store_t *st, kv_txn_t *txn, store_op_t *op, const char *const *names,
                       size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = op->xusers && !homed_here(st, op->app, names[i])
                     ? 0
                     : kv_user_get(txn, op->app, names[i], NULL);
        if (rc == RC_ENOTFOUND) {
            reject(op, cim_Code_NOT_FOUND, "unknown user '%s'", names[i]);
            return 1;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- group ops ------------------------------------------------------------------------ */

/* A new group id. In a cluster the group's home is the node that creates it (the creator's
 * home): ids are drawn until one is homed here (1 in N on average). */
static int new_gid(store_t *st, kv_txn_t *txn, const char *app, uint64_t *gid)
{
    char text[24];
    int rc;

    do {
        if ((rc = kv_counter_next(txn, "next_gid", GROUP_ID_FIRST, gid)) < 0)
            return rc;
        snprintf(text, sizeof(text), "%llu", (unsigned long long)*gid);
    } while (cluster_is_enabled(st->srv->cluster) && !homed_here(st, app, text));
    return 0;
}

static int op_create(store_t *st, kv_txn_t *txn, store_op_t *op)
{
    store_uid_t *all = mem_alloc((op->nusers + 1) * sizeof(*all));
    const char **names = mem_alloc((op->nusers + 1) * sizeof(*names));
    size_t n;
    group_t g;
    uint64_t event;
    int rc;

    snprintf(all[0], sizeof(all[0]), "%s", op->user);
    n = 1 + minus((const store_uid_t *)op->users, op->nusers, (const store_uid_t *)all, 1,
                  all + 1);
    for (size_t i = 0; i < n; i++)
        names[i] = all[i];
    if ((rc = users_exist(st, txn, op, names, n)) != 0)
        goto out;
    if (n > st->srv->conf->max_group_size) {
        reject(op, cim_Code_TOO_LARGE, "more members than max_group_size%s", "");
        goto out;
    }
    memset(&g, 0, sizeof(g));
    g.gid = UINT64_MAX; /* sized at its widest until the id is drawn */
    snprintf(g.name, sizeof(g.name), "%s", op->name);
    snprintf(g.owner, sizeof(g.owner), "%s", op->user);
    g.created_ms = snowflake_now_ms();
    g.open = op->open;
    g.member_count = (uint32_t)n;
    if (!event_fits(st, op, &g, all + 1, n - 1)) {
        reject(op, cim_Code_TOO_LARGE, "too many members to announce in one message: create "
               "the group with fewer and add the rest with GROUP_ADD%s", "");
        goto out;
    }
    if ((rc = new_gid(st, txn, op->app, &g.gid)) < 0)
        goto out;
    if ((rc = group_save(txn, op->app, &g)) < 0)
        goto out;
    if ((rc = group_event(st, txn, op, &g, cim_GroupEventKind_GE_CREATED, all + 1, n - 1, all,
                          n, &event)) < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if ((rc = member_add(st, txn, op->app, g.gid, all[i], event)) < 0)
            goto out;
    answer_group(op, &g);
    op->code = cim_Code_OK;
out:
    mem_free(names);
    mem_free(all);
    return rc < 0 ? rc : 0;
}

/* Load a live group named by op->target into @p g, or reject NOT_FOUND. @return 1 when
 * rejected, 0 when loaded, or rc. */
static int load_live(kv_txn_t *txn, store_op_t *op, group_t *g)
{
    uint64_t gid;
    int rc;
    if (group_id_parse(op->target, &gid) < 0) {
        reject(op, cim_Code_NOT_FOUND, "unknown group '%s'", op->target);
        return 1;
    }
    rc = group_load(txn, op->app, gid, g);
    if (rc == RC_ENOTFOUND || (rc == 0 && g->dismissed)) {
        reject(op, cim_Code_NOT_FOUND, rc == 0 ? "group '%s' was dismissed" : "unknown group '%s'",
               op->target);
        return 1;
    }
    return rc;
}

static int op_join(store_t *st, kv_txn_t *txn, store_op_t *op)
{
    store_uid_t *roster = NULL, me;
    size_t n = 0;
    uint64_t event;
    group_t g;
    int rc;

    if ((rc = load_live(txn, op, &g)) != 0)
        return rc < 0 ? rc : 0;
    rc = is_member(txn, op->app, g.gid, op->user, NULL);
    if (rc == 0) {
        answer_group(op, &g);
        op->code = cim_Code_OK; /* already a member: nothing to change */
        return 0;
    }
    if (rc != RC_ENOTFOUND)
        return rc;
    if (!g.open)
        return reject(op, cim_Code_FORBIDDEN, "group '%s' is not open: ask a member to add you",
                      op->target);
    if (g.member_count + 1 > st->srv->conf->max_group_size)
        return reject(op, cim_Code_TOO_LARGE, "group '%s' is full", op->target);
    g.member_count++;
    if ((rc = group_save(txn, op->app, &g)) < 0)
        return rc;
    if ((rc = store__roster(txn, op->app, g.gid, &roster, &n)) < 0)
        return rc;
    roster = mem_realloc(roster, (n + 1) * sizeof(*roster));
    snprintf(roster[n], sizeof(roster[n]), "%s", op->user);
    snprintf(me, sizeof(me), "%s", op->user);
    rc = group_event(st, txn, op, &g, cim_GroupEventKind_GE_JOINED, &me, 1, roster, n + 1,
                     &event);
    if (rc == 0)
        rc = member_add(st, txn, op->app, g.gid, op->user, event);
    if (rc == 0)
        rc = conv_member(st, txn, op->app, op->user, op->target, 0, event);
    mem_free(roster);
    if (rc < 0)
        return rc;
    answer_group(op, &g);
    op->code = cim_Code_OK;
    return 0;
}

static int op_add(store_t *st, kv_txn_t *txn, store_op_t *op)
{
    store_uid_t *roster = NULL, *fresh = NULL;
    const char **names = NULL;
    size_t n = 0, nf;
    uint64_t event;
    group_t g;
    int rc;

    if ((rc = load_live(txn, op, &g)) != 0)
        return rc < 0 ? rc : 0;
    if ((rc = is_member(txn, op->app, g.gid, op->user, NULL)) == RC_ENOTFOUND)
        return reject(op, cim_Code_NOT_MEMBER, "you are not a member of group '%s'",
                      op->target);
    if (rc < 0)
        return rc;
    if ((rc = store__roster(txn, op->app, g.gid, &roster, &n)) < 0)
        return rc;
    fresh = mem_alloc((op->nusers + 1) * sizeof(*fresh));
    nf = minus((const store_uid_t *)op->users, op->nusers, roster, n, fresh);
    names = mem_alloc((nf + 1) * sizeof(*names));
    for (size_t i = 0; i < nf; i++)
        names[i] = fresh[i];
    if ((rc = users_exist(st, txn, op, names, nf)) != 0)
        goto out;
    op->code = cim_Code_OK;
    if (nf == 0)
        goto out; /* all already members */
    if (g.member_count + nf > st->srv->conf->max_group_size) {
        reject(op, cim_Code_TOO_LARGE, "group '%s' would exceed max_group_size", op->target);
        goto out;
    }
    g.member_count += (uint32_t)nf;
    if (!event_fits(st, op, &g, fresh, nf)) {
        reject(op, cim_Code_TOO_LARGE, "too many users to announce in one message: add fewer "
               "at a time%s", "");
        goto out;
    }
    if ((rc = group_save(txn, op->app, &g)) < 0)
        goto out;
    roster = mem_realloc(roster, (n + nf) * sizeof(*roster));
    memcpy(roster + n, fresh, nf * sizeof(*fresh));
    if ((rc = group_event(st, txn, op, &g, cim_GroupEventKind_GE_ADDED, fresh, nf, roster,
                          n + nf, &event)) < 0)
        goto out;
    for (size_t i = 0; i < nf && rc == 0; i++) {
        rc = member_add(st, txn, op->app, g.gid, fresh[i], event);
        if (rc == 0)
            rc = conv_member(st, txn, op->app, fresh[i], op->target, 0, event);
    }
out:
    mem_free(names);
    mem_free(fresh);
    mem_free(roster);
    return rc < 0 ? rc : 0;
}

/* Remove @p gone from the group (leave, kick, dismiss): the event goes to the members after
 * the change and to the removed users; their conversations are marked left. */
static int remove_members(store_t *st, kv_txn_t *txn, store_op_t *op, group_t *g, int kind,
                          const store_uid_t *gone, size_t ngone, const store_uid_t *roster,
                          size_t n)
{
    uint64_t event;
    int rc;
    for (size_t i = 0; i < ngone; i++)
        if ((rc = member_del(txn, op->app, g->gid, gone[i])) < 0)
            return rc;
    g->member_count = g->member_count >= ngone ? g->member_count - (uint32_t)ngone : 0;
    if ((rc = group_save(txn, op->app, g)) < 0)
        return rc;
    /* roster holds everyone before the change: remaining members and the removed. A
     * dismissal removes everyone and says so by its kind: it lists no users, so that the
     * biggest group's end still fits one message. */
    if ((rc = group_event(st, txn, op, g, kind, kind == cim_GroupEventKind_GE_DISMISSED ? NULL : gone,
                          kind == cim_GroupEventKind_GE_DISMISSED ? 0 : ngone, roster, n,
                          &event)) < 0)
        return rc;
    for (size_t i = 0; i < ngone; i++)
        if ((rc = conv_member(st, txn, op->app, gone[i], op->target, event, 0)) < 0 ||
            (rc = feed_leaves(st, txn, op->app, gone[i], g->gid, event)) < 0)
            return rc;
    return 0;
}

/* The longest-standing member (smallest join event; ties in id order), or "" when none. */
typedef struct eldest {
    char user[KV_ID_MAX + 1];
    uint64_t joined;
    const char *skip;
} eldest_t;

static int find_eldest(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val,
                       size_t vlen)
{
    eldest_t *e = ctx;
    uint64_t j = vlen == 8 ? be64_get(val) : 0;
    if (slen == 0 || slen > KV_ID_MAX ||
        (strlen(e->skip) == slen && memcmp(sfx, e->skip, slen) == 0))
        return 0;
    if (e->user[0] == '\0' || j < e->joined) {
        memcpy(e->user, sfx, slen);
        e->user[slen] = '\0';
        e->joined = j;
    }
    return 0;
}

static int op_leave(store_t *st, kv_txn_t *txn, store_op_t *op)
{
    store_uid_t *roster = NULL, me;
    uint8_t prefix[GROUP_KEY_MAX];
    eldest_t e;
    size_t n = 0;
    group_t g;
    int rc;

    if ((rc = load_live(txn, op, &g)) != 0)
        return rc < 0 ? rc : 0;
    if ((rc = is_member(txn, op->app, g.gid, op->user, NULL)) == RC_ENOTFOUND)
        return reject(op, cim_Code_NOT_MEMBER, "you are not a member of group '%s'",
                      op->target);
    if (rc < 0)
        return rc;
    if ((rc = store__roster(txn, op->app, g.gid, &roster, &n)) < 0)
        return rc;
    if (strcmp(g.owner, op->user) == 0) {
        /* The owner hands the group to the longest-standing member; alone, it ends. */
        memset(&e, 0, sizeof(e));
        e.skip = op->user;
        rc = kv_rec_scan(txn, KV_DB_MEMBERS, prefix, group_key(prefix, op->app, g.gid),
                         find_eldest, &e);
        if (rc < 0)
            goto out;
        if (e.user[0] != '\0')
            snprintf(g.owner, sizeof(g.owner), "%s", e.user);
        else
            g.dismissed = true;
    }
    snprintf(me, sizeof(me), "%s", op->user);
    rc = remove_members(st, txn, op, &g, cim_GroupEventKind_GE_LEFT, &me, 1, roster, n);
    op->code = cim_Code_OK;
out:
    mem_free(roster);
    return rc < 0 ? rc : 0;
}

static int op_kick(store_t *st, kv_txn_t *txn, store_op_t *op)
{
    store_uid_t *roster = NULL, *gone = NULL, *stay = NULL;
    size_t n = 0, ngone = 0, nstay;
    group_t g;
    int rc;

    if ((rc = load_live(txn, op, &g)) != 0)
        return rc < 0 ? rc : 0;
    if (strcmp(g.owner, op->user) != 0)
        return reject(op, cim_Code_FORBIDDEN, "only the owner of group '%s' may kick",
                      op->target);
    for (uint32_t i = 0; i < op->nusers; i++)
        if (strcmp(op->users[i], op->user) == 0)
            return reject(op, cim_Code_BAD_REQUEST, "the owner cannot kick themselves%s", "");
    if ((rc = store__roster(txn, op->app, g.gid, &roster, &n)) < 0)
        return rc;
    /* Only members can be kicked: the others are ignored. */
    stay = mem_alloc((n + 1) * sizeof(*stay));
    gone = mem_alloc((n + 1) * sizeof(*gone));
    nstay = minus(roster, n, (const store_uid_t *)op->users, op->nusers, stay);
    ngone = minus(roster, n, stay, nstay, gone);
    op->code = cim_Code_OK;
    if (ngone > 0) {
        group_t after = g;
        after.member_count = g.member_count >= ngone ? g.member_count - (uint32_t)ngone : 0;
        if (!event_fits(st, op, &after, gone, ngone))
            reject(op, cim_Code_TOO_LARGE, "too many users to announce in one message: kick "
                   "fewer at a time%s", "");
        else
            rc = remove_members(st, txn, op, &g, cim_GroupEventKind_GE_KICKED, gone, ngone,
                                roster, n);
    }
    mem_free(stay);
    mem_free(gone);
    mem_free(roster);
    return rc < 0 ? rc : 0;
}

static int op_dismiss(store_t *st, kv_txn_t *txn, store_op_t *op)
{
    store_uid_t *roster = NULL;
    size_t n = 0;
    group_t g;
    int rc;

    if ((rc = load_live(txn, op, &g)) != 0)
        return rc < 0 ? rc : 0;
    if (strcmp(g.owner, op->user) != 0)
        return reject(op, cim_Code_FORBIDDEN, "only the owner may dismiss group '%s'",
                      op->target);
    if ((rc = store__roster(txn, op->app, g.gid, &roster, &n)) < 0)
        return rc;
    g.dismissed = true;
    rc = remove_members(st, txn, op, &g, cim_GroupEventKind_GE_DISMISSED, roster, n, roster, n);
    mem_free(roster);
    op->code = cim_Code_OK;
    return rc < 0 ? rc : 0;
}

/* ---- READ ----------------------------------------------------------------------------- */

static blob_t *encode_event(const cim_Event *ev)
{
    uint8_t buf[cim_Event_size];
    pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof(buf));
    blob_t *b;
    if (!pb_encode(&os, cim_Event_fields, ev))
        return NULL;
    b = blob_new(os.bytes_written);
    memcpy(b->data, buf, os.bytes_written);
    return b;
}

static int op_read(store_t *st, kv_txn_t *txn, store_op_t *op)
{
    uint8_t key[CONV_UKEY_MAX];
    size_t klen = conv_ukey(key, op->app, op->user, op->conv_type, op->target);
    cim_Event ev = cim_Event_init_zero;
    store_uid_t one;
    conv_ent_t *e;
    conv_view_t view;
    uint64_t up_to = op->msg_id;
    blob_t *b;
    int rc;

    if ((rc = store__conv(st, txn, key, klen, false, &e)) < 0)
        return rc;
    if (e == NULL)
        return reject(op, cim_Code_NOT_FOUND, "no conversation with '%s'", op->target);
    if ((rc = conv_view(txn, op->app, op->user, op->conv_type, op->target, &e->rec, &view)) < 0)
        return rc;
    op->code = cim_Code_OK;
    if (up_to == 0 || up_to > view.last_id)
        up_to = view.last_id; /* 0 reads everything; the cursor never passes the last message */
    if (up_to <= view.read_up_to)
        return 0; /* never moves back (one's own last message counts as read) */
    e->rec.read_up_to = up_to; /* unread is derived from it */
    e->rec.updated_ms = snowflake_now_ms();
    e->dirty = true;

    /* EVENT{READ}: to the reader's other devices with the conversation as they see it,
     * and in a DIRECT conversation to the peer, for whom the conversation is the reader. */
    ev.kind = cim_EventKind_READ;
    ev.conv_type = (cim_ConvType)op->conv_type;
    snprintf(ev.user, sizeof(ev.user), "%s", op->user);
    ev.up_to_msg_id = up_to;
    ev.time_ms = snowflake_now_ms();
    snprintf(ev.peer, sizeof(ev.peer), "%s", op->target);
    if ((b = encode_event(&ev)) == NULL)
        return RC_EINVAL;
    snprintf(one, sizeof(one), "%s", op->user);
    store__fanout(st, b, FT_EVENT, op->app, &one, 1, op->sid);
    blob_unref(b);
    if (op->conv_type == cim_ConvType_DIRECT && strcmp(op->target, op->user) != 0) {
        snprintf(ev.peer, sizeof(ev.peer), "%s", op->user);
        if ((b = encode_event(&ev)) == NULL)
            return RC_EINVAL;
        snprintf(one, sizeof(one), "%s", op->target);
        store__fanout(st, b, FT_EVENT, op->app, &one, 1, 0);
        blob_unref(b);
        /* a peer of another home: its home records it and tells the peer's sessions */
        if (cluster_is_enabled(st->srv->cluster) &&
            cluster_home(st->srv->cluster, op->app, op->target) !=
                cluster_self(st->srv->cluster))
            cluster_xhome_read(st->srv->cluster, op->app, op->user, op->target, up_to);
    }
    return 0;
}

/* The peer's home (a cluster): op->user, of another home, read up to op->msg_id. Its
 * record here is what op->target's CONV_LIST reads as peer_read_up_to. */
static int op_peer_read(store_t *st, kv_txn_t *txn, store_op_t *op)
{
    uint8_t key[CONV_UKEY_MAX];
    size_t klen = conv_ukey(key, op->app, op->user, cim_ConvType_DIRECT, op->target);
    cim_Event ev = cim_Event_init_zero;
    store_uid_t one;
    conv_ent_t *e;
    blob_t *b;
    int rc;

    op->code = cim_Code_OK;
    if ((rc = store__conv(st, txn, key, klen, true, &e)) < 0)
        return rc;
    if (op->msg_id <= e->rec.read_up_to)
        return 0; /* never moves back (a repeat, or out of order) */
    e->rec.read_up_to = op->msg_id;
    e->rec.updated_ms = snowflake_now_ms();
    e->dirty = true;
    ev.kind = cim_EventKind_READ;
    ev.conv_type = cim_ConvType_DIRECT;
    snprintf(ev.user, sizeof(ev.user), "%s", op->user);
    snprintf(ev.peer, sizeof(ev.peer), "%s", op->user);
    ev.up_to_msg_id = op->msg_id;
    ev.time_ms = snowflake_now_ms();
    if ((b = encode_event(&ev)) == NULL)
        return RC_EINVAL;
    snprintf(one, sizeof(one), "%s", op->target);
    store__fanout(st, b, FT_EVENT, op->app, &one, 1, 0);
    blob_unref(b);
    return 0;
}

/* ---- RECALL --------------------------------------------------------------------------- */

static bool no_body(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    (void)os;
    (void)f;
    (void)arg;
    return true; /* erased */
}

/* Erase the body of record @p id (@p m: its head, @p len: its size) and flag it: every
 * reader (HISTORY, SYNC, CONV_LIST) sees it RECALLED from now on. */
static int erase(kv_txn_t *txn, uint64_t id, cim_Message *m, size_t len)
{
    uint8_t *buf = mem_alloc(len + 16); /* without its body the record only shrinks */
    pb_ostream_t os = pb_ostream_from_buffer(buf, len + 16);
    int rc;

    m->flags |= 1u;
    m->body.funcs.encode = no_body;
    /* an id and time its key implies stay out, as message_put keeps records (message.h) */
    if (m->msg_id == id && m->time_ms == snowflake_time_ms(id))
        m->msg_id = m->time_ms = 0;
    rc = pb_encode(&os, cim_Message_fields, m) ? message_replace(txn, id, buf, os.bytes_written)
                                               : RC_EINVAL;
    mem_free(buf);
    return rc;
}

static int op_recall(store_t *st, kv_txn_t *txn, store_op_t *op)
{
    uint8_t evbuf[cim_RecallEvent_size];
    message_rec_t rec;
    cim_Message m = cim_Message_init_zero;
    cim_RecallEvent re = cim_RecallEvent_init_zero;
    store_uid_t pair[2], *roster = NULL, *users = pair;
    size_t nusers = 0;
    pb_ostream_t os;
    uint64_t gid, id, t;
    bool alive;
    smsg_t sm;
    int rc;

    /* Only messages in the asker's own timeline exist for them (ids are global; apps and
     * strangers must not learn anything from a probe). */
    rc = feed_has(txn, op->app, op->user, op->msg_id);
    if (rc == 0)
        rc = message_get(txn, op->msg_id, &rec);
    if (rc == RC_ENOTFOUND)
        return reject(op, cim_Code_NOT_FOUND, "no such message%s", "");
    if (rc < 0)
        return rc;
    if (!message_rec_decode_head(&rec, &m)) /* its time too: the recall window */
        return RC_ESTORE;
    if (strcmp(m.from, op->user) != 0)
        return reject(op, cim_Code_FORBIDDEN, "only the sender may recall a message%s", "");
    if (m.msg_type == cim_MsgType_SYSTEM || m.msg_type == cim_MsgType_RECALL)
        return reject(op, cim_Code_BAD_REQUEST, "this kind of message cannot be recalled%s",
                      "");
    op->code = cim_Code_OK;
    if (m.flags & 1u)
        return 0; /* already recalled */
    if (snowflake_now_ms() > m.time_ms + (uint64_t)st->srv->conf->recall_window_s * 1000)
        return reject(op, cim_Code_RECALL_WINDOW_PASSED, "the recall window has passed%s", "");

    if ((rc = erase(txn, op->msg_id, &m, message_rec_len(&rec))) < 0)
        return rc;

    /* A RECALL message to every participant's timeline, pushed like any message. */
    if (m.conv_type == cim_ConvType_GROUP) {
        if ((rc = store__group_state(txn, op->app, m.to, &gid, &alive)) < 0 &&
            rc != RC_ENOTFOUND)
            return rc;
        if (rc == 0 && (rc = store__roster(txn, op->app, gid, &roster, &nusers)) < 0)
            return rc;
        users = roster;
        /* the recaller always learns it, even after leaving */
        roster = mem_realloc(roster, (nusers + 1) * sizeof(*roster));
        users = roster;
        store_uid_t me;
        snprintf(me, sizeof(me), "%s", op->user);
        nusers += minus(&me, 1, roster, nusers, roster + nusers);
    } else {
        snprintf(pair[0], sizeof(pair[0]), "%s", m.from);
        snprintf(pair[1], sizeof(pair[1]), "%s", m.to);
        nusers = strcmp(m.from, m.to) == 0 ? 1 : 2;
    }
    re.msg_id = op->msg_id;
    snprintf(re.by, sizeof(re.by), "%s", op->user);
    os = pb_ostream_from_buffer(evbuf, sizeof(evbuf));
    if (!pb_encode(&os, cim_RecallEvent_fields, &re)) {
        mem_free(roster);
        return RC_EINVAL;
    }
    memset(&sm, 0, sizeof(sm));
    sm.app = op->app;
    sm.from = op->user;
    sm.from_kind = op->from_kind;
    sm.conv_type = (uint8_t)m.conv_type;
    sm.to = m.to;
    sm.msg_type = cim_MsgType_RECALL;
    sm.cmid = "";
    sm.body = evbuf;
    sm.body_len = os.bytes_written;
    sm.users = users;
    sm.nusers = nusers;
    sm.index = false; /* history keeps the original, flagged */
    sm.skip_sid = op->sid;
    rc = store__put_message(st, txn, &sm, &id, &t, &op->wait_homes);
    op->wait_id = id;
    mem_free(roster);
    return rc;
}

/* ---- another home's changes (a cluster) ------------------------------------------------ */

/* Add (@p add) or remove @p user in this home's copy of group @p gid, changed by event
 * @p event; the group list and conversation of a user homed here follow. */
static int mirror_member(store_t *st, kv_txn_t *txn, const char *app, const char *group_id,
                         uint64_t gid, const char *user, bool add, uint64_t event)
{
    int rc = add ? member_add(st, txn, app, gid, user, event) : member_del(txn, app, gid, user);

    if (rc == 0 && !add)
        rc = feed_leaves(st, txn, app, user, gid, event);
    return rc < 0 ? rc : conv_member(st, txn, app, user, group_id, add ? 0 : event,
                                     add ? event : 0);
}

/* A GroupEvent of a group homed elsewhere (its home changed the group at commit): this
 * home's copy — the group's record and members, which GROUP_MEMBERS, GROUP_LIST, HISTORY
 * and the worker's checks read here — and its members' group lists and conversations
 * follow it, in id order with everything else (the merge). */
static int mirror_group(store_t *st, kv_txn_t *txn, const store_apply_t *a, const uint8_t *body,
                        size_t blen)
{
    cim_GroupEvent *ev = mem_calloc(sizeof(*ev));
    pb_istream_t is = pb_istream_from_buffer(body, blen);
    store_uid_t *roster = NULL;
    size_t n = 0;
    bool add;
    group_t g;
    int rc = 0;

    memset(&g, 0, sizeof(g));
    if (group_id_parse(a->to, &g.gid) < 0 || !pb_decode(&is, cim_GroupEvent_fields, ev) ||
        !ev->has_group) {
        LOG_RL(LOG_LVL_ERROR, "store: group event %llu of group '%s' is unreadable: this "
                              "home's copy of the group is not changed",
               (unsigned long long)a->id, a->to);
        goto out;
    }
    snprintf(g.name, sizeof(g.name), "%s", ev->group.name);
    snprintf(g.owner, sizeof(g.owner), "%s", ev->group.owner);
    g.created_ms = ev->group.created_ms;
    g.member_count = ev->group.member_count;
    g.open = ev->group.open;
    /* the owner alone leaving ends the group too (op_leave) */
    g.dismissed = ev->kind == cim_GroupEventKind_GE_DISMISSED || g.member_count == 0;
    if ((rc = group_save(txn, a->app, &g)) < 0)
        goto out;
    add = ev->kind == cim_GroupEventKind_GE_CREATED || ev->kind == cim_GroupEventKind_GE_JOINED ||
          ev->kind == cim_GroupEventKind_GE_ADDED;
    if (ev->kind == cim_GroupEventKind_GE_CREATED &&
        (rc = mirror_member(st, txn, a->app, a->to, g.gid, ev->actor, true, a->id)) < 0)
        goto out;
    for (pb_size_t i = 0; i < ev->users_count && rc == 0; i++)
        rc = mirror_member(st, txn, a->app, a->to, g.gid, ev->users[i], add, a->id);
    if (rc == 0 && g.dismissed && (rc = store__roster(txn, a->app, g.gid, &roster, &n)) == 0)
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = mirror_member(st, txn, a->app, a->to, g.gid, roster[i], false, a->id);
out:
    mem_free(roster);
    mem_free(ev);
    return rc;
}

/* A RECALL of another home: the recalled record is erased here too. */
static int mirror_recall(kv_txn_t *txn, const store_apply_t *a, const uint8_t *body, size_t blen)
{
    cim_RecallEvent re = cim_RecallEvent_init_zero;
    cim_Message m = cim_Message_init_zero;
    pb_istream_t is = pb_istream_from_buffer(body, blen);
    const uint8_t *rec;
    size_t len;
    int rc;

    if (!pb_decode(&is, cim_RecallEvent_fields, &re)) {
        LOG_RL(LOG_LVL_ERROR, "store: recall %llu is unreadable: nothing erased here",
               (unsigned long long)a->id);
        return 0;
    }
    rc = kv_msg_get(txn, re.msg_id, &rec, &len);
    if (rc == RC_ENOTFOUND)
        return 0; /* never here (or removed by retention) */
    if (rc < 0)
        return rc;
    if (!message_decode_head(rec, len, &m) || strcmp(m.from, re.by) != 0 || (m.flags & 1u))
        return 0; /* only its sender recalls; already erased */
    return erase(txn, re.msg_id, &m, len);
}

int store__mirror(store_t *st, kv_txn_t *txn, const store_apply_t *a)
{
    cim_Message m = cim_Message_init_zero;
    const uint8_t *body = NULL;
    size_t blen = 0;

    if (a->msg_type != cim_MsgType_RECALL &&
        (a->msg_type != cim_MsgType_SYSTEM || a->conv_type != cim_ConvType_GROUP ||
         homed_here(st, a->app, a->to)))
        return 0;
    if (!message_decode(a->rec, a->rec_len, &m, &body, &blen)) {
        LOG_RL(LOG_LVL_ERROR, "store: message %llu is unreadable", (unsigned long long)a->id);
        return 0;
    }
    if (a->msg_type == cim_MsgType_RECALL)
        return mirror_recall(txn, a, body, blen);
    /* a group's event has no client_msg_id; the admin API's SYSTEM messages always have one
     * (their bodies are the app's, not GroupEvents) */
    return m.client_msg_id[0] == '\0' ? mirror_group(st, txn, a, body, blen) : 0;
}

/* ---- contacts and blocks ---------------------------------------------------------------- */

static size_t pair_key(uint8_t *out, const char *app, const char *a, const char *b)
{
    size_t n = kv_ukey(out, app, a), x = strlen(b);
    out[n++] = '\0';
    memcpy(out + n, b, x);
    return n + x;
}

static int op_contacts(store_t *st, kv_txn_t *txn, store_op_t *op)
{
    uint8_t key[2 * KV_UKEY_MAX], rkey[2 * KV_UKEY_MAX];
    size_t klen = pair_key(key, op->app, op->user, op->target);
    size_t rlen = pair_key(rkey, op->app, op->target, op->user);
    int db = op->type == FT_BLOCK || op->type == FT_UNBLOCK ? KV_DB_BLOCKS : KV_DB_CONTACTS;
    int rc;

    if (strcmp(op->target, op->user) == 0)
        return reject(op, cim_Code_BAD_REQUEST, "that is you%s", "");
    if (op->type == FT_CONTACT_ADD || op->type == FT_BLOCK) {
        const char *name = op->target;
        /* A user of another home is known there, not here (docs/SCALING.md): listing or
         * blocking one that does not exist is harmless, and a block is judged by the
         * blocker's home, this one. */
        if (homed_here(st, op->app, op->target) && (rc = users_exist(st, txn, op, &name, 1)) != 0)
            return rc < 0 ? rc : 0;
        if ((rc = kv_rec_put(txn, db, key, klen, NULL, 0)) < 0)
            return rc;
        /* who lists whom, for presence: app NUL contact NUL owner */
        if (db == KV_DB_CONTACTS &&
            (rc = kv_rec_put(txn, KV_DB_RCONTACTS, rkey, rlen, NULL, 0)) < 0)
            return rc;
    } else {
        rc = kv_rec_del(txn, db, key, klen);
        if (rc == RC_ENOTFOUND)
            return reject(op, cim_Code_NOT_FOUND,
                          db == KV_DB_BLOCKS ? "'%s' is not blocked" : "'%s' is not a contact",
                          op->target);
        if (rc < 0)
            return rc;
        if (db == KV_DB_CONTACTS) {
            rc = kv_rec_del(txn, KV_DB_RCONTACTS, rkey, rlen);
            if (rc < 0 && rc != RC_ENOTFOUND)
                return rc;
        }
    }
    op->code = cim_Code_OK;
    return 0;
}

int store__op(store_t *st, kv_txn_t *txn, store_op_t *op)
{
    op->code = cim_Code_INTERNAL;
    switch (op->type) {
    case FT_GROUP_CREATE:
        return op_create(st, txn, op);
    case FT_GROUP_JOIN:
        return op_join(st, txn, op);
    case FT_GROUP_ADD:
        return op_add(st, txn, op);
    case FT_GROUP_LEAVE:
        return op_leave(st, txn, op);
    case FT_GROUP_KICK:
        return op_kick(st, txn, op);
    case FT_GROUP_DISMISS:
        return op_dismiss(st, txn, op);
    case FT_READ:
        return op_read(st, txn, op);
    case STORE_OP_PEER_READ:
        return op_peer_read(st, txn, op);
    case FT_RECALL:
        return op_recall(st, txn, op);
    case FT_CONTACT_ADD:
    case FT_CONTACT_REMOVE:
    case FT_BLOCK:
    case FT_UNBLOCK:
        return op_contacts(st, txn, op);
    case STORE_OP_USER_PUT:
    case STORE_OP_USER_REVOKE:
        return store__admin_op(txn, op);
    default:
        return reject(op, cim_Code_BAD_REQUEST, "unknown operation%s", "");
    }
}
