#include "actors/dedup.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "actors/feed.h"
#include "actors/group.h"
#include "actors/message.h"
#include "actors/xhome.h"
#include "cim.pb.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"

#define STRIPES DEDUP_STRIPES
#define GEN_MIN_CAP 64 /* slots of a generation's first table */

/* One entry: the hash of (user, cmid), never 0 (0 marks a free slot), and the id. */
typedef struct slot {
    uint64_t h;
    uint64_t id;
} slot_t;

/* The entries of one span of time in one stripe: open addressing, linear probing; equal
 * hashes may repeat (the same user id and cmid in two apps). */
typedef struct gen {
    uint64_t epoch; /* time span number (ms / span_ms); 0 = unused */
    slot_t *slot;
    size_t cap, n;  /* cap: a power of two, or 0 */
} gen_t;

typedef struct stripe {
    pthread_mutex_t mu;
    gen_t gen[DEDUP_GENS];
} stripe_t;

struct dedup {
    uint64_t span_ms;            /* window / (DEDUP_GENS - 1) */
    _Atomic uint64_t committed;  /* ids up to this are committed */
    _Atomic size_t count;
    _Atomic size_t slots;        /* slots allocated, every table together */
    stripe_t stripe[STRIPES];
};

/* FNV-1a over "user\0cmid", then a final mix (FNV's low bits pick the slot). */
static uint64_t key_hash(const char *user, const char *cmid)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = user;; p++) {
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
        if (*p == '\0')
            break;
    }
    for (const char *p = cmid; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h ? h : 1;
}

dedup_t *dedup_new(uint32_t window_h)
{
    dedup_t *d = mem_calloc(sizeof(*d));
    d->span_ms = (uint64_t)(window_h ? window_h : 1) * 3600000ULL / (DEDUP_GENS - 1);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&d->stripe[i].mu, NULL);
    return d;
}

static void gen_clear(dedup_t *d, gen_t *g)
{
    atomic_fetch_sub_explicit(&d->count, g->n, memory_order_relaxed);
    atomic_fetch_sub_explicit(&d->slots, g->cap, memory_order_relaxed);
    mem_free(g->slot);
    memset(g, 0, sizeof(*g));
}

void dedup_free(dedup_t *d)
{
    if (d == NULL)
        return;
    for (int i = 0; i < STRIPES; i++) {
        for (int g = 0; g < DEDUP_GENS; g++)
            mem_free(d->stripe[i].gen[g].slot);
        pthread_mutex_destroy(&d->stripe[i].mu);
    }
    mem_free(d);
}

/* Insert without growing (the caller made room). */
static void gen_put(gen_t *g, uint64_t h, uint64_t id)
{
    size_t i = (size_t)(h >> 6) & (g->cap - 1); /* the low 6 bits chose the stripe */
    while (g->slot[i].h != 0)
        i = (i + 1) & (g->cap - 1);
    g->slot[i].h = h;
    g->slot[i].id = id;
    g->n++;
}

static void gen_grow(dedup_t *d, gen_t *g)
{
    slot_t *old = g->slot;
    size_t oldcap = g->cap;
    g->cap = oldcap ? oldcap * 2 : GEN_MIN_CAP;
    atomic_fetch_add_explicit(&d->slots, g->cap - oldcap, memory_order_relaxed);
    g->slot = mem_calloc(g->cap * sizeof(*g->slot));
    g->n = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].h != 0)
            gen_put(g, old[i].h, old[i].id);
    mem_free(old);
}

static uint64_t epoch_of(const dedup_t *d, uint64_t id)
{
    return snowflake_time_ms(id) / d->span_ms + 1; /* + 1: never 0 */
}

void dedup_add(dedup_t *d, const char *user, const char *cmid, uint64_t msg_id)
{
    uint64_t h, e;
    unsigned stripe;
    stripe_t *st;
    gen_t *g;

    if (cmid == NULL || cmid[0] == '\0')
        return;
    h = key_hash(user, cmid);
    e = epoch_of(d, msg_id);
    stripe = (unsigned)(h % STRIPES);
    st = &d->stripe[stripe];
    pthread_mutex_lock(&st->mu);
    g = &st->gen[e % DEDUP_GENS];
    if (g->epoch != e) {
        if (g->epoch > e) { /* older than what this slot now holds: past the window */
            pthread_mutex_unlock(&st->mu);
            return;
        }
        gen_clear(d, g);
        g->epoch = e;
    }
    /* Stripe k grows at a fill of (320 + k) / 512 (0.625 to 0.748), not all at 0.75: the
     * hash fills the stripes evenly, so with one threshold all 64 doubled within a few
     * thousand adds of each other — at 25 M entries a rehash of ~33 M slots and ~1 GiB
     * first touched, on the writer, at once (a 10 s window of c2c 20-30 % below the
     * others). Staggered, they double one at a time over a sixth of the growth, a
     * sixty-fourth of that each, for ~10 % more slots. */
    if ((g->n + 1) * 512 > g->cap * (320 + stripe))
        gen_grow(d, g);
    gen_put(g, h, msg_id);
    pthread_mutex_unlock(&st->mu);
    atomic_fetch_add_explicit(&d->count, 1, memory_order_relaxed);
}

void dedup_committed(dedup_t *d, uint64_t id)
{
    atomic_store_explicit(&d->committed, id, memory_order_release);
}

void dedup_expire(dedup_t *d, uint64_t now_ms)
{
    uint64_t now_e = now_ms / d->span_ms + 1;

    for (int i = 0; i < STRIPES; i++) {
        stripe_t *st = &d->stripe[i];
        pthread_mutex_lock(&st->mu);
        for (int g = 0; g < DEDUP_GENS; g++)
            if (st->gen[g].epoch != 0 && st->gen[g].epoch + DEDUP_GENS <= now_e)
                gen_clear(d, &st->gen[g]);
        pthread_mutex_unlock(&st->mu);
    }
}

unsigned dedup_stripe(const char *user, const char *cmid)
{
    return (unsigned)(key_hash(user, cmid) % STRIPES);
}

size_t dedup_bytes(dedup_t *d)
{
    return atomic_load_explicit(&d->slots, memory_order_relaxed) * sizeof(slot_t);
}

size_t dedup_count(dedup_t *d)
{
    return atomic_load_explicit(&d->count, memory_order_relaxed);
}

/* ---- the records ------------------------------------------------------------------- */

static int first_app(void *ctx, const uint8_t *x, size_t len)
{
    xhome_msg_t m;
    return xhome_parse(x, len, &m) == 0 && strcmp(m.app, ctx) == 0 ? 1 : RC_ENOTFOUND;
}

/* Is @p id in this node's outbox, for app @p app (its first copy says)? */
static int in_outbox(kv_txn_t *txn, const char *app, uint64_t id)
{
    const uint8_t *v;
    size_t len;
    int rc = kv_outbox_get(txn, id, &v, &len);

    if (rc < 0)
        return rc;
    return xhome_outbox_each(v, len, first_app, (void *)app) == 1 ? DEDUP_PENDING : RC_ENOTFOUND;
}

/* Is @p id a message (@p app, @p user) stored with @p cmid? */
static int verify(kv_txn_t *txn, const char *app, const char *user, const char *cmid,
                  uint64_t id)
{
    const uint8_t *rec;
    cim_Message m;
    uint64_t gid;
    group_t g;
    size_t len;
    int rc = kv_msg_get(txn, id, &rec, &len);

    if (rc < 0)
        return rc;
    if (!message_decode_head(rec, len, &m) || strcmp(m.from, user) != 0 ||
        strcmp(m.client_msg_id, cmid) != 0)
        return RC_ENOTFOUND;
    rc = feed_has_in(txn, app, user, id, m.conv_type, m.to);
    /* In a cluster a group's messages are stored by the group's home, maybe not the
     * sender's: there a group of that app (group ids are unique across apps) says it. */
    if (rc == RC_ENOTFOUND && m.conv_type == cim_ConvType_GROUP &&
        group_id_parse(m.to, &gid) == 0)
        rc = group_load(txn, app, gid, &g);
    /* In a cluster a DIRECT message reaches the sender's timeline through the merge, some
     * time after its commit: meanwhile the outbox says it. */
    else if (rc == RC_ENOTFOUND)
        rc = in_outbox(txn, app, id);
    return rc;
}

#define CANDIDATES_MAX 16

int dedup_find(dedup_t *d, kv_txn_t *txn, const char *app, const char *user, const char *cmid,
               bool committed_only, uint64_t *out)
{
    uint64_t cand[CANDIDATES_MAX], h, limit;
    size_t n = 0;
    stripe_t *st;
    int rc;

    if (cmid == NULL || cmid[0] == '\0')
        return RC_ENOTFOUND;
    h = key_hash(user, cmid);
    limit = committed_only ? atomic_load_explicit(&d->committed, memory_order_acquire)
                           : UINT64_MAX;
    st = &d->stripe[h % STRIPES];
    pthread_mutex_lock(&st->mu);
    for (int gi = 0; gi < DEDUP_GENS; gi++) {
        gen_t *g = &st->gen[gi];
        if (g->cap == 0)
            continue;
        for (size_t i = (size_t)(h >> 6) & (g->cap - 1); g->slot[i].h != 0;
             i = (i + 1) & (g->cap - 1))
            if (g->slot[i].h == h && g->slot[i].id <= limit && n < CANDIDATES_MAX)
                cand[n++] = g->slot[i].id;
    }
    pthread_mutex_unlock(&st->mu);
    /* Checked outside the lock: reading records may touch the disk. */
    for (size_t i = 0; i < n; i++) {
        rc = verify(txn, app, user, cmid, cand[i]);
        if (rc == 0 || rc == DEDUP_PENDING) {
            *out = cand[i];
            return rc;
        }
        if (rc != RC_ENOTFOUND)
            return rc;
    }
    return RC_ENOTFOUND;
}

typedef struct load_ctx {
    dedup_t *d;
    size_t n;
} load_ctx_t;

static int load_one(void *ctx, uint64_t id, const uint8_t *rec, size_t len)
{
    load_ctx_t *lc = ctx;
    cim_Message m;
    if (message_decode_head(rec, len, &m) && m.client_msg_id[0] != '\0') {
        dedup_add(lc->d, m.from, m.client_msg_id, id);
        lc->n++;
    }
    return 0;
}

int dedup_load(dedup_t *d, kv_txn_t *txn, uint64_t now_ms, size_t *loaded)
{
    /* Everything the generations kept at now_ms can hold: DEDUP_GENS spans back. */
    uint64_t from_ms = now_ms / d->span_ms > DEDUP_GENS
                           ? (now_ms / d->span_ms - (DEDUP_GENS - 1)) * d->span_ms
                           : 0;
    uint64_t from = snowflake_first_of_ms(from_ms);
    load_ctx_t lc = {d, 0};
    uint64_t last = 0;
    int rc;

    if ((rc = kv_msg_scan(txn, from, load_one, &lc)) < 0)
        return rc;
    if ((rc = kv_msg_last_id(txn, &last)) < 0)
        return rc;
    dedup_committed(d, last);
    if (loaded != NULL)
        *loaded = lc.n;
    return 0;
}
