/* series: throughput and latency per fixed window of a run (series.h says how). */
#include "series.h"

#include <string.h>

#include "core/mem.h"

int series_init(series_t *s, uint64_t len_ns)
{
    memset(s, 0, sizeof(*s));
    s->len_ns = len_ns != 0 ? len_ns : 1;
    return uv_mutex_init(&s->mu);
}

void series_start(series_t *s, uint64_t t0_ns)
{
    s->t0_ns = t0_ns;
}

void series_free(series_t *s)
{
    for (unsigned i = 0; i < SERIES_MAX; i++)
        for (unsigned k = 0; k < SERIES_HISTS; k++) {
            mem_free(s->w[i].h[k]);
            s->w[i].h[k] = NULL;
        }
    uv_mutex_destroy(&s->mu);
}

void series_acc_init(series_acc_t *a, series_t *s)
{
    a->s = s;
    a->cur = -1;
    a->ops = a->t_last_ns = 0;
    for (unsigned k = 0; k < SERIES_HISTS; k++) {
        a->has_h[k] = false;
        hist_reset(&a->h[k]);
    }
}

void series_acc_flush(series_acc_t *a)
{
    series_t *s = a->s;
    series_win_t *w;
    bool any = a->ops != 0;

    for (unsigned k = 0; k < SERIES_HISTS; k++)
        any = any || a->has_h[k];
    if (a->cur < 0 || !any) {
        a->cur = -1;
        return;
    }
    uv_mutex_lock(&s->mu);
    w = &s->w[a->cur];
    w->ops += a->ops;
    if (a->t_last_ns > w->t_last_ns)
        w->t_last_ns = a->t_last_ns;
    for (unsigned k = 0; k < SERIES_HISTS; k++) {
        if (!a->has_h[k])
            continue;
        if (w->h[k] == NULL) {
            /* 30 KiB under the lock, once per window: mem_alloc aborts on OOM rather than
             * fail, and no callback runs here */
            w->h[k] = mem_alloc(sizeof(*w->h[k]));
            hist_reset(w->h[k]);
        }
        hist_merge(w->h[k], &a->h[k]);
    }
    if ((unsigned)a->cur + 1 > s->n)
        s->n = (unsigned)a->cur + 1;
    uv_mutex_unlock(&s->mu);
    a->ops = a->t_last_ns = 0;
    for (unsigned k = 0; k < SERIES_HISTS; k++)
        if (a->has_h[k]) {
            hist_reset(&a->h[k]);
            a->has_h[k] = false;
        }
    a->cur = -1;
}

/* Make @p now_ns's window the current one (flushing the previous); false before start. */
static bool enter(series_acc_t *a, uint64_t now_ns)
{
    const series_t *s = a->s;
    uint64_t i;

    if (s == NULL || s->t0_ns == 0)
        return false;
    i = now_ns > s->t0_ns ? (now_ns - s->t0_ns) / s->len_ns : 0;
    if (i >= SERIES_MAX)
        i = SERIES_MAX - 1;
    if ((int64_t)i != a->cur) {
        series_acc_flush(a);
        a->cur = (int64_t)i;
    }
    return true;
}

void series_acc_op(series_acc_t *a, uint64_t now_ns, uint64_t n)
{
    if (!enter(a, now_ns))
        return;
    a->ops += n;
    if (now_ns > a->t_last_ns)
        a->t_last_ns = now_ns;
}

void series_acc_lat(series_acc_t *a, uint64_t now_ns, unsigned which, uint64_t ns)
{
    if (which >= SERIES_HISTS || !enter(a, now_ns))
        return;
    hist_record(&a->h[which], ns);
    a->has_h[which] = true;
}
