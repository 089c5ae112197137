/**
 * series: a measured run cut into windows of fixed length (cimbench --window-s): per
 * window, the operations completed in it (counted at their completion time) and up to
 * SERIES_HISTS latency histograms, so that a report shows whether the rate holds as the
 * run goes on (and the data grows) instead of one average over the whole run.
 *
 * Design. The windows (series_t) are shared by every loop thread of cimbench and guarded
 * by one mutex. Each thread accumulates the window it is in, lock-free, in its own
 * series_acc_t and merges it into the shared window when its first event of a later window
 * arrives (a thread's events come in time order) and once more at the end
 * (series_acc_flush): the mutex is taken about once per window per thread, never per
 * event. A window's histograms are allocated when something is merged into it; windows
 * past SERIES_MAX count into the last one (cimbench refuses a --window-s that would need
 * more). Window i spans [t0 + i*len, t0 + (i+1)*len); an event before t0 counts into
 * window 0.
 *
 * Threading: series_init, series_start, series_free and reading s->w: one thread, while no
 * accumulator records (series_start before the loop threads are told to start; reading
 * after they were joined). series_acc_*: only the thread that owns the accumulator.
 */
#ifndef CIMBENCH_SERIES_H
#define CIMBENCH_SERIES_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "hist.h"

#define SERIES_HISTS 2    /* latency histograms per window (c2c, group: ack and push) */
#define SERIES_MAX   1000 /* windows kept */

/** One window, merged over every thread. */
typedef struct series_win {
    uint64_t ops;            /* operations completed in the window */
    uint64_t t_last_ns;      /* completion time of its last operation; 0 = none */
    hist_t *h[SERIES_HISTS]; /* NULL until a latency was merged into it */
} series_win_t;

/** The shared windows. */
typedef struct series {
    uv_mutex_t mu;
    uint64_t t0_ns;  /* start of window 0; 0 until series_start */
    uint64_t len_ns; /* window length */
    unsigned n;      /* windows that got something: w[0..n-1] */
    series_win_t w[SERIES_MAX];
} series_t;

/** One thread's current window. */
typedef struct series_acc {
    series_t *s;
    int64_t cur; /* index of the window being accumulated; -1 = none yet */
    uint64_t ops, t_last_ns;
    bool has_h[SERIES_HISTS];
    hist_t h[SERIES_HISTS];
} series_acc_t;

/**
 * Prepare @p s for windows of @p len_ns (> 0) nanoseconds.
 * @return 0, or a UV_E* code from uv_mutex_init.
 */
int series_init(series_t *s, uint64_t len_ns);

/** Window 0 starts at @p t0_ns (CLOCK_MONOTONIC; see bench_now_ns). */
void series_start(series_t *s, uint64_t t0_ns);

/** Free the histograms and the mutex of @p s (initialised by series_init). */
void series_free(series_t *s);

/** Attach @p a to @p s, nothing accumulated. */
void series_acc_init(series_acc_t *a, series_t *s);

/** Count @p n operations completed at @p now_ns. Ignored before series_start. */
void series_acc_op(series_acc_t *a, uint64_t now_ns, uint64_t n);

/** Record latency @p ns into histogram @p which (< SERIES_HISTS) of the window of
 *  @p now_ns. Ignored before series_start. */
void series_acc_lat(series_acc_t *a, uint64_t now_ns, unsigned which, uint64_t ns);

/** Merge what @p a holds into the shared window (takes the mutex) and empty @p a. */
void series_acc_flush(series_acc_t *a);

#endif
