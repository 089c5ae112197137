#include "actors/http.h"

#include <string.h>

h2o_handler_t *http_config(h2o_globalconf_t *config, size_t handler_size,
                           int (*on_req)(h2o_handler_t *, h2o_req_t *), size_t entity_max,
                           uint64_t req_timeout_ms)
{
    h2o_pathconf_t *pc;
    h2o_handler_t *hd;

    h2o_config_init(config);
    config->server_name = h2o_iovec_init(H2O_STRLIT("cimd"));
    config->max_request_entity_size = entity_max;
    if (req_timeout_ms > 0)
        config->http1.req_timeout = req_timeout_ms;
    pc = h2o_config_register_path(
        h2o_config_register_host(config, h2o_iovec_init(H2O_STRLIT("default")), 65535), "/", 0);
    hd = h2o_create_handler(pc, handler_size);
    hd->on_req = on_req;
    return hd;
}

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Internal Server Error" : "Error";
    }
}

int http_send(h2o_req_t *req, int status, const char *type, const char *cache, const char *body,
              size_t len)
{
    req->res.status = status;
    req->res.reason = http_reason(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type,
                   strlen(type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, cache,
                   strlen(cache));
    h2o_send_inline(req, body, len); /* copies */
    return 0;
}

int http_send_json(h2o_req_t *req, int status, json_t *body)
{
    char *txt = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (txt == NULL) /* jansson out of memory */
        return http_send(req, 500, "application/json", "no-store",
                         H2O_STRLIT("{\"code\":\"INTERNAL\",\"reason\":\"out of memory\"}"));
    (void)http_send(req, status, "application/json", "no-store", txt, strlen(txt));
    free(txt);
    return 0;
}
