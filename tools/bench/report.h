/**
 * report: cimbench's final report, collected as named values and printed once, either
 * as a human table or as one JSON document.
 *
 * Design. A report is an ordered list of entries, each (section, key, value); a value is
 * an integer, a real, a string, a latency histogram or a table of numbers (rows of named
 * columns). Entries without a section are the document's top level; sections keep the
 * order of their first entry. JSON: top-level entries, then one object per section; a
 * histogram becomes {"count","min","mean","p50","p90","p99","p999","max"} in
 * microseconds, a table an array of {"column": value} objects. Table: a "key  value"
 * block per section, histograms in one latency table (milliseconds), then each table of
 * numbers with a header line. The JSON is built with jansson and printed indented by two
 * spaces; numbers that are whole print as integers, others rounded to 3 decimals (in
 * their short form: 0.5), and numbers that are not finite as null.
 * Keys and strings are copied.
 *
 * Threading: one thread.
 */
#ifndef CIMBENCH_REPORT_H
#define CIMBENCH_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "hist.h"

#define REPORT_COLS_MAX 16

typedef struct report report_t;

/** @return an owned, empty report; free with report_free(). Aborts on OOM. */
report_t *report_new(void);

/** Free @p r; report_free(NULL) is a no-op. */
void report_free(report_t *r);

/** Add an integer. @p section NULL: top level. */
void report_int(report_t *r, const char *section, const char *key, int64_t v);

/** Add a real number (printed with up to 3 decimals, or %g when large/small). */
void report_num(report_t *r, const char *section, const char *key, double v);

/** Add a string. */
void report_str(report_t *r, const char *section, const char *key, const char *v);

/** Add a latency histogram (copied: summarised now). Empty ones are still listed. */
void report_hist(report_t *r, const char *section, const char *key, const hist_t *h);

/**
 * Add a table of numbers: columns named @p cols[0..ncols-1] (copied; at most
 * REPORT_COLS_MAX), rows added with report_row. JSON: an array of objects, one per row;
 * table: a header line and a line per row. A NaN value prints as null / "-".
 */
void report_table(report_t *r, const char *section, const char *key, const char *const *cols,
                  size_t ncols);

/** Add a row of ncols values (as many as the last report_table's columns) to it. */
void report_row(report_t *r, const double *v);

/**
 * Print @p r to @p f: one JSON document (@p json) or the human table. JSON: sets jansson
 * to allocate through core/mem (process-wide; aborts on OOM).
 */
void report_print(const report_t *r, bool json, FILE *f);

#endif
