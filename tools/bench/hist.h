/**
 * hist: a latency histogram with log-linear buckets (the HdrHistogram layout, written
 * small for cimbench; Debian does not package HdrHistogram_c).
 *
 * Design. Values are nanoseconds. Below 256 ns every value has its own bucket; above,
 * every power-of-two octave [2^k, 2^(k+1)) is cut into 128 equal sub-buckets, so a
 * bucket is at most 1/128 of the values it holds wide (< 0.8 %) and a reported value,
 * the middle of its bucket, is within 0.4 % of the true one. The buckets reach
 * HIST_MAX_NS (60 s); a larger value is counted in the last bucket, while min, max and
 * the mean stay exact. 3,840 counters: 30 KiB per histogram, recording is a few
 * instructions and never allocates.
 *
 * Percentiles follow the usual definition: the smallest recorded value v such that at
 * least p % of the recorded values are <= v (reported as the middle of v's bucket,
 * clamped to [min, max]); p = 100 is the exact max.
 *
 * Threading: a histogram belongs to one thread; merge copies from others when they are
 * done.
 */
#ifndef CIMBENCH_HIST_H
#define CIMBENCH_HIST_H

#include <stdint.h>

#define HIST_LINEAR  256u /* exact buckets for 0..255 ns */
#define HIST_SUB     128u /* sub-buckets per octave above */
#define HIST_OCTAVES 28u  /* 2^8 .. 2^36 ns (68.7 s) */
#define HIST_BUCKETS (HIST_LINEAR + HIST_OCTAVES * HIST_SUB)
#define HIST_MAX_NS  60000000000ull /* values above share the last bucket */

typedef struct hist {
    uint64_t count;
    uint64_t sum_ns; /* for the mean; wraps only past 584 years of latency */
    uint64_t min_ns; /* UINT64_MAX while empty */
    uint64_t max_ns;
    uint64_t b[HIST_BUCKETS];
} hist_t;

/** Empty @p h (also to reuse it). */
void hist_reset(hist_t *h);

/** Count one value of @p ns nanoseconds. */
void hist_record(hist_t *h, uint64_t ns);

/** Add every value counted in @p src to @p dst. */
void hist_merge(hist_t *dst, const hist_t *src);

/**
 * The @p pct percentile (0 < pct <= 100) in nanoseconds, as defined above.
 * @return 0 when @p h is empty.
 */
uint64_t hist_percentile(const hist_t *h, double pct);

/** The mean in nanoseconds; 0 when empty. */
double hist_mean(const hist_t *h);

#endif
