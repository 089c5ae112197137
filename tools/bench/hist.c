/* hist: log-linear latency histogram (see hist.h for the layout). */
#include "hist.h"

#include <string.h>

/* Bucket of a value: exact below HIST_LINEAR; above, the octave (position of the top
 * bit) and the next 7 bits. */
static unsigned bucket_of(uint64_t v)
{
    unsigned msb, shift;

    if (v > HIST_MAX_NS)
        v = HIST_MAX_NS;
    if (v < HIST_LINEAR)
        return (unsigned)v;
    msb = 63u - (unsigned)__builtin_clzll(v); /* >= 8 */
    shift = msb - 7u;                         /* v >> shift is in [128, 256) */
    return HIST_LINEAR + (shift - 1u) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

/* The middle of bucket @p i. */
static uint64_t bucket_mid(unsigned i)
{
    unsigned shift;
    uint64_t lo;

    if (i < HIST_LINEAR)
        return i;
    shift = (i - HIST_LINEAR) / HIST_SUB + 1u;
    lo = (uint64_t)(HIST_SUB + (i - HIST_LINEAR) % HIST_SUB) << shift;
    return lo + ((1ull << shift) >> 1);
}

void hist_reset(hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min_ns = UINT64_MAX;
}

void hist_record(hist_t *h, uint64_t ns)
{
    h->b[bucket_of(ns)]++;
    h->count++;
    h->sum_ns += ns;
    if (ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

void hist_merge(hist_t *dst, const hist_t *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum_ns += src->sum_ns;
    if (src->min_ns < dst->min_ns)
        dst->min_ns = src->min_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
}

uint64_t hist_percentile(const hist_t *h, double pct)
{
    uint64_t rank, seen = 0, v;

    if (h->count == 0)
        return 0;
    if (pct >= 100.0)
        return h->max_ns;
    /* the smallest rank covering pct % of the values, at least the first */
    rank = (uint64_t)(pct / 100.0 * (double)h->count + 0.9999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            v = bucket_mid(i);
            if (v < h->min_ns)
                v = h->min_ns;
            if (v > h->max_ns)
                v = h->max_ns;
            return v;
        }
    }
    return h->max_ns; /* not reached: the buckets add up to count */
}

double hist_mean(const hist_t *h)
{
    return h->count != 0 ? (double)h->sum_ns / (double)h->count : 0.0;
}
