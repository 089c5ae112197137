#include "core/home.h"

#include <string.h>

#include "core/be.h"
#include "core/hash.h"

static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

/* FNV-1a of "app NUL id NUL": the part every node's score shares. */
static uint64_t key_hash(const char *app, const char *id)
{
    if (app == NULL || app[0] == '\0')
        app = "default";
    return hash_fnv1a(hash_fnv1a(HASH_FNV_BASIS, app, strlen(app) + 1), id, strlen(id) + 1);
}

static uint64_t node_score(uint64_t key, uint32_t node)
{
    uint8_t be[4];

    be32_put(be, node);
    return fmix64(hash_fnv1a(key, be, sizeof(be)));
}

uint64_t home_score(const char *app, const char *id, uint32_t node)
{
    return node_score(key_hash(app, id), node);
}

uint32_t home_pick(const uint32_t *nodes, size_t n, const char *app, const char *id)
{
    uint64_t key = key_hash(app, id), best_score = node_score(key, nodes[0]);
    uint32_t best = nodes[0];

    for (size_t i = 1; i < n; i++) {
        uint64_t s = node_score(key, nodes[i]);
        if (s > best_score || (s == best_score && nodes[i] < best)) {
            best_score = s;
            best = nodes[i];
        }
    }
    return best;
}
