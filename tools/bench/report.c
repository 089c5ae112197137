/* report: collect named results, print them as a table or as JSON. */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/mem.h"

enum { V_INT, V_NUM, V_STR, V_HIST, V_TABLE };

/* A histogram is summarised when added: the report never holds 30 KiB per entry. */
typedef struct summary {
    uint64_t count;
    double min, mean, p50, p90, p99, p999, max; /* microseconds */
} summary_t;

typedef struct entry {
    char *section; /* NULL: top level */
    char *key;
    int kind; /* V_* */
    int64_t i;
    double d;
    char *s;
    summary_t h;
    /* V_TABLE */
    char *cols[REPORT_COLS_MAX];
    size_t ncols;
    double *rows; /* nrows x ncols */
    size_t nrows, rows_cap;
} entry_t;

struct report;

struct report {
    entry_t *e;
    size_t n, cap;
    size_t last_table; /* index of the last V_TABLE entry, or n when none */
};

report_t *report_new(void)
{
    report_t *r = mem_calloc(sizeof(report_t));

    r->last_table = SIZE_MAX;
    return r;
}

void report_free(report_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        mem_free(r->e[i].section);
        mem_free(r->e[i].key);
        mem_free(r->e[i].s);
        for (size_t c = 0; c < r->e[i].ncols; c++)
            mem_free(r->e[i].cols[c]);
        mem_free(r->e[i].rows);
    }
    mem_free(r->e);
    mem_free(r);
}

static entry_t *add(report_t *r, const char *section, const char *key, int kind)
{
    entry_t *e;

    if (r->n == r->cap) {
        r->cap = r->cap != 0 ? r->cap * 2 : 32;
        r->e = mem_realloc(r->e, r->cap * sizeof(*r->e));
    }
    e = &r->e[r->n++];
    memset(e, 0, sizeof(*e));
    e->section = section != NULL ? mem_strdup(section) : NULL;
    e->key = mem_strdup(key);
    e->kind = kind;
    return e;
}

void report_int(report_t *r, const char *section, const char *key, int64_t v)
{
    add(r, section, key, V_INT)->i = v;
}

void report_num(report_t *r, const char *section, const char *key, double v)
{
    add(r, section, key, V_NUM)->d = v;
}

void report_str(report_t *r, const char *section, const char *key, const char *v)
{
    add(r, section, key, V_STR)->s = mem_strdup(v != NULL ? v : "");
}

void report_hist(report_t *r, const char *section, const char *key, const hist_t *h)
{
    entry_t *e = add(r, section, key, V_HIST);

    e->h.count = h->count;
    if (h->count == 0)
        return;
    e->h.min = (double)h->min_ns / 1000.0;
    e->h.mean = hist_mean(h) / 1000.0;
    e->h.p50 = (double)hist_percentile(h, 50.0) / 1000.0;
    e->h.p90 = (double)hist_percentile(h, 90.0) / 1000.0;
    e->h.p99 = (double)hist_percentile(h, 99.0) / 1000.0;
    e->h.p999 = (double)hist_percentile(h, 99.9) / 1000.0;
    e->h.max = (double)h->max_ns / 1000.0;
}

void report_table(report_t *r, const char *section, const char *key, const char *const *cols,
                  size_t ncols)
{
    entry_t *e = add(r, section, key, V_TABLE);

    if (ncols > REPORT_COLS_MAX)
        ncols = REPORT_COLS_MAX;
    for (size_t c = 0; c < ncols; c++)
        e->cols[c] = mem_strdup(cols[c]);
    e->ncols = ncols;
    r->last_table = r->n - 1;
}

void report_row(report_t *r, const double *v)
{
    entry_t *e;

    if (r->last_table >= r->n)
        return;
    e = &r->e[r->last_table];
    if (e->nrows == e->rows_cap) {
        e->rows_cap = e->rows_cap != 0 ? e->rows_cap * 2 : 16;
        e->rows = mem_realloc(e->rows, e->rows_cap * e->ncols * sizeof(*e->rows) + 1);
    }
    memcpy(e->rows + e->nrows * e->ncols, v, e->ncols * sizeof(*v));
    e->nrows++;
}

/* ---- JSON (jansson) ------------------------------------------------------------------- */

/* A NULL from jansson here is a programmer error: its allocations abort on OOM (report_print
 * routes them through core/mem) and every key and string is checked UTF-8 first. */
static json_t *must(json_t *v)
{
    if (v == NULL)
        abort();
    return v;
}

static void set(json_t *obj, const char *key, json_t *v)
{
    if (json_object_set_new(obj, key, must(v)) != 0)
        abort();
}

/* A string jansson takes: bytes that are not UTF-8 become '?' (keys and values are ours:
 * scenario names, error codes, addresses). */
static json_t *str(const char *s)
{
    json_t *v = json_string(s);
    char *copy;

    if (v != NULL)
        return v;
    copy = mem_strdup(s);
    for (char *p = copy; *p != '\0'; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    v = must(json_string(copy));
    mem_free(copy);
    return v;
}

/* A number: null when not finite, an integer when it is one, else rounded to 3 decimals. */
static json_t *num(double d)
{
    if (!isfinite(d))
        return must(json_null());
    if (d == floor(d) && fabs(d) < 1e15)
        return must(json_integer((json_int_t)d));
    return must(json_real(round(d * 1000.0) / 1000.0));
}

static json_t *json_value(const entry_t *e)
{
    json_t *o, *rows;

    switch (e->kind) {
    case V_INT:
        return must(json_integer(e->i));
    case V_NUM:
        return num(e->d);
    case V_STR:
        return str(e->s);
    case V_TABLE:
        rows = must(json_array());
        for (size_t i = 0; i < e->nrows; i++) {
            o = must(json_object());
            for (size_t c = 0; c < e->ncols; c++)
                set(o, e->cols[c], num(e->rows[i * e->ncols + c]));
            if (json_array_append_new(rows, o) != 0)
                abort();
        }
        return rows;
    default:
        o = must(json_object());
        set(o, "count", must(json_integer((json_int_t)e->h.count)));
        if (e->h.count != 0) {
            const char *names[] = {"min", "mean", "p50", "p90", "p99", "p999", "max"};
            const double v[] = {e->h.min, e->h.mean, e->h.p50, e->h.p90,
                                e->h.p99, e->h.p999, e->h.max};
            for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
                set(o, names[i], num(v[i]));
        }
        return o;
    }
}

static bool same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Index of the first entry of @p e's section (sections print where they first appear). */
static size_t first_of(const report_t *r, const char *section)
{
    for (size_t i = 0; i < r->n; i++)
        if (same(r->e[i].section, section))
            return i;
    return r->n;
}

static void *json_alloc(size_t n)
{
    return mem_alloc(n > 0 ? n : 1);
}

static void print_json(const report_t *r, FILE *f)
{
    json_t *doc, *sec;

    json_set_alloc_funcs(json_alloc, mem_free);
    doc = must(json_object());
    for (size_t i = 0; i < r->n; i++)
        if (r->e[i].section == NULL)
            set(doc, r->e[i].key, json_value(&r->e[i]));
    for (size_t i = 0; i < r->n; i++) {
        const char *name = r->e[i].section;
        if (name == NULL || first_of(r, name) != i)
            continue;
        sec = must(json_object());
        for (size_t j = i; j < r->n; j++)
            if (same(r->e[j].section, name))
                set(sec, r->e[j].key, json_value(&r->e[j]));
        set(doc, name, sec);
    }
    /* 15 significant digits: a value rounded to 3 decimals prints in its short form. */
    /* best effort: stdout, written unchecked like the table */
    (void)json_dumpf(doc, f, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
    fputc('\n', f);
    json_decref(doc);
}

/* ---- table ---------------------------------------------------------------------------- */

static void table_value(FILE *f, const entry_t *e)
{
    switch (e->kind) {
    case V_INT:
        fprintf(f, "%lld\n", (long long)e->i);
        break;
    case V_NUM:
        if (!isfinite(e->d))
            fputs("-\n", f);
        else if (e->d == floor(e->d) && fabs(e->d) < 1e15)
            fprintf(f, "%.0f\n", e->d);
        else
            fprintf(f, "%.3f\n", e->d);
        break;
    case V_STR:
        fprintf(f, "%s\n", e->s);
        break;
    default:
        break;
    }
}

/* A table of numbers: a header, then a row per line (integers plain, others with up to 3
 * decimals, "-" for no value). */
static void print_table(const entry_t *e, FILE *f)
{
    int w[REPORT_COLS_MAX];

    fprintf(f, "  %s:\n  ", e->key);
    for (size_t c = 0; c < e->ncols; c++) {
        w[c] = (int)strlen(e->cols[c]) > 9 ? (int)strlen(e->cols[c]) : 9;
        fprintf(f, " %*s", w[c], e->cols[c]);
    }
    fputc('\n', f);
    for (size_t i = 0; i < e->nrows; i++) {
        fputs("  ", f);
        for (size_t c = 0; c < e->ncols; c++) {
            double d = e->rows[i * e->ncols + c];
            if (!isfinite(d))
                fprintf(f, " %*s", w[c], "-");
            else if (d == floor(d) && fabs(d) < 1e15)
                fprintf(f, " %*.0f", w[c], d);
            else
                fprintf(f, " %*.3f", w[c], d);
        }
        fputc('\n', f);
    }
}

static void print_section(const report_t *r, const char *sec, FILE *f)
{
    bool hists = false, tables = false;

    if (sec != NULL)
        fprintf(f, "\n[%s]\n", sec);
    for (size_t j = 0; j < r->n; j++) {
        const entry_t *e = &r->e[j];
        if (!same(e->section, sec))
            continue;
        if (e->kind == V_HIST) {
            hists = true;
            continue;
        }
        if (e->kind == V_TABLE) {
            tables = true;
            continue;
        }
        fprintf(f, "  %-28s ", e->key);
        table_value(f, e);
    }
    for (size_t j = 0; tables && j < r->n; j++)
        if (same(r->e[j].section, sec) && r->e[j].kind == V_TABLE)
            print_table(&r->e[j], f);
    if (!hists)
        return;
    fprintf(f, "  %-16s %9s %9s %9s %9s %9s %9s %9s %9s\n", "latency (ms)", "count", "min", "mean",
            "p50", "p90", "p99", "p99.9", "max");
    for (size_t j = 0; j < r->n; j++) {
        const entry_t *e = &r->e[j];
        if (!same(e->section, sec) || e->kind != V_HIST)
            continue;
        fprintf(f, "  %-16s %9llu", e->key, (unsigned long long)e->h.count);
        if (e->h.count == 0) {
            fputs("         -\n", f);
            continue;
        }
        fprintf(f, " %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f\n", e->h.min / 1000,
                e->h.mean / 1000, e->h.p50 / 1000, e->h.p90 / 1000, e->h.p99 / 1000,
                e->h.p999 / 1000, e->h.max / 1000);
    }
}

void report_print(const report_t *r, bool json, FILE *f)
{
    if (json) {
        print_json(r, f);
        return;
    }
    print_section(r, NULL, f);
    for (size_t i = 0; i < r->n; i++) {
        const char *sec = r->e[i].section;
        if (sec != NULL && first_of(r, sec) == i)
            print_section(r, sec, f);
    }
}
