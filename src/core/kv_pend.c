/* kv_pend: id-list appends (timeline, cmsgs, cevents) gathered over a write transaction
 * and applied in key order, each key's ids in one put.
 *
 * A message appends its id to two users' timelines and to its conversation's index: with
 * every append a put of its own, each one descended the tree from its root, then the key's
 * duplicate tree, and the cache misses of those descents were most of the writer's time
 * (perf, c2c at 1,000 users: 37 % of the writer in the timeline's mdb_put). Gathered, a
 * batch's appends to one key are one descent and one MDB_MULTIPLE put; taken in key order,
 * neighbouring keys are found on the page the cursor already stands on.
 *
 * Nothing else sees the difference: kv__ids_sync applies a database's gathered ids
 * before anything reads or writes that database another way in the same transaction
 * (kv_msg.c, kv_rec.c), and kv_commit before the commit; kv_abort forgets them. A read
 * transaction never has any: only the process's one write transaction adds.
 *
 * A watched key (kv_cmsg_add) is looked up before its put, and reported by kv_cmsg_news if
 * it had no ids: the first message of a DIRECT direction creates the conversation's
 * records.
 *
 * With KV_DEFER, the timelines' and cmsgs' appends are not applied here at the commit:
 * kv__pend_detach hands them to the tail (kv_defer.c), kv__pend_news_find looks watched
 * keys up without applying anything, and readers in the write transaction merge
 * kv__pend_ids. */
#include <stdlib.h>
#include <string.h>

#include "core/be.h"
#include "core/hash.h"
#include "core/kv_int.h"
#include "core/mem.h"
#include "core/rc.h"

typedef struct pkey {
    const uint8_t *k; /* set by kv__pend_apply (the arena may move before) */
    uint32_t koff, slot;
    uint32_t first, last, n; /* the key's ids: a chain through pent_t.next */
    uint16_t klen;
    bool watch;   /* report it if it had no ids before (kv_cmsg_news) */
    bool checked; /* looked up already (kv__pend_news_find): never new again */
} pkey_t;

typedef struct pent {
    uint64_t id;
    uint32_t next;
} pent_t;

/* A watched key an apply found new (kv_cmsg_news): its bytes in newb. */
typedef struct pnew {
    size_t off;
    uint64_t first;
    uint16_t klen;
} pnew_t;

struct kv_pend {
    MDB_dbi dbi;
    bool records; /* kv__pend_new_records: a key's ids create its empty record */
    pkey_t *keys;
    size_t nkeys, capkeys;
    uint32_t *slots; /* key index + 1; 0 = empty */
    size_t capslots;
    pent_t *ids;
    size_t nids, capids;
    kv_arena_t keyb; /* the keys' bytes */
    uint8_t *vals; /* one key's ids, big-endian, for the MULTIPLE put */
    size_t capvals;
    /* watched keys found new by applies since the last kv__pend_news, each with its
     * first id */
    pnew_t *news;
    size_t nnews, capnews;
    /* keys watched since the last kv__pend_news_find (indices into keys: stable until
     * kv__pend_apply sorts them, which clears everything) */
    uint32_t *watchq;
    size_t nwatchq, capwatchq;
    kv_arena_t newb; /* their keys' bytes */
};

static uint32_t *slot_of(kv_pend_t *p, const uint8_t *key, size_t klen)
{
    size_t i = (size_t)hash_fnv1a(HASH_FNV_BASIS, key, klen) & (p->capslots - 1);
    for (;; i = (i + 1) & (p->capslots - 1)) {
        uint32_t s = p->slots[i];
        if (s == 0)
            return &p->slots[i];
        const pkey_t *e = &p->keys[s - 1];
        if (e->klen == klen && memcmp(p->keyb.p + e->koff, key, klen) == 0)
            return &p->slots[i];
    }
}

static void grow_slots(kv_pend_t *p)
{
    mem_free(p->slots);
    p->capslots = p->capslots ? p->capslots * 2 : 1024;
    p->slots = mem_calloc(p->capslots * sizeof(*p->slots));
    for (size_t i = 0; i < p->nkeys; i++) {
        pkey_t *e = &p->keys[i];
        uint32_t *s = slot_of(p, p->keyb.p + e->koff, e->klen);
        *s = (uint32_t)i + 1;
        e->slot = (uint32_t)(s - p->slots);
    }
}

kv_pend_t *kv__pend_new(MDB_dbi dbi)
{
    kv_pend_t *p = mem_calloc(sizeof(*p));
    p->dbi = dbi;
    return p;
}

kv_pend_t *kv__pend_new_records(MDB_dbi dbi)
{
    kv_pend_t *p = kv__pend_new(dbi);
    p->records = true;
    return p;
}

MDB_dbi kv__pend_dbi(const kv_pend_t *p)
{
    return p->dbi;
}

size_t kv__pend_count(const kv_pend_t *p, const uint8_t *key, size_t klen)
{
    uint32_t s;
    if (p->capslots == 0 || (s = *slot_of((kv_pend_t *)p, key, klen)) == 0)
        return 0;
    return p->keys[s - 1].n;
}

void kv__pend_free(kv_pend_t *p)
{
    if (p == NULL)
        return;
    mem_free(p->keys);
    mem_free(p->slots);
    mem_free(p->ids);
    mem_free(p->keyb.p);
    mem_free(p->vals);
    mem_free(p->news);
    mem_free(p->newb.p);
    mem_free(p->watchq);
    mem_free(p);
}

void kv__pend_clear(kv_pend_t *p)
{
    /* only the slots in use: a small batch after a large one stays cheap */
    for (size_t i = 0; i < p->nkeys; i++)
        p->slots[p->keys[i].slot] = 0;
    p->nkeys = p->nids = p->keyb.len = p->nwatchq = 0;
}

void kv__pend_add(kv_pend_t *p, const uint8_t *key, size_t klen, uint64_t id, bool watch)
{
    uint32_t *s;
    pkey_t *e;

    if ((p->nkeys + 1) * 2 > p->capslots)
        grow_slots(p);
    if (p->nids == p->capids) {
        p->capids = p->capids ? p->capids * 2 : 1024;
        p->ids = mem_realloc(p->ids, p->capids * sizeof(*p->ids));
    }
    s = slot_of(p, key, klen);
    if (*s == 0) {
        if (p->nkeys == p->capkeys) {
            p->capkeys = p->capkeys ? p->capkeys * 2 : 256;
            p->keys = mem_realloc(p->keys, p->capkeys * sizeof(*p->keys));
        }
        e = &p->keys[p->nkeys];
        e->koff = (uint32_t)kv__arena_put(&p->keyb, key, klen);
        e->klen = (uint16_t)klen;
        e->slot = (uint32_t)(s - p->slots);
        e->n = 0;
        e->watch = e->checked = false;
        *s = (uint32_t)++p->nkeys;
    }
    e = &p->keys[*s - 1];
    if (watch && !e->checked && !e->watch) {
        e->watch = true;
        if (p->nwatchq == p->capwatchq) {
            p->capwatchq = p->capwatchq ? 2 * p->capwatchq : 256;
            p->watchq = mem_realloc(p->watchq, p->capwatchq * sizeof(*p->watchq));
        }
        p->watchq[p->nwatchq++] = *s - 1;
    }
    p->ids[p->nids].id = id;
    p->ids[p->nids].next = UINT32_MAX;
    if (e->n++ == 0)
        e->first = (uint32_t)p->nids;
    else
        p->ids[e->last].next = (uint32_t)p->nids;
    e->last = (uint32_t)p->nids++;
}

size_t kv__arena_put(kv_arena_t *a, const void *bytes, size_t n)
{
    size_t off = a->len;
    if (a->len + n > a->cap) {
        a->cap = 2 * (a->len + n) + 1024;
        a->p = mem_realloc(a->p, a->cap);
    }
    memcpy(a->p + off, bytes, n);
    a->len += n;
    return off;
}

int kv__key_order(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

int kv__u64_cmp(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return (a > b) - (a < b);
}

static int key_cmp(const void *pa, const void *pb)
{
    const pkey_t *a = pa, *b = pb;
    return kv__key_order(a->k, a->klen, b->k, b->klen);
}

/* One key's ids (at most once each, ascending) into p->vals, big-endian (@p be) or as
 * uint64_t. @return how many. */
static size_t key_vals(kv_pend_t *p, const pkey_t *e, bool be)
{
    uint64_t *v;
    size_t n = 0, m = 0;

    if (e->n * 8 > p->capvals) {
        p->capvals = 2 * e->n * 8;
        p->vals = mem_realloc(p->vals, p->capvals);
    }
    v = (uint64_t *)(void *)p->vals; /* mem_realloc's block: aligned for any type */
    for (uint32_t i = e->first; n < e->n; i = p->ids[i].next)
        v[n++] = p->ids[i].id;
    /* appended in id order, so sorting is a rare repair (a cluster's late message) */
    for (size_t i = 1; i < n; i++)
        if (v[i] <= v[i - 1]) {
            qsort(v, n, sizeof(*v), kv__u64_cmp);
            break;
        }
    for (size_t i = 0; i < n; i++)
        if (m == 0 || v[i] != v[m - 1])
            v[m++] = v[i];
    for (size_t i = 0; be && i < m; i++)
        be64_put(p->vals + 8 * i, v[i]); /* in place: slot i is read before it is written */
    return m;
}

static void news_add(kv_pend_t *p, const pkey_t *e, uint64_t first)
{
    if (p->nnews == p->capnews) {
        p->capnews = p->capnews ? p->capnews * 2 : 64;
        p->news = mem_realloc(p->news, p->capnews * sizeof(*p->news));
    }
    p->news[p->nnews].off = kv__arena_put(&p->newb, e->k, e->klen);
    p->news[p->nnews].klen = e->klen;
    p->news[p->nnews++].first = first;
}

/* The ids of one key, @p n of them in p->vals. Ids above every stored one (the usual
 * case) go in with one MDB_MULTIPLE append; from the first that is not, one at a time
 * (KEYEXIST then means not above the last: put in place, and an id there already is no
 * error). A watched key is looked up first, to know whether it is new; the put then
 * starts from the page the lookup ended on (LMDB's cursor fast path), not from the root. */
static int put_key(kv_pend_t *p, MDB_cursor *cur, const pkey_t *e, size_t n)
{
    MDB_val k = {e->klen, (void *)e->k}, v[2], d;
    size_t done = 0;
    int mrc;

    if (e->watch) {
        mrc = mdb_cursor_get(cur, &k, &d, MDB_SET);
        if (mrc == MDB_NOTFOUND)
            news_add(p, e, be64_get(p->vals));
        else if (mrc != MDB_SUCCESS)
            return kv__rc(mrc, "mdb_cursor_get ids");
    }
    v[0].mv_size = 8;
    v[0].mv_data = p->vals;
    v[1].mv_size = n;
    v[1].mv_data = NULL;
    mrc = n > 1 ? mdb_cursor_put(cur, &k, v, MDB_APPENDDUP | MDB_MULTIPLE)
                : mdb_cursor_put(cur, &k, v, MDB_APPENDDUP);
    done = n > 1 ? v[1].mv_size : mrc == MDB_SUCCESS;
    if (mrc != MDB_SUCCESS && mrc != MDB_KEYEXIST)
        return kv__rc(mrc, "mdb_cursor_put ids");
    for (; done < n; done++) {
        MDB_val one = {8, p->vals + 8 * done};
        mrc = mdb_cursor_put(cur, &k, &one, MDB_APPENDDUP);
        if (mrc == MDB_KEYEXIST)
            mrc = mdb_cursor_put(cur, &k, &one, MDB_NODUPDATA);
        if (mrc != MDB_SUCCESS && mrc != MDB_KEYEXIST)
            return kv__rc(mrc, "mdb_cursor_put ids");
    }
    return 0;
}

/* A records pend's key: its record, empty, unless the database has one (the ids only
 * say that some message made it: kv_conv_defer). */
static int create_key(MDB_cursor *cur, const pkey_t *e)
{
    static const uint8_t none = 0;
    MDB_val k = {e->klen, (void *)e->k}, v = {0, (void *)&none};
    int mrc = mdb_cursor_put(cur, &k, &v, MDB_NOOVERWRITE);
    return mrc == MDB_SUCCESS || mrc == MDB_KEYEXIST ? 0 : kv__rc(mrc, "mdb_cursor_put record");
}

size_t kv__pend_sort(kv_pend_t *p)
{
    if (p == NULL || p->nids == 0)
        return 0;
    for (size_t i = 0; i < p->nkeys; i++)
        p->keys[i].k = p->keyb.p + p->keys[i].koff;
    /* sorting moves the keys, not their slots: kv__pend_clear needs only e->slot */
    qsort(p->keys, p->nkeys, sizeof(*p->keys), key_cmp);
    return p->nkeys;
}

int kv__pend_apply_range(kv_pend_t *p, MDB_txn *txn, size_t from, size_t to)
{
    MDB_cursor *cur = NULL;
    int rc;

    if (from >= to)
        return 0;
    if ((rc = kv__rc(mdb_cursor_open(txn, p->dbi, &cur), "mdb_cursor_open ids")) == 0) {
        for (size_t i = from; i < to && rc == 0; i++)
            if (p->keys[i].n > 0)
                rc = p->records ? create_key(cur, &p->keys[i])
                                : put_key(p, cur, &p->keys[i], key_vals(p, &p->keys[i], true));
        mdb_cursor_close(cur);
    }
    return rc;
}

int kv__pend_apply(kv_pend_t *p, MDB_txn *txn)
{
    int rc;
    if (p == NULL || p->nids == 0)
        return 0;
    rc = kv__pend_apply_range(p, txn, 0, kv__pend_sort(p));
    kv__pend_clear(p);
    return rc;
}

int kv__pend_news(kv_pend_t *p, int (*cb)(void *ctx, const uint8_t *key, size_t klen,
                                          uint64_t first),
                  void *ctx)
{
    int rc = 0;
    for (size_t i = 0; i < p->nnews && rc == 0; i++)
        rc = cb(ctx, p->newb.p + p->news[i].off, p->news[i].klen, p->news[i].first);
    kv__pend_news_clear(p);
    return rc;
}

void kv__pend_news_clear(kv_pend_t *p)
{
    p->nnews = p->newb.len = 0;
}

size_t kv__pend_ids(kv_pend_t *p, const uint8_t *key, size_t klen, uint64_t **buf,
                    size_t *cap, size_t n)
{
    uint32_t s;
    if (p == NULL || p->capslots == 0 || (s = *slot_of(p, key, klen)) == 0)
        return n;
    const pkey_t *e = &p->keys[s - 1];
    uint32_t i = e->first;
    for (uint32_t j = 0; j < e->n; j++, i = p->ids[i].next) {
        if (n == *cap) {
            *cap = *cap ? 2 * *cap : 64;
            *buf = mem_realloc(*buf, *cap * sizeof(**buf));
        }
        (*buf)[n++] = p->ids[i].id;
    }
    return n;
}

int kv__pend_news_find(kv_pend_t *p, MDB_txn *txn,
                       bool (*elsewhere)(void *ctx, const uint8_t *key, size_t klen),
                       void *ctx)
{
    MDB_cursor *cur = NULL;
    int rc = 0;

    for (size_t i = 0; i < p->nwatchq && rc == 0; i++) {
        pkey_t *e = &p->keys[p->watchq[i]];
        MDB_val k, d;
        uint64_t first = UINT64_MAX;
        int mrc;

        if (!e->watch)
            continue;
        e->watch = false;
        e->checked = true;
        e->k = p->keyb.p + e->koff;
        if (elsewhere(ctx, e->k, e->klen))
            continue;
        if (cur == NULL &&
            (rc = kv__rc(mdb_cursor_open(txn, p->dbi, &cur), "mdb_cursor_open ids")) < 0)
            break;
        k.mv_size = e->klen;
        k.mv_data = (void *)e->k;
        mrc = mdb_cursor_get(cur, &k, &d, MDB_SET);
        if (mrc == MDB_SUCCESS)
            continue;
        if (mrc != MDB_NOTFOUND) {
            rc = kv__rc(mrc, "mdb_cursor_get ids");
            break;
        }
        uint32_t x = e->first;
        for (uint32_t j = 0; j < e->n; j++, x = p->ids[x].next)
            if (p->ids[x].id < first)
                first = p->ids[x].id;
        news_add(p, e, first);
    }
    if (cur != NULL)
        mdb_cursor_close(cur);
    p->nwatchq = 0;
    return rc;
}

size_t kv__pend_detach(kv_pend_t *p,
                       bool (*take)(void *ctx, const uint8_t *key, size_t klen,
                                    const uint64_t *ids, size_t n),
                       void *ctx)
{
    size_t left = 0;
    for (size_t i = 0; i < p->nkeys; i++) {
        pkey_t *e = &p->keys[i];
        if (e->n == 0)
            continue;
        e->k = p->keyb.p + e->koff;
        size_t n = key_vals(p, e, false);
        if (take(ctx, e->k, e->klen, (const uint64_t *)(void *)p->vals, n))
            e->n = 0;
        else
            left += e->n;
    }
    return left;
}
