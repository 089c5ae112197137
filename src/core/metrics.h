/**
 * metrics: counters and histograms that one thread writes and any thread reads (the admin
 * thread renders them for /metrics, docs/ADMIN-API.md).
 *
 * A counter has exactly one writer (a worker, the store): an add is a relaxed load and a
 * relaxed store, which on x86 are plain moves — no locked instruction on the message
 * path. Readers see a value that is at most a little behind. Histograms keep cumulative
 * bucket counts in the Prometheus shape (le bounds, +Inf, sum, count).
 *
 * Threading: ctr_add/hist_observe from the owning thread only; the getters anywhere.
 */
#ifndef CIM_CORE_METRICS_H
#define CIM_CORE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct ctr {
    _Atomic uint64_t v;
} ctr_t;

static inline void ctr_add(ctr_t *c, uint64_t n)
{
    atomic_store_explicit(&c->v, atomic_load_explicit(&c->v, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t ctr_get(const ctr_t *c)
{
    return atomic_load_explicit(&c->v, memory_order_relaxed);
}

#define HIST_MAX_BUCKETS 16

/* A histogram: counts[i] observations <= le[i] (not cumulative here; the renderer sums),
 * counts[nle] above the last bound. sum is kept as the bits of a double. */
typedef struct hist {
    const double *le;
    size_t nle;
    ctr_t counts[HIST_MAX_BUCKETS + 1];
    _Atomic uint64_t sum_bits;
} hist_t;

static inline void hist_init(hist_t *h, const double *le, size_t nle)
{
    memset(h, 0, sizeof(*h));
    h->le = le;
    h->nle = nle < HIST_MAX_BUCKETS ? nle : HIST_MAX_BUCKETS;
}

static inline void hist_observe(hist_t *h, double x)
{
    size_t i = 0;
    uint64_t bits = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
    double sum;
    while (i < h->nle && x > h->le[i])
        i++;
    ctr_add(&h->counts[i], 1);
    memcpy(&sum, &bits, sizeof(sum));
    sum += x;
    memcpy(&bits, &sum, sizeof(bits));
    atomic_store_explicit(&h->sum_bits, bits, memory_order_relaxed);
}

static inline double hist_sum(const hist_t *h)
{
    uint64_t bits = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
    double sum;
    memcpy(&sum, &bits, sizeof(sum));
    return sum;
}

#endif
