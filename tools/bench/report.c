/* report: collect named results, print them as a table or as JSON. */
#include "report.h"

#include <math.h>
#include <string.h>

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

/* ---- JSON ----------------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double d)
{
    if (!isfinite(d))
        fputs("null", f);
    else if (d == floor(d) && fabs(d) < 1e15)
        fprintf(f, "%.0f", d);
    else
        fprintf(f, "%.3f", d);
}

static void json_value(FILE *f, const entry_t *e)
{
    switch (e->kind) {
    case V_INT:
        fprintf(f, "%lld", (long long)e->i);
        break;
    case V_NUM:
        json_num(f, e->d);
        break;
    case V_STR:
        json_str(f, e->s);
        break;
    case V_TABLE:
        fputc('[', f);
        for (size_t i = 0; i < e->nrows; i++) {
            fputs(i == 0 ? "\n      {" : ",\n      {", f);
            for (size_t c = 0; c < e->ncols; c++) {
                fputs(c == 0 ? "" : ", ", f);
                json_str(f, e->cols[c]);
                fputs(": ", f);
                json_num(f, e->rows[i * e->ncols + c]);
            }
            fputc('}', f);
        }
        fputs(e->nrows != 0 ? "\n    ]" : "]", f);
        break;
    default:
        fprintf(f, "{\"count\": %llu", (unsigned long long)e->h.count);
        if (e->h.count != 0) {
            const char *names[] = {"min", "mean", "p50", "p90", "p99", "p999", "max"};
            const double v[] = {e->h.min, e->h.mean, e->h.p50, e->h.p90,
                                e->h.p99, e->h.p999, e->h.max};
            for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                fprintf(f, ", \"%s\": ", names[i]);
                json_num(f, v[i]);
            }
        }
        fputc('}', f);
        break;
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

static void print_json(const report_t *r, FILE *f)
{
    bool first = true;

    fputs("{", f);
    for (size_t i = 0; i < r->n; i++) {
        if (r->e[i].section != NULL)
            continue;
        fputs(first ? "\n  " : ",\n  ", f);
        first = false;
        json_str(f, r->e[i].key);
        fputs(": ", f);
        json_value(f, &r->e[i]);
    }
    for (size_t i = 0; i < r->n; i++) {
        const char *sec = r->e[i].section;
        bool firstk = true;
        if (sec == NULL || first_of(r, sec) != i)
            continue;
        fputs(first ? "\n  " : ",\n  ", f);
        first = false;
        json_str(f, sec);
        fputs(": {", f);
        for (size_t j = i; j < r->n; j++) {
            if (!same(r->e[j].section, sec))
                continue;
            fputs(firstk ? "\n    " : ",\n    ", f);
            firstk = false;
            json_str(f, r->e[j].key);
            fputs(": ", f);
            json_value(f, &r->e[j]);
        }
        fputs(firstk ? "}" : "\n  }", f);
    }
    fputs("\n}\n", f);
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
