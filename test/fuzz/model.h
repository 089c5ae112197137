/**
 * What the models of fuzz_bus and fuzz_busmsg (test/fuzz/fuzz_bus.c, fuzz_busmsg.c) read
 * the bus's formats with: their own byte reader and id check, written from the formats'
 * descriptions (src/actors/xhome.h, cluster_xhome.c, ...; kv.h for ids) rather than
 * taken from the code under test.
 */
#ifndef CIM_TEST_FUZZ_MODEL_H
#define CIM_TEST_FUZZ_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/kv.h"

/** The @p k-byte (at most 8) big-endian integer at @p p. */
static inline uint64_t model_get(const uint8_t *p, size_t k)
{
    uint64_t v = 0;

    while (k-- > 0)
        v = v << 8 | *p++;
    return v;
}

/** Are the @p n bytes at @p p an id (kv.h: 1..KV_ID_MAX of [A-Za-z0-9._@-])? */
static inline bool model_id(const uint8_t *p, size_t n)
{
    if (n == 0 || n > KV_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
              (p[i] >= '0' && p[i] <= '9') || p[i] == '.' || p[i] == '_' || p[i] == '@' ||
              p[i] == '-'))
            return false;
    return true;
}

#endif
