/**
 * jv: cimdump's JSON values, on jansson (private to the `cimdump` program).
 *
 * Design. A command builds its whole answer as one jansson tree while its read
 * transaction is open (every value is a copy: nothing points into LMDB's pages), and main
 * prints it after the transaction ended. These helpers make the values cimdump's JSON
 * rules call for (docs/CIMDUMP.md): 64-bit ids as decimal strings (JSON readers commonly
 * hold numbers as doubles, exact only up to 2^53), none-ids as null, text whose bytes
 * that are not UTF-8 become U+FFFD (jansson refuses such a string outright), ratios with
 * one decimal.
 *
 * Errors. jv_init() makes jansson allocate through core/mem, which aborts on OOM (the
 * policy for internal objects), and every string is made valid UTF-8 first, so no jv_
 * function returns NULL and jv_set / jv_push cannot fail but through a programmer error
 * (a NULL value, a key that is not UTF-8), which aborts.
 *
 * Threading: one thread (jv_init sets jansson's process-wide allocator).
 */
#ifndef CIM_CMD_CIMDUMP_JV_H
#define CIM_CMD_CIMDUMP_JV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/** Route jansson's allocations through core/mem (abort on OOM). Call once, first. */
void jv_init(void);

/** A new empty object / array; owned: json_decref(), or give it to jv_set / jv_push. */
json_t *jv_obj(void);
json_t *jv_arr(void);

/** Make @p v (owned; ownership moves) member @p key (a literal) of object @p obj. */
void jv_set(json_t *obj, const char *key, json_t *v);

/** Append @p v (owned; ownership moves) to array @p arr. */
void jv_push(json_t *arr, json_t *v);

/** @p n bytes as a string: valid UTF-8 as is (NUL too), each other byte as U+FFFD. */
json_t *jv_text(const void *s, size_t n);

/** jv_text of a NUL-terminated string. */
json_t *jv_str(const char *s);

/** A count, size or time: a number (values past 2^63-1, never met, are held there). */
json_t *jv_u64(uint64_t v);

/** A 64-bit id as a string of decimal digits ("0" too). */
json_t *jv_id(uint64_t v);

/** As jv_id, but null for 0 ("none"). */
json_t *jv_id_or_null(uint64_t v);

/** @p v rounded to @p decimals (0..6) decimals, a number (printed in its shortest form). */
json_t *jv_fixed(double v, int decimals);

/** @p num / @p den with one decimal, or null when @p den is 0 (there is no ratio). */
json_t *jv_ratio(uint64_t num, uint64_t den);

/** @p n bytes as a string of lowercase hex digits. */
json_t *jv_hex(const uint8_t *b, size_t n);

/**
 * Print @p doc on @p f as one line (compact, members in the order they were set) and a
 * newline. @return 0, or -EIO (the write failed).
 */
int jv_dump(const json_t *doc, FILE *f);

#endif
