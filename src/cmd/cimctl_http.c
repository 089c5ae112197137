#include "cmd/cimctl_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"

#define ANSWER_MAX (1024 * 1024)

typedef struct buf {
    char *data;
    size_t len;
} buf_t;

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    buf_t *b = arg;
    size_t len = size * n;
    if (b->len + len > ANSWER_MAX)
        return 0; /* an answer this big is not the admin API's: stop */
    b->data = mem_realloc(b->data, b->len + len + 1);
    memcpy(b->data + b->len, p, len);
    b->len += len;
    b->data[b->len] = '\0';
    return len;
}

int ctl_http(const char *admin, const char *bearer, const char *method, const char *path,
             const char *body, long *status, char **answer, char *err, size_t errlen)
{
    CURL *c;
    struct curl_slist *h = NULL;
    char url[512], auth[600];
    buf_t b = {NULL, 0};
    CURLcode rc;

    *status = 0;
    *answer = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (c = curl_easy_init()) == NULL) {
        snprintf(err, errlen, "cannot initialise libcurl");
        return -1;
    }
    snprintf(url, sizeof(url), "http://%s%s", admin, path);
    if (bearer != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
        h = curl_slist_append(h, auth);
    }
    if (body != NULL) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    else
        snprintf(err, errlen, "no answer from cimd's admin listener at %s: %s (is cimd running? "
                 "see --admin)", admin, curl_easy_strerror(rc));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    curl_global_cleanup();
    if (rc != CURLE_OK) {
        mem_free(b.data);
        return -1;
    }
    *answer = b.data;
    return 0;
}
