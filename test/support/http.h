/**
 * Test support: HTTP requests to a cimd's admin listener through libcurl (a real client
 * over loopback), and the app secret tests authenticate with.
 */
#ifndef CIM_TEST_HTTP_H
#define CIM_TEST_HTTP_H

#include <stddef.h>

#include "support/server.h"

/** An answer: status, the body (NUL-terminated, truncated to fit), its Content-Type. */
typedef struct thttp {
    long status;
    char body[65536];
    size_t len;
    char ctype[128];
    char etag[80];  /* the answer's ETag header, if any */
} thttp_t;

/**
 * @p method @p path on t's admin port, with "Authorization: Bearer @p bearer" when
 * @p bearer is not NULL and @p body (NUL-terminated JSON, or NULL for none) as the entity.
 * The connection is not reused. Aborts the test when no HTTP answer comes.
 * @return r->status.
 */
long thttp(thttp_t *r, const tsrv_t *t, const char *method, const char *path,
           const char *bearer, const char *body);

/** As thttp with a body of @p len bytes (any bytes). */
long thttp_n(thttp_t *r, const tsrv_t *t, const char *method, const char *path,
             const char *bearer, const void *body, size_t len);

/** As thttp_n with one more request header line @p header ("If-None-Match: ..."). */
long thttp_hdr(thttp_t *r, const tsrv_t *t, const char *method, const char *path,
               const char *header);

/**
 * The value of series @p series ("name" or "name{labels}", exactly as printed) in a
 * /metrics page. Fails the test when the page has no such line.
 */
double thttp_metric(const char *page, const char *series);

/** The secret of @p app (64 hex) from the data dir, through `cimctl app show`. */
void thttp_secret(const tsrv_t *t, const char *app, char out[65]);

#endif
