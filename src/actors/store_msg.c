/* store_msg: storing a message into a conversation — the record, the timelines, the
 * conversation index and state — and SEND, direct and to groups. Store thread only. */
#include <stdlib.h> /* qsort */
#include <string.h>

#include "actors/dedup.h"
#include "actors/message.h"
#include "actors/store_int.h"
#include "actors/webhook.h"
#include "cim.pb.h"
#include "core/frame.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"

/* ---- the batch's conversation records ------------------------------------------------ */

static uint64_t key_hash(const uint8_t *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ k[i]) * 1099511628211ULL;
    return h;
}

static conv_ent_t **conv_slot(store_t *st, const uint8_t *key, size_t klen)
{
    size_t i = (size_t)key_hash(key, klen) & (st->capconvs - 1);
    for (;; i = (i + 1) & (st->capconvs - 1)) {
        conv_ent_t *e = st->convs[i];
        if (e == NULL || (e->klen == klen && memcmp(e->key, key, klen) == 0))
            return &st->convs[i];
    }
}

int store__conv(store_t *st, kv_txn_t *txn, const uint8_t *key, size_t klen, bool create,
                conv_ent_t **out)
{
    conv_ent_t **slot, *e;
    const uint8_t *v = NULL;
    size_t vlen = 0;
    int rc;

    if ((st->nconvs + 1) * 2 > st->capconvs) {
        mem_free(st->convs);
        st->capconvs = st->capconvs ? st->capconvs * 2 : 1024;
        st->convs = mem_calloc(st->capconvs * sizeof(*st->convs));
        for (size_t i = 0; i < st->nconvs; i++) {
            e = st->conv_list[i];
            slot = conv_slot(st, e->key, e->klen);
            *slot = e;
            e->slot = (uint32_t)(slot - st->convs);
        }
    }
    if (st->nconvs == st->caplist) {
        st->caplist = st->caplist ? st->caplist * 2 : 512;
        st->conv_list = mem_realloc(st->conv_list, st->caplist * sizeof(*st->conv_list));
    }
    slot = conv_slot(st, key, klen);
    if ((e = *slot) == NULL) {
        rc = kv_rec_get(txn, KV_DB_CONVS, key, klen, &v, &vlen);
        if (rc < 0 && rc != RC_ENOTFOUND)
            return rc;
        e = mem_alloc(sizeof(*e));
        conv_decode(v, rc == 0 ? vlen : 0, &e->rec);
        e->exists = rc == 0;
        e->dirty = false;
        e->klen = (uint16_t)klen;
        memcpy(e->key, key, klen);
        e->slot = (uint32_t)(slot - st->convs);
        *slot = e;
        st->conv_list[st->nconvs++] = e;
    }
    if (!e->exists && create)
        e->exists = true;
    *out = e->exists ? e : NULL;
    return 0;
}

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

static int conv_cmp(const void *pa, const void *pb)
{
    const conv_ent_t *a = *(conv_ent_t *const *)pa, *b = *(conv_ent_t *const *)pb;
    return key_cmp(a->key, a->klen, b->key, b->klen);
}

int store__conv_flush(store_t *st, kv_txn_t *txn)
{
    uint8_t val[CONV_REC_LEN];
    int rc;

    /* In key order: neighbouring records share pages, so a page is found once rather than
     * per record (this flush went from 11.5 % to 7.1 % of the writer's samples). The table
     * keeps its slots; only the list's order changes. */
    qsort(st->conv_list, st->nconvs, sizeof(*st->conv_list), conv_cmp);
    for (size_t i = 0; i < st->nconvs; i++) {
        conv_ent_t *e = st->conv_list[i];
        if (!e->dirty)
            continue;
        conv_encode(&e->rec, val);
        if ((rc = kv_rec_put(txn, KV_DB_CONVS, e->key, e->klen, val, sizeof(val))) < 0)
            return rc;
        e->dirty = false;
    }
    return 0;
}

void store__conv_reset(store_t *st)
{
    /* A batch of one message meets a record or two: clearing only those keeps a small
     * batch's cost small after a large batch grew the table (measured: walking the whole
     * table twice per batch was 8 % of cimd at 25k msgs/s in an open loop). */
    for (size_t i = 0; i < st->nconvs; i++) {
        conv_ent_t *e = st->conv_list[i];
        st->convs[e->slot] = NULL;
        mem_free(e);
    }
    st->nconvs = 0;
}

void store__conv_free(store_t *st)
{
    store__conv_reset(st);
    mem_free(st->convs);
    mem_free(st->conv_list);
}

/* A participant's conversation state. Only what a message changes the meaning of is
 * written (docs/STORAGE.md, convs): the sender's read cursor moves to its own message, and
 * a recipient's record is created by the first message that reaches them (DIRECT), or by
 * the event that adds them to a group (counting starts at that event: what was said before
 * they joined is not unread). The last message and the unread count are derived
 * when read, from the conversation index, so a message costs one record at most — none for
 * the other members of a group. Records are held per batch and written once per commit. */
static int conv_touch(store_t *st, kv_txn_t *txn, const smsg_t *m, const char *user,
                      uint64_t id, uint64_t time_ms)
{
    uint8_t key[CONV_UKEY_MAX];
    bool sender = strcmp(user, m->from) == 0;
    const char *peer = m->conv_type == cim_ConvType_GROUP ? m->to : sender ? m->to : m->from;
    size_t klen;
    conv_ent_t *e;
    int rc;

    /* members of a group have had their record since they joined */
    if (!sender && m->conv_type == cim_ConvType_GROUP && m->msg_type != cim_MsgType_SYSTEM)
        return 0;
    klen = conv_ukey(key, m->app, user, m->conv_type, peer);
    if ((rc = store__conv(st, txn, key, klen, false, &e)) < 0)
        return rc;
    if (e == NULL) {
        if ((rc = store__conv(st, txn, key, klen, true, &e)) < 0)
            return rc;
        memset(&e->rec, 0, sizeof(e->rec));
        if (m->conv_type == cim_ConvType_GROUP)
            e->rec.since_id = id; /* added by this event: nothing before it is unread */
        e->rec.updated_ms = time_ms;
        e->dirty = true;
    }
    if (sender && m->conv_type == cim_ConvType_GROUP) {
        /* One's own message is read, and with the cursor past everything before it, nothing
         * from others is unread any more (unread counts after the cursor). In a DIRECT
         * conversation the index's own direction says as much (conv_view): no write. */
        e->rec.read_up_to = id;
        e->rec.updated_ms = time_ms;
        e->dirty = true;
    }
    return 0;
}

int store__put_message(store_t *st, kv_txn_t *txn, const smsg_t *m, uint64_t *id,
                       uint64_t *time_ms)
{
    store_send_t meta;
    uint8_t ukey[KV_UKEY_MAX], skey[CONV_SKEY_MAX];
    blob_t *b = NULL;
    size_t klen;
    bool fresh = false, touch;
    int rc = 0;

    memset(&meta, 0, sizeof(meta));
    meta.msg_id = snowflake_next(&st->ids, snowflake_now_ms());
    meta.time_ms = snowflake_time_ms(meta.msg_id);
    meta.conv_type = m->conv_type;
    meta.msg_type = m->msg_type;
    meta.from_kind = m->from_kind;
    snprintf(meta.from, sizeof(meta.from), "%s", m->from);
    snprintf(meta.to, sizeof(meta.to), "%s", m->to);
    snprintf(meta.cmid, sizeof(meta.cmid), "%s", m->cmid ? m->cmid : "");
    if ((b = message_encode(&meta, m->body, m->body_len)) == NULL) {
        LOG_ERROR("store: cannot encode message %llu", (unsigned long long)meta.msg_id);
        return RC_EINVAL;
    }
    if ((rc = kv_msg_put(txn, meta.msg_id, b->data, b->len)) < 0)
        goto out;
    if (m->index) {
        klen = conv_skey(skey, m->app, m->conv_type, m->conv_type == cim_ConvType_GROUP
                                                         ? m->to : m->from, m->to);
        if ((rc = kv_cmsg_add(txn, skey, klen, meta.msg_id, &fresh)) < 0)
            goto out;
        /* SYSTEM messages never count as unread: kept apart so the count needs no record */
        if (m->msg_type == cim_MsgType_SYSTEM &&
            (rc = kv_cevent_add(txn, skey, klen, meta.msg_id)) < 0)
            goto out;
    }
    /* The first message of a DIRECT direction created both participants' records (records
     * are never deleted), so only a fresh direction needs them looked up: two B-tree
     * lookups per message saved (8 % of cimd's samples in the sustained c2c run). */
    touch = m->index && (m->conv_type == cim_ConvType_GROUP || fresh);
    for (size_t i = 0; i < m->nusers; i++) {
        klen = kv_ukey(ukey, m->app, m->users[i]);
        if ((rc = kv_timeline_add(txn, ukey, klen, meta.msg_id)) < 0)
            goto out;
        if (touch && (rc = conv_touch(st, txn, m, m->users[i], meta.msg_id, meta.time_ms)) < 0)
            goto out;
    }
    store__fanout(st, b, FT_PUSH, m->app, m->users, m->nusers, m->skip_sid);
    /* One relaxed load when no app has a webhook: route() then looks no further. */
    if (m->hook && webhook_wants(st->srv->webhook, m->app, APPCONF_EV_MESSAGE)) {
        st->fan[st->nfan - 1].hook = true;
        snprintf(st->fan[st->nfan - 1].from, sizeof(st->fan[0].from), "%s", m->from);
    }
    ctr_add(&st->stats.messages, 1);
    *id = meta.msg_id;
    *time_ms = meta.time_ms;
out:
    blob_unref(b);
    return rc;
}

/* The members of a group, in id order (the fanout and timeline list of a group message). */
typedef struct roster {
    store_uid_t *users;
    size_t n, cap;
} roster_t;

static int roster_add(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val,
                      size_t vlen)
{
    roster_t *r = ctx;
    (void)val;
    (void)vlen;
    if (slen == 0 || slen > KV_ID_MAX)
        return 0;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->users = mem_realloc(r->users, r->cap * sizeof(*r->users));
    }
    memcpy(r->users[r->n], sfx, slen);
    r->users[r->n][slen] = '\0';
    r->n++;
    return 0;
}

/* members key prefix: app NUL gid (8 bytes, big-endian). */
int store__roster(kv_txn_t *txn, const char *app, uint64_t gid, store_uid_t **users,
                  size_t *n)
{
    uint8_t prefix[KV_ID_MAX + 1 + 8];
    size_t a = strlen(app);
    roster_t r = {NULL, 0, 0};
    int rc;

    memcpy(prefix, app, a);
    prefix[a] = '\0';
    for (int i = 0; i < 8; i++)
        prefix[a + 1 + i] = (uint8_t)(gid >> (56 - 8 * i));
    rc = kv_rec_scan(txn, KV_DB_MEMBERS, prefix, a + 9, roster_add, &r);
    if (rc < 0) {
        mem_free(r.users);
        return rc;
    }
    *users = r.users;
    *n = r.n;
    return 0;
}

int store__send(store_t *st, kv_txn_t *txn, store_send_t *r)
{
    store_uid_t pair[2], *members = NULL;
    smsg_t m;
    uint64_t prior, gid = 0;
    size_t nmembers = 0;
    bool alive = false, member = false;
    int rc;

    /* A resend of a client_msg_id (this batch included: the txn sees its own writes)
     * returns the original id and stores nothing. */
    rc = dedup_find(st->srv->dedup, txn, r->app, r->from, r->cmid, false, &prior);
    if (rc == 0) {
        r->code = cim_Code_OK;
        r->msg_id = prior;
        r->time_ms = snowflake_time_ms(prior);
        return 0;
    }
    if (rc != RC_ENOTFOUND)
        return rc;
    memset(&m, 0, sizeof(m));
    m.app = r->app;
    m.from = r->from;
    m.from_kind = r->from_kind;
    m.conv_type = r->conv_type;
    m.to = r->to;
    m.msg_type = r->msg_type;
    m.cmid = r->cmid;
    m.body = r->body;
    m.body_len = r->body_len;
    m.index = true;
    m.skip_sid = r->sid;
    m.hook = true;
    if (r->conv_type == cim_ConvType_GROUP) {
        /* Membership is checked again here, in the writer's order: the worker's check may
         * be stale by now. */
        if ((rc = store__group_state(txn, r->app, r->to, &gid, &alive)) < 0 &&
            rc != RC_ENOTFOUND)
            return rc;
        if (!alive) {
            r->code = cim_Code_NOT_FOUND;
            return 0;
        }
        if ((rc = store__roster(txn, r->app, gid, &members, &nmembers)) < 0)
            return rc;
        for (size_t i = 0; i < nmembers && !member; i++)
            member = strcmp(members[i], r->from) == 0;
        if (!member && !r->system) {
            mem_free(members);
            r->code = cim_Code_NOT_MEMBER;
            return 0;
        }
        m.users = members;
        m.nusers = nmembers;
    } else {
        snprintf(pair[0], sizeof(pair[0]), "%s", r->from);
        snprintf(pair[1], sizeof(pair[1]), "%s", r->to);
        m.users = pair;
        m.nusers = strcmp(r->from, r->to) == 0 ? 1 : 2;
    }
    rc = store__put_message(st, txn, &m, &r->msg_id, &r->time_ms);
    mem_free(members);
    if (rc < 0)
        return rc;
    dedup_add(st->srv->dedup, r->from, r->cmid, r->msg_id);
    r->code = cim_Code_OK;
    return 0;
}
