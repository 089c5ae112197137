/**
 * Test support: a webhook receiver — a real HTTP/1.1 server on 127.0.0.1 (a free port) that
 * records every request it gets and answers 200, or a chosen status for the next N.
 *
 * It runs on its own thread with its own libuv loop and parses requests with http-parser
 * (keep-alive connections and several requests on one connection, as libcurl sends them).
 * The test thread reads the records through the functions below (a mutex and a condition
 * variable inside; nothing else is shared).
 */
#ifndef CIM_TEST_HOOKRECV_H
#define CIM_TEST_HOOKRECV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOOKRECV_MAX 4096 /* requests recorded at most (later ones are answered, not kept) */

/** One request as received. */
typedef struct hookrecv_req {
    char method[16];
    char path[256];
    char content_type[128];
    char signature[128]; /* X-Cim-Signature */
    char event[64];      /* X-Cim-Event */
    char delivery[64];   /* X-Cim-Delivery */
    char *body;          /* NUL-terminated; owned by the receiver until hookrecv_stop */
    size_t body_len;
    int status; /* what it was answered */
} hookrecv_req_t;

typedef struct hookrecv hookrecv_t;

/** Start a receiver on 127.0.0.1 and a free port. Aborts the test on failure. */
hookrecv_t *hookrecv_start(void);

/** Its URL, "http://127.0.0.1:PORT/hook". */
const char *hookrecv_url(const hookrecv_t *r);

/** Answer the next @p n requests with @p status (e.g. 500) instead of 200. */
void hookrecv_fail_next(hookrecv_t *r, int n, int status);

/** Requests recorded so far. */
size_t hookrecv_count(hookrecv_t *r);

/** Wait until at least @p n requests were recorded or @p timeout_ms passed. @return count. */
size_t hookrecv_wait(hookrecv_t *r, size_t n, unsigned timeout_ms);

/** Copy request @p i (0-based, in arrival order) into @p out (body borrowed). */
void hookrecv_get(hookrecv_t *r, size_t i, hookrecv_req_t *out);

/** Stop the thread, close everything, free. NULL is a no-op. */
void hookrecv_stop(hookrecv_t *r);

#endif
