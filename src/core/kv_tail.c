/* kv_tail: id-list appends that are committed but not yet in their database.
 *
 * Every message adds an id to its conversation's key in cmsgs and to the timeline of each
 * of its users. With ~10^6 conversation keys (1,000 users writing to random peers) a
 * batch's cmsgs appends land on as many pages as it has messages, and its timeline
 * appends on a leaf of every user's timeline: each page copied on first touch and, with
 * durability = sync, written and synced at the commit — most of a synced commit's writes.
 * Here a commit's appends are logged instead (one sequential record in `cpend`, written by
 * kv_defer.c) and kept in memory, and are put into their database later, many commits'
 * worth at a time in key order, so that a page takes many appends at once
 * (docs/STORAGE.md, `cpend`). Keys are opaque here: kv_defer.c tags each with its database.
 *
 * Structure: epochs. New entries go into the open epoch (the head); each commit sorts
 * the keys it added there (a run). When the epoch is full (or a minute old) it is
 * closed, and each later commit drains the next few keys, merging the runs; when the last
 * is drained its log records are deleted, and the epoch is unlinked once no read in
 * flight needs it and freed once none can reach it.
 *
 * One thread writes (the one write transaction's), any thread reads, without locks:
 * - an entry carries `added`, the id of the write transaction that committed it; a
 *   reader whose snapshot is T takes entries added <= T (the commit makes them visible
 *   exactly when it makes the snapshot possible), a failed commit sets them to NEVER;
 * - a key carries `drained`, the transaction that put its entries into the database: a
 *   snapshot at or after it takes none of them (the database has them), one before it
 *   takes them all (its database does not) — so a read never sees an id twice;
 * - an epoch carries `done`, the transaction that drained its last key: a snapshot at or
 *   after it skips the epoch;
 * - keys and entries are written whole before a release store publishes them (a slot of
 *   the epoch's fixed-size table, or the key's chain head), and never change after,
 *   except `added` on a failed commit and `drained`;
 * - a drained epoch stays linked while a read in flight has a snapshot from before its
 *   drain finished (kv__pin: the database lacks what it holds, for those); once unlinked,
 *   it is freed only when every read in flight began after the commit that followed the
 *   unlink: only those can no longer reach it. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/hash.h"
#include "core/kv_int.h"
#include "core/log.h"
#include "core/mem.h"

#define NEVER  UINT64_MAX
#define CHUNK  (256 * 1024)
#define PINS   1024
#define AGE_MS 60000 /* an epoch open this long closes at the next commit, full or not */

typedef struct tent {
    uint64_t id;
    _Atomic uint64_t added; /* the commit that made it; NEVER: that commit failed */
    struct tent *next;      /* older entry of the same key */
} tent_t;

typedef struct tkey {
    _Atomic(tent_t *) head; /* newest entry */
    /* the commit that drained it (NEVER: not yet): a snapshot from then on finds all of
     * its entries in the index, and takes none of them here */
    _Atomic uint64_t drained;
    uint32_t n;             /* entries (writer only) */
    uint16_t klen;
    uint8_t key[];
} tkey_t;

typedef struct chunk {
    struct chunk *prev;
    size_t used;
    _Alignas(16) uint8_t b[CHUNK];
} chunk_t;

typedef struct tepoch {
    _Atomic(tkey_t *) *slots;
    size_t cap; /* slots: a power of two, at most half of them used (kv__tail_room) */
    size_t nkeys, nents;
    chunk_t *mem;
    /* Its keys in the order they came, each commit's new ones sorted when it ends: runs,
     * which a closed epoch merges as it drains (no sort of all of them at once, which
     * took ~180 ms of the writer for 262,144 keys). */
    tkey_t **keys;
    size_t capkeys, sorted;
    size_t *runs; /* the start of each run in keys */
    size_t nruns, capruns;
    size_t *heap; /* closed: the runs' cursors (indices into keys), a min-heap by key */
    size_t nheap;
    uint64_t first_added;  /* the commit that added to it first */
    int64_t opened_ms;     /* CLOCK_MONOTONIC, when it was opened */
    _Atomic uint64_t done; /* the commit that drained its last key, or NEVER */
    uint64_t gone_after;   /* unlinked after this commit */
    _Atomic(struct tepoch *) older;
    struct tepoch *limbo_next;
} tepoch_t;

struct kv_tail {
    _Atomic(tepoch_t *) head; /* open epoch, then older ones newest first */
    tepoch_t *draining;       /* the closed epoch being drained, if any */
    tepoch_t *limbo;          /* unlinked, waiting for their readers */
    size_t limit;             /* entries that close an epoch */
    /* this commit, to undo if it fails */
    tent_t **staged;
    size_t nstaged, capstaged;
    tepoch_t *drained_from; /* the epoch drained this commit, and where it stood */
    size_t *saved, nsaved, capsaved;
    tkey_t **dkeys; /* the keys drained this commit */
    size_t ndkeys, capdkeys;
    bool finished; /* this commit drained its last key */
};

/* ---- read pins ----------------------------------------------------------------------- */

/* 0: free; 1: taken, snapshot not known yet (holds every epoch); else the snapshot */
static _Atomic uint64_t pins[PINS];
static _Thread_local unsigned pin_hint;

int kv__pin(void)
{
    for (unsigned i = 0; i < PINS; i++) {
        unsigned s = (pin_hint + i) % PINS;
        uint64_t free_ = 0;
        if (atomic_compare_exchange_strong(&pins[s], &free_, 1)) {
            pin_hint = s;
            return (int)s;
        }
    }
    return -1; /* more than PINS read transactions at once: never here (LMDB has 256) */
}

void kv__pin_set(int slot, uint64_t snap)
{
    if (slot >= 0)
        atomic_store(&pins[slot], snap < 2 ? 1 : snap);
}

void kv__unpin(int slot)
{
    if (slot >= 0)
        atomic_store(&pins[slot], 0);
}

/* The oldest snapshot of a read in flight (1: one not known yet), or NEVER. */
static uint64_t oldest_pin(void)
{
    uint64_t min = NEVER;
    for (unsigned i = 0; i < PINS; i++) {
        uint64_t v = atomic_load(&pins[i]);
        if (v != 0 && v < min)
            min = v;
    }
    return min;
}

/* ---- epochs -------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *take(tepoch_t *e, size_t n)
{
    n = (n + 7) & ~(size_t)7; /* (an entry: 24 bytes) */
    if (e->mem == NULL || e->mem->used + n > CHUNK) {
        chunk_t *c = mem_alloc(sizeof(*c));
        c->prev = e->mem;
        c->used = 0;
        e->mem = c;
    }
    void *p = e->mem->b + e->mem->used;
    e->mem->used += n;
    return p;
}

/* Whether the open epoch should close: as many entries as it takes, or keys for a quarter of
 * its table. */
static bool full(const kv_tail_t *t, const tepoch_t *e)
{
    return e->nents >= t->limit || e->nkeys >= e->cap / 4;
}

static tepoch_t *epoch_new(size_t limit)
{
    tepoch_t *e = mem_calloc(sizeof(*e));
    /* The epoch closes at a quarter of this many keys (full()), and takes none past half:
     * keys are far fewer than entries (a timeline's take hundreds an epoch). */
    e->cap = 1024;
    while (e->cap < limit)
        e->cap *= 2;
    e->slots = mem_calloc(e->cap * sizeof(*e->slots));
    atomic_init(&e->done, NEVER);
    e->opened_ms = now_ms();
    return e;
}

static void epoch_free(tepoch_t *e)
{
    while (e->mem != NULL) {
        chunk_t *c = e->mem;
        e->mem = c->prev;
        mem_free(c);
    }
    mem_free(e->slots);
    mem_free(e->keys);
    mem_free(e->runs);
    mem_free(e->heap);
    mem_free(e);
}

static tkey_t *find(const tepoch_t *e, const uint8_t *key, size_t klen, size_t *slot)
{
    size_t i = (size_t)hash_fnv1a(HASH_FNV_BASIS, key, klen) & (e->cap - 1);
    for (;; i = (i + 1) & (e->cap - 1)) {
        tkey_t *k = atomic_load_explicit(&e->slots[i], memory_order_acquire);
        if (k == NULL || (k->klen == klen && memcmp(k->key, key, klen) == 0)) {
            if (slot != NULL)
                *slot = i;
            return k;
        }
    }
}

kv_tail_t *kv__tail_new(size_t limit)
{
    kv_tail_t *t = mem_calloc(sizeof(*t));
    t->limit = limit < 16 ? 16 : limit;
    atomic_init(&t->head, epoch_new(t->limit));
    return t;
}

void kv__tail_free(kv_tail_t *t)
{
    if (t == NULL)
        return;
    tepoch_t *e = atomic_load(&t->head);
    while (e != NULL) {
        tepoch_t *o = atomic_load(&e->older);
        epoch_free(e);
        e = o;
    }
    while (t->limbo != NULL) {
        e = t->limbo;
        t->limbo = e->limbo_next;
        epoch_free(e);
    }
    mem_free(t->staged);
    mem_free(t->saved);
    mem_free(t->dkeys);
    mem_free(t);
}

bool kv__tail_room(kv_tail_t *t, size_t n)
{
    const tepoch_t *e = atomic_load(&t->head);
    /* (n entries add at most n keys) */
    return e->nents + n <= 2 * t->limit && e->nkeys + n <= e->cap / 2;
}

bool kv__tail_add(kv_tail_t *t, const uint8_t *key, size_t klen, const uint64_t *ids, size_t n,
                  uint64_t txn, size_t max)
{
    tepoch_t *e = atomic_load(&t->head);
    size_t slot;
    tkey_t *k = find(e, key, klen, &slot);

    /* (a key taken at its bound takes nothing more in this epoch: readers skip it, and
     * the drain would too) */
    if ((k != NULL ? k->n : 0) + n > max || (k != NULL && atomic_load(&k->drained) != NEVER))
        return false;
    if (k == NULL) {
        k = take(e, sizeof(*k) + klen);
        atomic_init(&k->head, NULL);
        atomic_init(&k->drained, NEVER);
        k->n = 0;
        k->klen = (uint16_t)klen;
        memcpy(k->key, key, klen);
        atomic_store_explicit(&e->slots[slot], k, memory_order_release);
        if (e->nkeys == e->capkeys) {
            e->capkeys = e->capkeys ? 2 * e->capkeys : 1024;
            e->keys = mem_realloc(e->keys, e->capkeys * sizeof(*e->keys));
        }
        e->keys[e->nkeys++] = k;
    }
    if (t->nstaged + n > t->capstaged) {
        t->capstaged = 2 * (t->nstaged + n) + 1024;
        t->staged = mem_realloc(t->staged, t->capstaged * sizeof(*t->staged));
    }
    for (size_t i = 0; i < n; i++) {
        tent_t *x = take(e, sizeof(*x));
        x->id = ids[i];
        atomic_init(&x->added, txn);
        x->next = atomic_load_explicit(&k->head, memory_order_relaxed);
        atomic_store_explicit(&k->head, x, memory_order_release);
        t->staged[t->nstaged++] = x;
    }
    k->n += (uint32_t)n;
    if (e->nents == 0)
        e->first_added = txn;
    e->nents += n;
    return true;
}

bool kv__tail_has(kv_tail_t *t, const uint8_t *key, size_t klen)
{
    for (tepoch_t *e = atomic_load(&t->head); e != NULL; e = atomic_load(&e->older)) {
        tkey_t *k = find(e, key, klen, NULL);
        for (tent_t *n = k != NULL ? atomic_load(&k->head) : NULL; n != NULL; n = n->next)
            if (atomic_load(&n->added) != NEVER)
                return true;
    }
    return false;
}

size_t kv__tail_count(kv_tail_t *t, const uint8_t *key, size_t klen)
{
    const tkey_t *k = find(atomic_load(&t->head), key, klen, NULL);
    return k != NULL ? k->n : 0;
}

size_t kv__tail_ids(kv_tail_t *t, const uint8_t *key, size_t klen, uint64_t snap, uint64_t **buf,
                    size_t *cap, size_t n)
{
    /* seq_cst, as the pin taken before: the writer's unlink then its pin scan cannot both
     * miss this read */
    for (tepoch_t *e = atomic_load(&t->head); e != NULL; e = atomic_load(&e->older)) {
        if (atomic_load(&e->done) <= snap)
            break; /* drained before this snapshot, and so is every older one */
        tkey_t *k = find(e, key, klen, NULL);
        if (k == NULL || atomic_load_explicit(&k->drained, memory_order_acquire) <= snap)
            continue; /* none here, or all of it in the index for this snapshot */
        for (tent_t *x = atomic_load_explicit(&k->head, memory_order_acquire); x != NULL;
             x = x->next) {
            if (atomic_load_explicit(&x->added, memory_order_relaxed) > snap)
                continue;
            if (n == *cap) {
                *cap = *cap ? 2 * *cap : 64;
                *buf = mem_realloc(*buf, *cap * sizeof(**buf));
            }
            (*buf)[n++] = x->id;
        }
    }
    return n;
}

/* ---- draining ------------------------------------------------------------------------ */

static int tkey_cmp(const void *pa, const void *pb)
{
    const tkey_t *a = *(tkey_t *const *)pa, *b = *(tkey_t *const *)pb;
    return kv__key_order(a->key, a->klen, b->key, b->klen);
}

/* Sort the keys the open epoch got since the last call: one more run. */
static void close_run(tepoch_t *e)
{
    if (e->sorted == e->nkeys)
        return;
    qsort(e->keys + e->sorted, e->nkeys - e->sorted, sizeof(*e->keys), tkey_cmp);
    if (e->nruns == e->capruns) {
        e->capruns = e->capruns ? 2 * e->capruns : 64;
        e->runs = mem_realloc(e->runs, e->capruns * sizeof(*e->runs));
    }
    e->runs[e->nruns++] = e->sorted;
    e->sorted = e->nkeys;
}

/* The end of the run whose cursor is at @p at. */
static size_t run_end(const tepoch_t *e, size_t at)
{
    size_t lo = 0, hi = e->nruns; /* the last run starting at or before at */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (e->runs[mid] <= at)
            lo = mid;
        else
            hi = mid;
    }
    return lo + 1 < e->nruns ? e->runs[lo + 1] : e->nkeys;
}

static bool heap_less(const tepoch_t *e, size_t a, size_t b)
{
    return tkey_cmp(&e->keys[e->heap[a]], &e->keys[e->heap[b]]) < 0;
}

static void heap_down(tepoch_t *e, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < e->nheap && heap_less(e, l, m))
            m = l;
        if (l + 1 < e->nheap && heap_less(e, l + 1, m))
            m = l + 1;
        if (m == i)
            return;
        size_t x = e->heap[i];
        e->heap[i] = e->heap[m];
        e->heap[m] = x;
        i = m;
    }
}

/* The next key of a closed epoch in key order, or NULL. */
static tkey_t *next_key(tepoch_t *e)
{
    if (e->nheap == 0)
        return NULL;
    size_t at = e->heap[0];
    tkey_t *k = e->keys[at];
    if (at + 1 < run_end(e, at))
        e->heap[0] = at + 1;
    else
        e->heap[0] = e->heap[--e->nheap];
    heap_down(e, 0);
    return k;
}

/* Give @p k's entries to @p into and mark it drained by @p txn (undone if that commit
 * fails); nothing for a key drained already (kv__tail_take_key). @return how many. */
static size_t drain_key(kv_tail_t *t, tkey_t *k, uint64_t txn,
                        void (*into)(void *ctx, const uint8_t *key, size_t klen, uint64_t id),
                        void *ctx)
{
    size_t got = 0;

    if (atomic_load(&k->drained) != NEVER)
        return 0;
    for (tent_t *x = atomic_load(&k->head); x != NULL; x = x->next)
        if (atomic_load(&x->added) != NEVER) {
            into(ctx, k->key, k->klen, x->id);
            got++;
        }
    if (t->ndkeys == t->capdkeys) {
        t->capdkeys = t->capdkeys ? 2 * t->capdkeys : 1024;
        t->dkeys = mem_realloc(t->dkeys, t->capdkeys * sizeof(*t->dkeys));
    }
    t->dkeys[t->ndkeys++] = k;
    atomic_store_explicit(&k->drained, txn, memory_order_release);
    return got;
}

size_t kv__tail_take_key(kv_tail_t *t, const uint8_t *key, size_t klen, uint64_t txn,
                         void (*into)(void *ctx, const uint8_t *key, size_t klen, uint64_t id),
                         void *ctx)
{
    size_t got = 0;
    for (tepoch_t *e = atomic_load(&t->head); e != NULL; e = atomic_load(&e->older)) {
        tkey_t *k = atomic_load(&e->done) == NEVER ? find(e, key, klen, NULL) : NULL;
        if (k != NULL)
            got += drain_key(t, k, txn, into, ctx);
    }
    return got;
}

/* Close the open epoch (its runs merged as it drains) and open a new one. */
static void rotate(kv_tail_t *t)
{
    tepoch_t *e = atomic_load(&t->head), *n = epoch_new(t->limit);

    close_run(e);
    e->heap = mem_alloc((e->nruns ? e->nruns : 1) * sizeof(*e->heap));
    for (size_t r = 0; r < e->nruns; r++)
        e->heap[e->nheap++] = e->runs[r];
    for (size_t i = e->nheap / 2; i-- > 0;)
        heap_down(e, i);
    t->draining = e;
    atomic_store(&n->older, e);
    atomic_store_explicit(&t->head, n, memory_order_release);
}

int kv__tail_drain(kv_tail_t *t, uint64_t txn, size_t added,
                   void (*into)(void *ctx, const uint8_t *key, size_t klen, uint64_t id),
                   void *ctx, uint64_t *log_upto)
{
    tepoch_t *head = atomic_load(&t->head), *e;
    /* twice what came in, so that the closed epoch is drained before the open one fills */
    size_t got = 0, want = 2 * added > t->limit / 64 ? 2 * added : t->limit / 64 + 1;
    tkey_t *k;

    *log_upto = 0;
    t->drained_from = NULL;
    t->finished = false;
    close_run(head);
    if (t->draining == NULL) {
        /* full, or open for a minute: a quiet server's appends reach cmsgs too */
        if (head->nents == 0 || (!full(t, head) && now_ms() - head->opened_ms < AGE_MS))
            return 0;
        rotate(t);
        head = atomic_load(&t->head);
    }
    e = t->draining;
    /* the open epoch about to overflow its table: drain the closed one whole */
    if (full(t, head))
        want = SIZE_MAX;
    /* what a failed commit puts back */
    t->drained_from = e;
    t->nsaved = e->nheap;
    if (e->nheap > t->capsaved) {
        t->capsaved = e->nheap;
        t->saved = mem_realloc(t->saved, t->capsaved * sizeof(*t->saved));
    }
    memcpy(t->saved, e->heap, e->nheap * sizeof(*e->heap));
    while (got < want && (k = next_key(e)) != NULL)
        got += drain_key(t, k, txn, into, ctx);
    if (e->nheap == 0) {
        /* every record older than the open epoch's first is drained now */
        atomic_store(&e->done, txn);
        *log_upto = head->nents > 0 ? head->first_added - 1 : UINT64_MAX;
        t->finished = true;
    }
    return 0;
}

void kv__tail_committed(kv_tail_t *t, uint64_t txn, bool ok)
{
    tepoch_t *prev = atomic_load(&t->head), *e;
    uint64_t oldest;

    if (!ok && t->drained_from != NULL) {
        tepoch_t *d = t->drained_from;
        memcpy(d->heap, t->saved, t->nsaved * sizeof(*d->heap));
        d->nheap = t->nsaved;
        atomic_store(&d->done, NEVER);
    }
    if (!ok) /* (the drain's keys, and a busy key's taken at once) */
        for (size_t i = 0; i < t->ndkeys; i++)
            atomic_store(&t->dkeys[i]->drained, NEVER);
    if (!ok)
        for (size_t i = 0; i < t->nstaged; i++)
            atomic_store(&t->staged[i]->added, NEVER);
    if (ok && t->finished)
        t->draining = NULL;
    t->nstaged = 0;
    t->ndkeys = 0;
    t->drained_from = NULL;
    t->finished = false;
    /* Unlink the drained epochs no read in flight needs: snapshots from their drain on find
     * all of them in cmsgs. Drains finish oldest first, so those are the list's end. */
    oldest = oldest_pin();
    for (e = atomic_load(&prev->older); e != NULL; prev = e, e = atomic_load(&e->older)) {
        uint64_t done = atomic_load(&e->done);
        if (done != NEVER && done <= oldest)
            break;
    }
    if (e != NULL) {
        atomic_store(&prev->older, NULL);
        while (e != NULL) {
            tepoch_t *o = atomic_load(&e->older);
            e->gone_after = txn;
            e->limbo_next = t->limbo;
            t->limbo = e;
            e = o;
        }
    }
    /* free what no read in flight can reach: every one began after a commit that followed
     * the unlink. The pins are read again after the unlink (a read that pinned since may
     * have reached what was just unlinked; one that pins later cannot). */
    oldest = oldest_pin();
    for (tepoch_t **p = &t->limbo; *p != NULL;) {
        e = *p;
        if (oldest <= e->gone_after) {
            p = &e->limbo_next;
        } else {
            *p = e->limbo_next;
            epoch_free(e);
        }
    }
}
