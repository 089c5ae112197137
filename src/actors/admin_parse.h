/**
 * admin_parse: the admin API's decoders of untrusted input — request paths, the bearer
 * secret, the body of POST .../messages — as pure functions, so that the fuzz target
 * (test/fuzz/fuzz_admin.c) drives exactly what the listener runs.
 *
 * Threading: pure; any thread.
 */
#ifndef CIM_ACTORS_ADMIN_PARSE_H
#define CIM_ACTORS_ADMIN_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/kv.h"

/**
 * Split an absolute path (up to its '?', if any) into percent-decoded segments, written
 * NUL-terminated into @p buf; a trailing '/' makes an empty last segment.
 * @return the number of segments (1..@p maxseg), or -1: not starting with '/', a bad
 *         %-escape, a NUL byte, more than @p maxseg segments, or @p buf too small.
 */
int admin_split_path(const char *path, size_t len, char *buf, size_t buflen, char **seg,
                     int maxseg);

/** Decode exactly 64 hex digits (either case) into 32 bytes. @return 0 or -1. */
int admin_hex32(const char *s, size_t len, uint8_t out[32]);

/** A POST .../messages request, validated (docs/ADMIN-API.md). */
typedef struct admin_msg {
    char from[KV_ID_MAX + 1];
    char to[KV_ID_MAX + 1];        /* a user id (DIRECT) or a group id (GROUP) */
    int conv_type;                 /* cim_ConvType */
    int msg_type;                  /* cim_MsgType: TEXT..CUSTOM, or SYSTEM with system */
    bool transient, system;
    char cmid[KV_ID_MAX + 1];      /* "" when none was given */
    uint8_t *body;                 /* owned (mem_alloc), body_len bytes */
    size_t body_len;
} admin_msg_t;

/**
 * Parse and validate the JSON body @p json (@p len bytes) of POST .../messages.
 * @param[in] max_body  max_msg_bytes.
 * @return 0 (@p m filled; free with admin_msg_free), or the HTTP status to refuse with —
 *         400 (malformed, wrong types, unknown keys, bad values) or 413 (body over
 *         @p max_body) — with the reason in @p why (@p m then holds nothing to free).
 */
int admin_msg_parse(const char *json, size_t len, uint32_t max_body, admin_msg_t *m,
                    char *why, size_t whylen);

/** Free what admin_msg_parse gave. */
void admin_msg_free(admin_msg_t *m);

#endif
