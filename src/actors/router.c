#include "actors/router.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "core/hash.h"
#include "core/mem.h"

/* A user's entry: the key (app NUL user) and a small array of sessions. Most users have
 * one to three devices, so a linear array beats anything cleverer. */
typedef struct ruser {
    struct ruser *next;  /* hash chain */
    uint64_t hash;
    router_ent_t *ents;
    uint32_t n, cap;
    uint16_t klen;
    char key[];          /* app '\0' user '\0' */
} ruser_t;

typedef struct shard {
    pthread_rwlock_t lock;
    ruser_t **buckets;
    size_t nbuckets;     /* power of two */
    size_t nusers;
} shard_t;

struct router {
    shard_t shards[ROUTER_SHARDS];
    _Atomic size_t count;
};

static uint64_t hash_key(const char *app, const char *user, char *key, uint16_t *klen)
{
    /* FNV-1a over "app\0user": cheap, and the shard bits come from the high half. */
    size_t a = strlen(app), u = strlen(user);
    memcpy(key, app, a + 1);
    memcpy(key + a + 1, user, u + 1);
    *klen = (uint16_t)(a + u + 2);
    return hash_fnv1a(HASH_FNV_BASIS, key, *klen);
}

router_t *router_new(void)
{
    router_t *r = mem_calloc(sizeof(*r));
    for (int i = 0; i < ROUTER_SHARDS; i++) {
        pthread_rwlock_init(&r->shards[i].lock, NULL);
        r->shards[i].nbuckets = 64;
        r->shards[i].buckets = mem_calloc(64 * sizeof(ruser_t *));
    }
    return r;
}

void router_free(router_t *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < ROUTER_SHARDS; i++) {
        shard_t *s = &r->shards[i];
        for (size_t b = 0; b < s->nbuckets; b++) {
            ruser_t *u = s->buckets[b], *next;
            for (; u != NULL; u = next) {
                next = u->next;
                mem_free(u->ents);
                mem_free(u);
            }
        }
        mem_free(s->buckets);
        pthread_rwlock_destroy(&s->lock);
    }
    mem_free(r);
}

static shard_t *shard_of(router_t *r, uint64_t h)
{
    return &r->shards[(h >> 58) % ROUTER_SHARDS];
}

static ruser_t **find(shard_t *s, uint64_t h, const char *key, uint16_t klen)
{
    ruser_t **p = &s->buckets[h & (s->nbuckets - 1)];
    for (; *p != NULL; p = &(*p)->next)
        if ((*p)->hash == h && (*p)->klen == klen && memcmp((*p)->key, key, klen) == 0)
            return p;
    return p;
}

static void grow(shard_t *s)
{
    size_t n = s->nbuckets * 2;
    ruser_t **b = mem_calloc(n * sizeof(*b));
    for (size_t i = 0; i < s->nbuckets; i++) {
        ruser_t *u = s->buckets[i], *next;
        for (; u != NULL; u = next) {
            next = u->next;
            u->next = b[u->hash & (n - 1)];
            b[u->hash & (n - 1)] = u;
        }
    }
    mem_free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

int router_add(router_t *r, const char *app, const char *user, const router_ent_t *ent,
               bool single, router_ent_t *kicked, size_t kicked_max, size_t *nkicked,
               bool *first)
{
    char key[2 * 65 + 2];
    uint16_t klen;
    uint64_t h = hash_key(app, user, key, &klen);
    shard_t *s = shard_of(r, h);
    size_t nk = 0;
    ruser_t **p, *u;

    pthread_rwlock_wrlock(&s->lock);
    p = find(s, h, key, klen);
    if (*p == NULL) {
        if (s->nusers >= s->nbuckets)
            grow(s);
        p = find(s, h, key, klen);
        u = mem_calloc(sizeof(*u) + klen);
        u->hash = h;
        u->klen = klen;
        memcpy(u->key, key, klen);
        *p = u;
        s->nusers++;
    }
    u = *p;
    *first = u->n == 0;
    /* Kicked entries leave the table now, so a delivery never targets a session that is
     * on its way out, and a second login with the same device cannot kick twice. */
    for (uint32_t i = 0; i < u->n;) {
        if (single || strcmp(u->ents[i].device, ent->device) == 0) {
            if (nk < kicked_max)
                kicked[nk++] = u->ents[i];
            u->ents[i] = u->ents[--u->n];
            atomic_fetch_sub(&r->count, 1);
        } else {
            i++;
        }
    }
    if (u->n == u->cap) {
        u->cap = u->cap ? u->cap * 2 : 2;
        u->ents = mem_realloc(u->ents, u->cap * sizeof(*u->ents));
    }
    u->ents[u->n++] = *ent;
    atomic_fetch_add(&r->count, 1);
    pthread_rwlock_unlock(&s->lock);
    *nkicked = nk;
    return 0;
}

bool router_remove(router_t *r, const char *app, const char *user, uint64_t sid)
{
    char key[2 * 65 + 2];
    uint16_t klen;
    uint64_t h = hash_key(app, user, key, &klen);
    shard_t *s = shard_of(r, h);
    bool last = false;
    ruser_t **p, *u;

    pthread_rwlock_wrlock(&s->lock);
    p = find(s, h, key, klen);
    if ((u = *p) != NULL) {
        for (uint32_t i = 0; i < u->n; i++) {
            if (u->ents[i].sid == sid) {
                u->ents[i] = u->ents[--u->n];
                atomic_fetch_sub(&r->count, 1);
                last = u->n == 0;
                break;
            }
        }
        if (u->n == 0) {
            *p = u->next;
            s->nusers--;
            mem_free(u->ents);
            mem_free(u);
        }
    }
    pthread_rwlock_unlock(&s->lock);
    return last;
}

size_t router_lookup(router_t *r, const char *app, const char *user, router_ent_t *out,
                     size_t max)
{
    char key[2 * 65 + 2];
    uint16_t klen;
    uint64_t h = hash_key(app, user, key, &klen);
    shard_t *s = shard_of(r, h);
    size_t n = 0;
    ruser_t *u;

    pthread_rwlock_rdlock(&s->lock);
    u = *find(s, h, key, klen);
    if (u != NULL) {
        n = u->n;
        memcpy(out, u->ents, (n < max ? n : max) * sizeof(*out));
    }
    pthread_rwlock_unlock(&s->lock);
    return n;
}

size_t router_count(router_t *r)
{
    return atomic_load(&r->count);
}
