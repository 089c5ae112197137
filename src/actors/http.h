/**
 * http: what the two HTTP listeners (admin.c: the admin API; ws.c: the WebSocket endpoint
 * and the browser client) share on top of libh2o — the one configuration shape (one host,
 * one handler at "/") and how an answer is sent.
 *
 * Threading: http_config on the thread that sets the listener up; the rest on the loop
 * thread the request belongs to.
 */
#ifndef CIM_ACTORS_HTTP_H
#define CIM_ACTORS_HTTP_H

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <jansson.h>
#include <stddef.h>

/**
 * Initialise @p config for one handler at "/" of @p handler_size bytes (it embeds
 * h2o_handler_t first) calling @p on_req, with request bodies up to @p entity_max bytes
 * (h2o answers 413 above) and HTTP/1 requests (and idle keep-alive) cut after
 * @p req_timeout_ms (0: h2o's default).
 * @return the handler, for the caller's fields after the h2o_handler_t.
 */
h2o_handler_t *http_config(h2o_globalconf_t *config, size_t handler_size,
                           int (*on_req)(h2o_handler_t *, h2o_req_t *), size_t entity_max,
                           uint64_t req_timeout_ms);

/** The reason phrase of @p status. */
const char *http_reason(int status);

/**
 * Answer @p len bytes of @p body (copied) with @p status, Content-Type @p type and
 * Cache-Control @p cache ("no-store" for answers, "no-cache" for files revalidated by
 * ETag). Header values are kept by reference: pass literals, or strings in req->pool.
 * @return 0 (h2o's "handled").
 */
int http_send(h2o_req_t *req, int status, const char *type, const char *cache, const char *body,
              size_t len);

/** Answer @p body (stolen) as compact JSON with @p status, not cached. @return 0. */
int http_send_json(h2o_req_t *req, int status, json_t *body);

#endif
