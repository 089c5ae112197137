#include "support/hookrecv.h"

#include <http_parser.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "support/test.h"

struct hookrecv {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    uv_thread_t thread;
    char url[64];
    pthread_mutex_t lock; /* everything below */
    pthread_cond_t changed;
    hookrecv_req_t reqs[HOOKRECV_MAX];
    size_t n;
    int fail_left, fail_status;
};

typedef struct conn {
    uv_tcp_t tcp;
    http_parser parser;
    hookrecv_t *r;
    hookrecv_req_t cur;
    char field[64];
    size_t flen;
    char value[512];
    size_t vlen;
    bool in_value; /* the last callback was a header value (a field starts the next) */
} conn_t;

typedef struct wreq {
    uv_write_t req;
    char buf[128];
} wreq_t;

static void append(char *dst, size_t cap, size_t *len, const char *p, size_t n)
{
    size_t room = cap - 1 - *len;
    if (n > room)
        n = room;
    memcpy(dst + *len, p, n);
    *len += n;
    dst[*len] = '\0';
}

static void commit_header(conn_t *c)
{
    static const struct {
        const char *name;
        size_t off, cap;
    } keep[] = {
        {"content-type", offsetof(hookrecv_req_t, content_type), 128},
        {"x-cim-signature", offsetof(hookrecv_req_t, signature), 128},
        {"x-cim-event", offsetof(hookrecv_req_t, event), 64},
        {"x-cim-delivery", offsetof(hookrecv_req_t, delivery), 64},
    };
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        if (strcasecmp(c->field, keep[i].name) == 0)
            snprintf((char *)&c->cur + keep[i].off, keep[i].cap, "%s", c->value);
    c->flen = c->vlen = 0;
    c->field[0] = c->value[0] = '\0';
    c->in_value = false;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    size_t len = strlen(c->cur.path);
    append(c->cur.path, sizeof(c->cur.path), &len, at, n);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    if (c->in_value)
        commit_header(c);
    append(c->field, sizeof(c->field), &c->flen, at, n);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    append(c->value, sizeof(c->value), &c->vlen, at, n);
    c->in_value = true;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    conn_t *c = p->data;
    if (c->in_value)
        commit_header(c);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    c->cur.body = realloc(c->cur.body, c->cur.body_len + n + 1);
    ASSERT_NOT_NULL(c->cur.body);
    memcpy(c->cur.body + c->cur.body_len, at, n);
    c->cur.body_len += n;
    c->cur.body[c->cur.body_len] = '\0';
    return 0;
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
}

static int on_message_complete(http_parser *p)
{
    conn_t *c = p->data;
    hookrecv_t *r = c->r;
    wreq_t *w = calloc(1, sizeof(*w));
    uv_buf_t buf;
    int status = 200;

    ASSERT_NOT_NULL(w);
    snprintf(c->cur.method, sizeof(c->cur.method), "%s", http_method_str(p->method));
    if (c->cur.body == NULL)
        c->cur.body = calloc(1, 1);
    pthread_mutex_lock(&r->lock);
    if (r->fail_left > 0) {
        r->fail_left--;
        status = r->fail_status;
    }
    c->cur.status = status;
    if (r->n < HOOKRECV_MAX)
        r->reqs[r->n++] = c->cur;
    else
        free(c->cur.body);
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    memset(&c->cur, 0, sizeof(c->cur));
    snprintf(w->buf, sizeof(w->buf), "HTTP/1.1 %d %s\r\nContent-Length: 0\r\n\r\n", status,
             status == 200 ? "OK" : "Failing");
    buf = uv_buf_init(w->buf, (unsigned)strlen(w->buf));
    w->req.data = w;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0)
        free(w);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    free(c->cur.body);
    free(c);
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(size);
    buf->len = buf->base != NULL ? size : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (n > 0 && http_parser_execute(&c->parser, &settings, buf->base, (size_t)n) != (size_t)n)
        n = UV_EOF; /* not HTTP: hang up */
    if (n < 0 && !uv_is_closing((uv_handle_t *)s))
        uv_close((uv_handle_t *)s, on_conn_closed);
    free(buf->base);
}

static void on_connection(uv_stream_t *l, int status)
{
    hookrecv_t *r = l->data;
    conn_t *c;

    if (status < 0 || (c = calloc(1, sizeof(*c))) == NULL)
        return;
    c->r = r;
    uv_tcp_init(&r->loop, &c->tcp);
    c->tcp.data = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void close_one(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    uv_close(h, h->type == UV_TCP && h->data != NULL && h->data != arg ? on_conn_closed : NULL);
}

static void on_stop(uv_async_t *a)
{
    hookrecv_t *r = a->data;
    uv_walk(&r->loop, close_one, r);
}

static void run(void *arg)
{
    hookrecv_t *r = arg;
    uv_run(&r->loop, UV_RUN_DEFAULT);
}

hookrecv_t *hookrecv_start(void)
{
    hookrecv_t *r = calloc(1, sizeof(*r));
    struct sockaddr_in addr;
    struct sockaddr_storage name;
    int len = sizeof(name);

    ASSERT_NOT_NULL(r);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->changed, NULL);
    ASSERT_OK(uv_loop_init(&r->loop));
    ASSERT_OK(uv_tcp_init(&r->loop, &r->listener));
    r->listener.data = r;
    ASSERT_OK(uv_ip4_addr("127.0.0.1", 0, &addr));
    ASSERT_OK(uv_tcp_bind(&r->listener, (const struct sockaddr *)&addr, 0));
    ASSERT_OK(uv_listen((uv_stream_t *)&r->listener, 128, on_connection));
    ASSERT_OK(uv_tcp_getsockname(&r->listener, (struct sockaddr *)&name, &len));
    snprintf(r->url, sizeof(r->url), "http://127.0.0.1:%d/hook",
             ntohs(((struct sockaddr_in *)&name)->sin_port));
    ASSERT_OK(uv_async_init(&r->loop, &r->stop, on_stop));
    r->stop.data = r;
    ASSERT_OK(uv_thread_create(&r->thread, run, r));
    return r;
}

const char *hookrecv_url(const hookrecv_t *r)
{
    return r->url;
}

void hookrecv_fail_next(hookrecv_t *r, int n, int status)
{
    pthread_mutex_lock(&r->lock);
    r->fail_left = n;
    r->fail_status = status;
    pthread_mutex_unlock(&r->lock);
}

size_t hookrecv_count(hookrecv_t *r)
{
    size_t n;
    pthread_mutex_lock(&r->lock);
    n = r->n;
    pthread_mutex_unlock(&r->lock);
    return n;
}

size_t hookrecv_wait(hookrecv_t *r, size_t n, unsigned timeout_ms)
{
    struct timespec deadline;
    size_t got;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->lock);
    while (r->n < n && pthread_cond_timedwait(&r->changed, &r->lock, &deadline) == 0)
        ;
    got = r->n;
    pthread_mutex_unlock(&r->lock);
    return got;
}

void hookrecv_get(hookrecv_t *r, size_t i, hookrecv_req_t *out)
{
    pthread_mutex_lock(&r->lock);
    ASSERT_LT(i, r->n);
    *out = r->reqs[i];
    pthread_mutex_unlock(&r->lock);
}

void hookrecv_stop(hookrecv_t *r)
{
    if (r == NULL)
        return;
    uv_async_send(&r->stop);
    uv_thread_join(&r->thread);
    ASSERT_OK(uv_loop_close(&r->loop));
    for (size_t i = 0; i < r->n; i++)
        free(r->reqs[i].body);
    pthread_cond_destroy(&r->changed);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
