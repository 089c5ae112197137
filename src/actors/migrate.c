#include "actors/migrate.h"

#include <string.h>

#include "actors/conv.h"
#include "actors/feed.h"
#include "actors/group.h"
#include "actors/message.h"
#include "cim.pb.h"
#include "core/be.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"

#define PAGE 512

typedef struct mig {
    kv_txn_t *txn;
    uint64_t events, groups, directs, spans;
    /* schema 1's DIRECT keys (app NUL 'D' lower NUL higher), split after the scan */
    struct dkey {
        uint8_t key[CONV_SKEY_MAX];
        size_t klen;
    } *dkeys;
    size_t ndkeys, capdkeys;
    /* group records to rewrite, collected while scanning convs (no writes during a scan) */
    struct fix {
        uint8_t key[CONV_UKEY_MAX];
        size_t klen;
        uint8_t val[CONV_REC_LEN];
    } *fix;
    size_t nfix, capfix;
} mig_t;

/* Call @p fn for every message of conversation index key @p key, in id order, with its
 * record's fields (not its body). */
static int each_message(mig_t *m, const uint8_t *key, size_t klen,
                        int (*fn)(mig_t *m, const uint8_t *key, size_t klen, uint64_t id,
                                  const cim_Message *msg))
{
    uint64_t ids[PAGE], after = 0, total;
    size_t n;
    int rc;

    do {
        if ((rc = kv_cmsg_after(m->txn, key, klen, after, ids, PAGE, &n, &total)) < 0)
            return rc;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *rec;
            size_t len;
            cim_Message msg;
            rc = kv_msg_get(m->txn, ids[i], &rec, &len);
            if (rc == RC_ENOTFOUND)
                continue;
            if (rc < 0)
                return rc;
            if (!message_decode_head(rec, len, &msg))
                return RC_ESTORE;
            if ((rc = fn(m, key, klen, ids[i], &msg)) < 0)
                return rc;
        }
        if (n > 0)
            after = ids[n - 1];
    } while (n == PAGE);
    return 0;
}

static int add_event(mig_t *m, const uint8_t *key, size_t klen, uint64_t id,
                     const cim_Message *msg)
{
    int rc = 0;
    if (msg->msg_type == cim_MsgType_SYSTEM && (rc = kv_cevent_add(m->txn, key, klen, id)) == 0)
        m->events++;
    return rc;
}

/* Every SYSTEM message of a group conversation goes to the group events index. */
static int events_of(void *ctx, const uint8_t *key, size_t klen)
{
    mig_t *m = ctx;
    const uint8_t *nul = memchr(key, '\0', klen);

    if (nul != NULL && (size_t)(nul - key) + 1 < klen && nul[1] == 'D' &&
        klen <= CONV_SKEY_MAX) {
        /* DIRECT (no SYSTEM messages in schema 1): split by direction below */
        if (m->ndkeys == m->capdkeys) {
            m->capdkeys = m->capdkeys ? 2 * m->capdkeys : 256;
            m->dkeys = mem_realloc(m->dkeys, m->capdkeys * sizeof(*m->dkeys));
        }
        memcpy(m->dkeys[m->ndkeys].key, key, klen);
        m->dkeys[m->ndkeys].klen = klen;
        m->ndkeys++;
        return 0;
    }
    if (nul == NULL || (size_t)(nul - key) + 1 >= klen || nul[1] != 'G')
        return 0;
    return each_message(m, key, klen, add_event);
}

/* Schema 1 indexed a DIRECT conversation under one key; schema 2 under one per direction
 * (sender to recipient), read from each record. */
static int add_direction(mig_t *m, const uint8_t *key, size_t klen, uint64_t id,
                         const cim_Message *msg)
{
    char app[KV_ID_MAX + 1];
    uint8_t dkey[CONV_SKEY_MAX];
    size_t alen = strnlen((const char *)key, klen);
    int rc;

    if (alen == 0 || alen > KV_ID_MAX)
        return 0;
    memcpy(app, key, alen);
    app[alen] = '\0';
    rc = kv_cmsg_add(m->txn, dkey, conv_skey(dkey, app, cim_ConvType_DIRECT, msg->from, msg->to),
                     id, false);
    if (rc == 0)
        m->directs++;
    return rc;
}

static int split_direct(mig_t *m, const uint8_t *key, size_t klen)
{
    int rc = each_message(m, key, klen, add_direction);
    return rc < 0 ? rc : kv_cmsg_drop(m->txn, key, klen);
}

/* Schema 1 kept `unread` for a group member from when they joined: the cursor that gives
 * the same count from the whole index is just before the oldest of the last `unread`
 * countable entries (events skipped), never before the old cursor. */
static int group_cursor(kv_txn_t *txn, const uint8_t *skey, size_t sklen, uint64_t read_up_to,
                        uint64_t left_id, uint32_t unread, uint64_t *out)
{
    uint64_t ids[PAGE], before = left_id ? left_id + 1 : 0, cursor = read_up_to, ev;
    uint32_t counted = 0;
    bool more = true;
    size_t n;
    int rc;

    while (more) {
        if ((rc = kv_cmsg_before(txn, skey, sklen, before, ids, PAGE, &n, &more)) < 0)
            return rc;
        for (size_t i = 0; i < n; i++) { /* newest first */
            if (ids[i] <= read_up_to) {
                *out = cursor;
                return 0;
            }
            if (counted == unread) { /* everything older than the counted ones is read */
                *out = ids[i] > cursor ? ids[i] : cursor;
                return 0;
            }
            if ((rc = kv_cevent_count(txn, skey, sklen, ids[i] - 1, ids[i], &ev)) < 0)
                return rc;
            counted += ev == 0;
        }
        if (n == 0)
            break;
        before = ids[n - 1];
    }
    *out = cursor;
    return 0;
}

/* Schema 1's record began with its last message id, where since_id is now, and ended with
 * its unread count: every record is rewritten. */
static int fix_record(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val,
                      size_t vlen)
{
    mig_t *m = ctx;
    const uint8_t *a = memchr(key, '\0', klen), *u;
    char app[KV_ID_MAX + 1], peer[KV_ID_MAX + 1];
    uint8_t skey[CONV_SKEY_MAX];
    uint64_t cursor;
    uint32_t unread;
    conv_rec_t c;
    size_t alen, plen;
    int rc;

    if (a == NULL || vlen < CONV_REC_LEN || klen > CONV_UKEY_MAX)
        return 0;
    u = memchr(a + 1, '\0', klen - (size_t)(a + 1 - key));
    if (u == NULL || u + 2 > key + klen)
        return 0;
    conv_decode(val, vlen, &c);
    c.since_id = 0;
    if (u[1] == cim_ConvType_GROUP) {
        alen = (size_t)(a - key);
        plen = klen - (size_t)(u + 2 - key);
        if (alen == 0 || alen > KV_ID_MAX || plen == 0 || plen > KV_ID_MAX)
            return 0;
        memcpy(app, key, alen);
        app[alen] = '\0';
        memcpy(peer, u + 2, plen);
        peer[plen] = '\0';
        unread = be32_get(val + 32);
        rc = group_cursor(m->txn, skey, conv_skey(skey, app, cim_ConvType_GROUP, peer, peer),
                          c.read_up_to, c.left_id, unread, &cursor);
        if (rc < 0)
            return rc;
        if (cursor > c.read_up_to) {
            c.since_id = cursor; /* the count starts there; the read cursor clients see stays */
            m->groups++;
        }
    }
    if (m->nfix == m->capfix) {
        m->capfix = m->capfix ? 2 * m->capfix : 256;
        m->fix = mem_realloc(m->fix, m->capfix * sizeof(*m->fix));
    }
    memcpy(m->fix[m->nfix].key, key, klen);
    m->fix[m->nfix].klen = klen;
    conv_encode(&c, m->fix[m->nfix].val);
    m->nfix++;
    return 0;
}

/* Schema 1 to 6 → 7 (and so 8): every current member's group messages from now on are read from
 * the group's index over a span (feed.h); the ones before are in their timelines. The
 * span starts above every id this directory holds or issued. */
static int open_spans(kv_txn_t *txn, uint64_t *n)
{
    uint64_t last = 0, stored = 0;
    int rc;

    if ((rc = kv_last_id_get(txn, &last)) < 0 || (rc = kv_msg_last_id(txn, &stored)) < 0)
        return rc;
    return feed_migrate(txn, (last > stored ? last : stored) + 1, n);
}

/* Schema 2 to 6 → 8: the version (migrate.h; kv_open made cpend and applied a schema 5
 * or 6 cimd's records; records stored one to an entry read as they are beside the chunks
 * new ones go into), and the spans of the groups' members. */
static int from_2(kv_t *kv)
{
    kv_txn_t *txn = NULL;
    uint64_t spans = 0;
    int rc;

    if ((rc = kv_begin(kv, KV_WRITE, &txn)) == 0 && (rc = open_spans(txn, &spans)) == 0 &&
        (rc = kv_migrated(txn)) == 0) {
        rc = kv_commit(txn);
        txn = NULL;
    }
    kv_abort(txn);
    if (rc < 0)
        LOG_ERROR("migrate: schema %u to %u failed (%s); the data is unchanged",
                  kv_schema_found(kv), KV_SCHEMA, rc_str(rc));
    else
        LOG_INFO("migrate: schema %u to %u: nothing to rewrite (records stored whole, or one to "
                 "an entry, read the same; the deferred index starts empty); %llu group "
                 "memberships read from their groups' indexes from now on",
                 kv_schema_found(kv), KV_SCHEMA, (unsigned long long)spans);
    return rc;
}

/* Schema 7 → 8: only the version. cpend may now hold new conversations' records
 * (kv_conv_defer), which a schema 7 cimd could not read; kv_open applied what a schema 7
 * one left there. */
static int from_7(kv_t *kv)
{
    kv_txn_t *txn = NULL;
    int rc;

    if ((rc = kv_begin(kv, KV_WRITE, &txn)) == 0 && (rc = kv_migrated(txn)) == 0) {
        rc = kv_commit(txn);
        txn = NULL;
    }
    kv_abort(txn);
    if (rc < 0)
        LOG_ERROR("migrate: schema 7 to %u failed (%s); the data is unchanged", KV_SCHEMA,
                  rc_str(rc));
    else
        LOG_INFO("migrate: schema 7 to %u: nothing to rewrite", KV_SCHEMA);
    return rc;
}

int migrate_run(kv_t *kv)
{
    mig_t m;
    uint64_t t0 = snowflake_now_ms();
    int rc;

    if (kv_schema_found(kv) == KV_SCHEMA)
        return 0;
    if (kv_schema_found(kv) == 7)
        return from_7(kv);
    if (kv_schema_found(kv) >= 2 && kv_schema_found(kv) <= 6)
        return from_2(kv);
    if (kv_schema_found(kv) != 1) {
        LOG_ERROR("migrate: no migration from schema %u to %u", kv_schema_found(kv), KV_SCHEMA);
        return RC_ESTORE;
    }
    LOG_INFO("migrate: schema 1 to %u: deriving conversation state, dropping the dedup index",
             KV_SCHEMA);
    memset(&m, 0, sizeof(m));
    if ((rc = kv_begin(kv, KV_WRITE, &m.txn)) < 0)
        return rc;
    if ((rc = kv_cmsg_keys(m.txn, events_of, &m)) < 0)
        goto fail;
    for (size_t i = 0; i < m.ndkeys; i++)
        if ((rc = split_direct(&m, m.dkeys[i].key, m.dkeys[i].klen)) < 0)
            goto fail;
    if ((rc = kv_rec_each(m.txn, KV_DB_CONVS, fix_record, &m)) < 0)
        goto fail;
    for (size_t i = 0; i < m.nfix; i++)
        if ((rc = kv_rec_put(m.txn, KV_DB_CONVS, m.fix[i].key, m.fix[i].klen, m.fix[i].val,
                             CONV_REC_LEN)) < 0)
            goto fail;
    if ((rc = open_spans(m.txn, &m.spans)) < 0 || (rc = kv_migrated(m.txn)) < 0)
        goto fail;
    rc = kv_commit(m.txn);
    m.txn = NULL;
    if (rc < 0)
        goto fail;
    LOG_INFO("migrate: done in %llu ms: %llu group events indexed, %llu direct messages "
             "indexed by direction, %zu conversation records rewritten (%llu group ones "
             "counting unread from their first unread message), %llu group memberships "
             "read from their groups' indexes from now on",
             (unsigned long long)(snowflake_now_ms() - t0), (unsigned long long)m.events,
             (unsigned long long)m.directs, m.nfix, (unsigned long long)m.groups,
             (unsigned long long)m.spans);
    mem_free(m.fix);
    mem_free(m.dkeys);
    return 0;
fail:
    kv_abort(m.txn);
    mem_free(m.fix);
    mem_free(m.dkeys);
    LOG_ERROR("migrate: failed (%s); the data is unchanged (schema 1)", rc_str(rc));
    return rc;
}
