#include "support/http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "support/test.h"

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    thttp_t *r = arg;
    size_t len = size * n, room = sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, data, len < room ? len : room);
    r->len += len < room ? len : room;
    r->body[r->len] = '\0';
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    thttp_t *r = arg;
    size_t len = size * n;
    if (len > 5 && strncasecmp(data, "etag:", 5) == 0)
        snprintf(r->etag, sizeof(r->etag), "%.*s", (int)strcspn(data + 6, "\r\n"), data + 6);
    return len;
}

static long perform(thttp_t *r, const tsrv_t *t, const char *method, const char *path,
                    const char *bearer, const void *body, size_t len, const char *extra);

long thttp_n(thttp_t *r, const tsrv_t *t, const char *method, const char *path,
             const char *bearer, const void *body, size_t len)
{
    return perform(r, t, method, path, bearer, body, len, NULL);
}

long thttp_hdr(thttp_t *r, const tsrv_t *t, const char *method, const char *path,
               const char *header)
{
    return perform(r, t, method, path, NULL, NULL, 0, header);
}

static long perform(thttp_t *r, const tsrv_t *t, const char *method, const char *path,
                    const char *bearer, const void *body, size_t len, const char *extra)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[512], auth[256];
    char *ct = NULL;
    CURLcode rc;

    ASSERT_NOT_NULL(c);
    ASSERT_TRUE(t->admin_port > 0);
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", t->admin_port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (extra != NULL)
        h = curl_slist_append(h, extra);
    if (bearer != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
        h = curl_slist_append(h, auth);
    }
    if (body != NULL) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        TEST_FAIL_("HTTP %s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL)
        snprintf(r->ctype, sizeof(r->ctype), "%s", ct);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r->status;
}

long thttp(thttp_t *r, const tsrv_t *t, const char *method, const char *path,
           const char *bearer, const char *body)
{
    return thttp_n(r, t, method, path, bearer, body, body ? strlen(body) : 0);
}

void thttp_secret(const tsrv_t *t, const char *app, char out[65])
{
    char buf[256];
    ASSERT_EQ(tsrv_run_tool(buf, sizeof(buf), "cimctl", "--data", t->dir, "app", "show", app,
                            NULL),
              0);
    ASSERT_TRUE(strlen(buf) >= 64);
    memcpy(out, buf, 64);
    out[64] = '\0';
}

double thttp_metric(const char *page, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = page; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    TEST_FAIL_("series %s not in /metrics", series);
    return 0;
}
