/**
 * hash: FNV-1a, 64-bit, the hash of cim's in-memory tables (the store's batch tables, the
 * gathered index appends, the router, the cluster's homes). Cheap for the short keys they
 * hold; tables that pick slots with the low bits mix the result first where it matters.
 */
#ifndef CIM_CORE_HASH_H
#define CIM_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_FNV_BASIS 0xcbf29ce484222325ULL

/** Continue FNV-1a hash @p h (start: HASH_FNV_BASIS) over @p n bytes at @p p. */
static inline uint64_t hash_fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

#endif
