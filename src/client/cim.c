/* libcim: the protocol engine both drivers share, and the blocking driver.
 *
 * The blocking driver reads with recv(2) on a non-blocking socket after poll(2), feeds the
 * bytes to frame_rd, and queues every decrypted frame in a small inbox; each blocking call
 * then consumes the inbox in order: answers it waits for, pushes (callback + queue), BYE.
 * Frames are queued rather than handled inside the feed so that cimc_next_frame() can hand
 * out exactly one frame even when a read brought several. The inbox never holds more than
 * one read's worth of frames plus the one a call stopped at. */
#include "client/cim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <pb_common.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "client/cim_int.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"

#define MAX_BODY_CAP   (16u << 20) /* never believe a server's max_body beyond this */
#define READ_CHUNK     16384       /* blocking driver: bytes per recv */
#define POLL_READS_MAX 64          /* cimc_poll: reads per call, so a flood cannot pin it */

/* ---- process-wide initialisation ----------------------------------------------------- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_rc;         /* written once under global_once, then only read */
static pthread_key_t ctx_key; /* each thread's chan_ctx_t for the blocking driver */
static bool ctx_key_made;     /* written once under global_once, then only read */

static void free_thread_ctx(void *p)
{
    chan_ctx_free(p);
}

static void global_init_once(void)
{
    int rc;

    if ((global_rc = chan_global_init()) < 0)
        return;
    if ((rc = pthread_key_create(&ctx_key, free_thread_ctx)) != 0)
        global_rc = -rc;
    else
        ctx_key_made = true;
}

int cimc__global_init(void)
{
    if (pthread_once(&global_once, global_init_once) != 0)
        return -EAGAIN;
    return global_rc;
}

/* The calling thread's cipher contexts (blocking driver): one per thread, like one per
 * loop for the async driver, never one per connection. NULL only on OOM of the TLS slot. */
static chan_ctx_t *thread_ctx(void)
{
    chan_ctx_t *ctx = pthread_getspecific(ctx_key);

    if (ctx == NULL) {
        ctx = chan_ctx_new();
        if (pthread_setspecific(ctx_key, ctx) != 0) {
            chan_ctx_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

uint64_t cimc__now_us(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for a valid clock id */
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_REALTIME, &ts); /* cannot fail for a valid clock id */
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- engine --------------------------------------------------------------------------- */

void cimc__init(cimc_t *c, int mode, const cimc_opts_t *opts)
{
    c->mode = mode;
    c->state = CIMC_ST_TCP;
    c->next_req_id = 1;
    c->max_body = FRAME_MAX_BODY;
    c->timeout_ms =
        opts != NULL && opts->timeout_ms != 0 ? opts->timeout_ms : CIMC_DEFAULT_TIMEOUT_MS;
    if (opts != NULL && opts->pinned_key != NULL) {
        memcpy(c->pinned, opts->pinned_key, CHAN_KEY);
        c->has_pinned = true;
    }
    c->tofu = opts != NULL && opts->trust_on_first_use;
    frame_rd_init(&c->rd);
}

void cimc__release(cimc_t *c)
{
    if (c->hs != NULL) {
        chan_client_close(&c->hs->cl);
        mem_free(c->hs);
        c->hs = NULL;
    }
    frame_rd_close(&c->rd);
    mem_free(c->bye);
    c->bye = NULL;
    /* The direction keys are secrets: do not leave them in freed memory, nor in the
     * cipher contexts that served the connection (a blocking connection's: this thread's,
     * if it has any; the async driver forgets them in its loop's before this). */
    if (c->mode == CIMC_MODE_BLOCKING && ctx_key_made)
        chan_forget(pthread_getspecific(ctx_key), &c->ch);
    memset(&c->ch, 0, sizeof(c->ch));
}

uint32_t cimc__max_frame(const cimc_t *c)
{
    uint32_t body = c->max_body > FRAME_MAX_BODY ? c->max_body : FRAME_MAX_BODY;

    /* Before the channel is up only the plaintext hellos are valid. After it, the default
     * 65536 is also accepted when a server announced less: being lenient there costs
     * nothing and a feed's limit is fixed while it runs (LoginRsp can arrive mid-feed). */
    if (c->state < CIMC_ST_SECURE)
        return FRAME_HANDSHAKE_MAX;
    return FRAME_HDR + body + FRAME_TAG;
}

int cimc__open(cimc_t *c, chan_ctx_t *ctx, uint8_t *frame, uint32_t len, uint8_t **body,
               size_t *blen)
{
    int rc;

    if (c->state < CIMC_ST_SECURE) {
        *body = frame + FRAME_HDR;
        *blen = len - FRAME_HDR;
        return 0;
    }
    if (len < FRAME_HDR + FRAME_TAG)
        return RC_ECRYPTO;
    if ((rc = chan_open(ctx, &c->ch, frame, len)) < 0)
        return rc;
    *body = frame + FRAME_HDR;
    *blen = len - FRAME_HDR - FRAME_TAG;
    return 0;
}

size_t cimc__frame_len(const cimc_t *c, size_t pt_len)
{
    return FRAME_HDR + pt_len + (c->state >= CIMC_ST_SECURE ? FRAME_TAG : 0);
}

int cimc__seal(cimc_t *c, chan_ctx_t *ctx, uint32_t type, const uint8_t *pt, size_t pt_len,
               uint8_t *out)
{
    if (c->state >= CIMC_ST_SECURE)
        return chan_seal(ctx, &c->ch, type, pt, pt_len, out);
    frame_hdr_write(out, (uint32_t)(FRAME_HDR + pt_len), type);
    if (pt_len > 0)
        memcpy(out + FRAME_HDR, pt, pt_len);
    return 0;
}

int cimc__pb_size(const cimc_t *c, const pb_msgdesc_t *fields, const void *msg, size_t *out)
{
    size_t n;

    if (!pb_get_encoded_size(&n, fields, msg)) {
        LOG_DEBUG("libcim: message cannot be encoded");
        return RC_EINVAL;
    }
    if (n > c->max_body)
        return RC_ETOOBIG;
    *out = n;
    return 0;
}

int cimc__pb_encode(const pb_msgdesc_t *fields, const void *msg, uint8_t *buf, size_t len)
{
    pb_ostream_t s = pb_ostream_from_buffer(buf, len);

    if (!pb_encode(&s, fields, msg)) {
        LOG_DEBUG("libcim: encode failed: %s", PB_GET_ERROR(&s));
        return RC_EINVAL;
    }
    /* A callback field that encodes differently in the sizing pass is a caller bug. */
    if (s.bytes_written != len)
        return RC_EINVAL;
    return 0;
}

uint32_t cimc__set_req_id(cimc_t *c, const pb_msgdesc_t *fields, void *msg)
{
    pb_field_iter_t it;
    uint32_t id;

    if (!pb_field_iter_begin(&it, fields, msg))
        return 0;
    if (it.tag != 1 || PB_ATYPE(it.type) != PB_ATYPE_STATIC ||
        PB_LTYPE(it.type) != PB_LTYPE_UVARINT || it.data_size != sizeof(uint32_t))
        return 0;
    id = c->next_req_id++;
    if (c->next_req_id == 0)
        c->next_req_id = 1; /* 0 reads as absent (PROTOCOL.md §3) */
    memcpy(it.pData, &id, sizeof(id));
    return id;
}

uint32_t cimc__peek_req_id(const uint8_t *body, size_t len)
{
    pb_istream_t s = pb_istream_from_buffer(body, len);
    pb_wire_type_t wt;
    uint32_t tag, v;
    bool eof;

    while (pb_decode_tag(&s, &wt, &tag, &eof)) {
        if (tag == 1 && wt == PB_WT_VARINT)
            return pb_decode_varint32(&s, &v) ? v : 0;
        if (!pb_skip_field(&s, wt))
            return 0;
    }
    return 0;
}

int cimc__hello_start(cimc_t *c)
{
    cim_ClientHello h = cim_ClientHello_init_zero;
    cimc_hs_t *hs = mem_calloc(sizeof(*hs));
    pb_ostream_t s;
    int rc;

    if ((rc = chan_client_start(&hs->cl)) < 0)
        goto out;
    h.version = 1;
    h.client_key.size = CHAN_KEY;
    memcpy(h.client_key.bytes, hs->cl.key, CHAN_KEY);
    h.client_random.size = CHAN_RANDOM;
    memcpy(h.client_random.bytes, hs->cl.random, CHAN_RANDOM);
    s = pb_ostream_from_buffer(hs->hello, sizeof(hs->hello));
    if (!pb_encode(&s, cim_ClientHello_fields, &h)) {
        rc = RC_EINVAL;
        goto out;
    }
    hs->hello_len = s.bytes_written;
    c->hs = hs;
    hs = NULL;
    c->state = CIMC_ST_HELLO;
out:
    if (hs != NULL) {
        chan_client_close(&hs->cl);
        mem_free(hs);
    }
    return rc;
}

int cimc__hello_finish(cimc_t *c, const uint8_t *body, size_t len)
{
    cim_ServerHello sh = cim_ServerHello_init_zero;
    const uint8_t *pin = c->has_pinned ? c->pinned : NULL;
    cimc_hs_t *hs = c->hs;
    int rc;

    c->hs = NULL;
    if (hs == NULL || c->state != CIMC_ST_HELLO) {
        rc = RC_EPROTO;
        goto out;
    }
    if (cimc_decode(cim_ServerHello_fields, body, len, &sh) < 0 || sh.version != 1 ||
        sh.server_key.size != CHAN_KEY || sh.server_random.size != CHAN_RANDOM ||
        sh.identity.size != CHAN_KEY || sh.signature.size != CHAN_SIG) {
        LOG_DEBUG("libcim: malformed HELLO_ACK");
        rc = RC_EPROTO;
        goto out;
    }
    memcpy(c->server_key, sh.identity.bytes, CHAN_KEY);
    c->has_server_key = true;
    rc = chan_client_finish(&hs->cl, hs->hello, hs->hello_len, sh.server_key.bytes,
                            sh.server_random.bytes, sh.identity.bytes, sh.signature.bytes, pin,
                            &c->ch);
    /* No pinned key and no trust-on-first-use: the handshake ran only so that the caller
     * can show the key it saw. */
    if (rc == 0 && pin == NULL && !c->tofu)
        rc = RC_EKEY;
    if (rc == 0)
        c->state = CIMC_ST_SECURE;
out:
    if (hs != NULL) {
        chan_client_close(&hs->cl);
        mem_free(hs);
    }
    return rc;
}

int cimc__bye_keep(cimc_t *c, const uint8_t *body, size_t len)
{
    cim_Bye *bye = mem_calloc(sizeof(*bye));

    if (cimc_decode(cim_Bye_fields, body, len, bye) < 0) {
        mem_free(bye);
        return RC_EPROTO;
    }
    mem_free(c->bye);
    c->bye = bye;
    return 0;
}

void cimc__login_adopt(cimc_t *c, const cim_LoginRsp *rsp)
{
    if (rsp->code != cim_Code_OK)
        return;
    c->max_body = rsp->max_body == 0             ? FRAME_MAX_BODY
                  : rsp->max_body > MAX_BODY_CAP ? MAX_BODY_CAP
                                                 : rsp->max_body;
    c->heartbeat_s = rsp->heartbeat_s;
    c->state = CIMC_ST_READY;
}

int cimc__feed_rc(int rc)
{
    if (rc == RC_ETOOBIG) {
        LOG_DEBUG("libcim: server frame over the size limit");
        return RC_EPROTO;
    }
    return rc;
}

/* ---- helpers -------------------------------------------------------------------------- */

static bool encode_bytes(pb_ostream_t *s, const pb_field_t *f, void *const *arg)
{
    const cimc_bytes_t *b = *arg;

    if (b == NULL)
        return true;
    return pb_encode_tag_for_field(s, f) && pb_encode_string(s, b->data, b->len);
}

void cimc_bytes_encoder(pb_callback_t *field, const cimc_bytes_t *b)
{
    field->funcs.encode = encode_bytes;
    field->arg = (void *)b;
}

int cimc_decode(const pb_msgdesc_t *fields, const uint8_t *body, size_t len, void *dst)
{
    pb_istream_t s = pb_istream_from_buffer(body, len);

    if (!pb_decode(&s, fields, dst)) {
        LOG_DEBUG("libcim: decode failed: %s", PB_GET_ERROR(&s));
        return RC_EPROTO;
    }
    return 0;
}

typedef struct body_cap {
    cimc_push_t *p;
    const uint8_t *start, *end; /* the Message being decoded (a buffer stream) */
    bool oom;
} body_cap_t;

/* Message.body: copy it out. Its length is bounded by the frame, itself capped. nanopb
 * calls this for any wire type; only a length-delimited field is read through a window of
 * the Message itself (a varint or fixed field comes as a stream over nanopb's stack), so a
 * window elsewhere is a malformed Message, not a body. */
static bool capture_body(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    body_cap_t *bc = *arg;
    const uint8_t *at = s->state;
    size_t n = s->bytes_left;
    uint8_t *buf;

    (void)f;
    if (at < bc->start || at > bc->end || n > (size_t)(bc->end - at))
        PB_RETURN_ERROR(s, "body: wrong wire type");
    if ((buf = mem_try_alloc(n)) == NULL) {
        bc->oom = true;
        return false;
    }
    if (!pb_read(s, buf, n)) {
        mem_free(buf);
        return false;
    }
    mem_free(bc->p->body_data); /* a repeated field occurrence: the last one wins */
    bc->p->body_data = buf;
    bc->p->body_len = n;
    return true;
}

int cimc_message_decode(pb_istream_t *s, cimc_push_t *out)
{
    cimc_push_t p;
    body_cap_t bc = {&p, s->state, (const uint8_t *)s->state + s->bytes_left, false};
    int rc = 0;

    memset(&p, 0, sizeof(p));
    p.type = FT_PUSH;
    p.u.msg.body.funcs.decode = capture_body;
    p.u.msg.body.arg = &bc;
    if (!pb_decode(s, cim_Message_fields, &p.u.msg)) {
        LOG_DEBUG("libcim: Message decode failed: %s", PB_GET_ERROR(s));
        rc = bc.oom ? -ENOMEM : RC_EPROTO;
    }
    p.u.msg.body.funcs.decode = NULL;
    p.u.msg.body.arg = NULL;
    if (rc < 0) {
        cimc_push_free(&p);
        return rc;
    }
    *out = p;
    return 0;
}

int cimc_push_decode(uint32_t type, const uint8_t *body, size_t len, cimc_push_t *out)
{
    pb_istream_t s = pb_istream_from_buffer(body, len);
    cimc_push_t p;
    int rc = 0;

    memset(&p, 0, sizeof(p));
    p.type = type;
    switch (type) {
    case FT_PUSH:
        rc = cimc_message_decode(&s, &p);
        break;
    case FT_EVENT:
        rc = cimc_decode(cim_Event_fields, body, len, &p.u.event);
        break;
    case FT_BYE:
        rc = cimc_decode(cim_Bye_fields, body, len, &p.u.bye);
        break;
    default:
        rc = RC_EPROTO;
        break;
    }
    if (rc < 0) {
        cimc_push_free(&p);
        return rc;
    }
    *out = p;
    return 0;
}

void cimc_push_free(cimc_push_t *p)
{
    if (p == NULL)
        return;
    mem_free(p->body_data);
    p->body_data = NULL;
    p->body_len = 0;
}

/* cim.h gives its callers core/rc.h's codes under its own names: keep them equal. */
_Static_assert(CIMC_EPROTO == RC_EPROTO && CIMC_ETOOBIG == RC_ETOOBIG &&
                   CIMC_EFULL == RC_EFULL && CIMC_ECLOSED == RC_ECLOSED &&
                   CIMC_ECRYPTO == RC_ECRYPTO && CIMC_EINVAL == RC_EINVAL &&
                   CIMC_EKEY == RC_EKEY && CIMC_ETIMEDOUT == RC_ETIMEDOUT,
               "cim.h's CIMC_E* differ from core/rc.h");

const char *cimc_strerror(int rc)
{
    return rc_str(rc);
}

const char *cimc_code_str(int code)
{
    const char *name = cim_Code_name((cim_Code)code); /* generated (cim.options) */
    return strcmp(name, "unknown") == 0 ? "UNKNOWN" : name;
}

const uint8_t *cimc_server_key(const cimc_t *c)
{
    return c != NULL && c->has_server_key ? c->server_key : NULL;
}

const cim_Bye *cimc_bye(const cimc_t *c)
{
    return c != NULL ? c->bye : NULL;
}

uint32_t cimc_max_body(const cimc_t *c)
{
    return c->max_body;
}

int64_t cimc_ping_due_ms(const cimc_t *c)
{
    uint64_t now, due;

    if (c == NULL || c->state != CIMC_ST_READY || c->heartbeat_s == 0)
        return -1;
    now = c->mode == CIMC_MODE_ASYNC ? uv_now(c->u.a.tcp.loop) : cimc__now_us() / 1000;
    due = c->last_tx_ms + (uint64_t)c->heartbeat_s * 1000;
    return due <= now ? 0 : (int64_t)(due - now);
}

/* ---- blocking driver: sockets --------------------------------------------------------- */

/* Milliseconds left before @p deadline_us for poll(2): 0 when past, rounded up. */
static int left_ms(uint64_t deadline_us)
{
    uint64_t now = cimc__now_us();

    if (now >= deadline_us)
        return 0;
    if (deadline_us - now > (uint64_t)INT32_MAX * 1000)
        return INT32_MAX;
    return (int)((deadline_us - now + 999) / 1000);
}

static uint64_t deadline_after(unsigned ms)
{
    return cimc__now_us() + (uint64_t)ms * 1000;
}

/* Wait until @p fd is ready for @p events. @return 0, RC_ETIMEDOUT, -errno. */
int cimc__wait_fd(int fd, short events, uint64_t deadline_us)
{
    struct pollfd p = {.fd = fd, .events = events};
    int n;

    for (;;) {
        n = poll(&p, 1, left_ms(deadline_us));
        if (n > 0)
            return 0;
        if (n == 0)
            return RC_ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static int gai_rc(int e)
{
    switch (e) {
    case EAI_SYSTEM:
        return -errno;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_NONAME:
    case EAI_NODATA:
    case EAI_FAIL:
    case EAI_AGAIN:
        return RC_ENOTFOUND;
    default:
        return RC_EINVAL;
    }
}

/* opts.bind_addr: bind @p fd (of @p family) to that source address, the port left to
 * connect. @return 0, RC_EINVAL (not an address of @p family), -errno. */
static int bind_source(int fd, int family, const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1;

    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        len = sizeof(*a);
        if (inet_pton(AF_INET, addr, &a->sin_addr) != 1)
            return RC_EINVAL;
    } else if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        len = sizeof(*a);
        if (inet_pton(AF_INET6, addr, &a->sin6_addr) != 1)
            return RC_EINVAL;
    } else {
        return RC_EINVAL;
    }
#ifdef IP_BIND_ADDRESS_NO_PORT
    /* best effort: without it the port is chosen at bind, still per source address */
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#else
    (void)one;
#endif
    return bind(fd, (struct sockaddr *)&ss, len) < 0 ? -errno : 0;
}

/* Connect to the first address of @p host that accepts, within the deadline; from
 * @p bind_addr when it is not NULL. */
static int tcp_connect(const char *host, int port, const char *bind_addr, uint64_t deadline_us,
                       int *out)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL, *ai;
    char service[16];
    int fd = -1, rc, e, one = 1;
    socklen_t elen;

    snprintf(service, sizeof(service), "%d", port);
    if ((e = getaddrinfo(host, service, &hints, &res)) != 0) {
        rc = gai_rc(e);
        goto out;
    }
    rc = RC_ENOTFOUND;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (bind_addr != NULL && (rc = bind_source(fd, ai->ai_family, bind_addr)) < 0)
            goto next;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            if (errno != EINPROGRESS) {
                rc = -errno;
                goto next;
            }
            if ((rc = cimc__wait_fd(fd, POLLOUT, deadline_us)) < 0)
                goto next;
            e = 0;
            elen = sizeof(e);
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0) {
                rc = -errno;
                goto next;
            }
            if (e != 0) {
                rc = -e;
                goto next;
            }
        }
        /* Requests are small and latency matters more than segment count. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* best effort */
        *out = fd;
        fd = -1;
        rc = 0;
        goto out;
    next:
        (void)close(fd); /* best effort: a socket that never connected */
        fd = -1;
        if (rc == RC_ETIMEDOUT)
            break;
    }
out:
    if (res != NULL)
        freeaddrinfo(res);
    return rc;
}

static void inbox_push(cimc_t *c, cimc_inframe_t *f)
{
    f->next = NULL;
    if (c->u.b.in_tail != NULL)
        c->u.b.in_tail->next = f;
    else
        c->u.b.in_head = f;
    c->u.b.in_tail = f;
}

static cimc_inframe_t *inbox_pop(cimc_t *c)
{
    cimc_inframe_t *f = c->u.b.in_head;

    if (f != NULL) {
        c->u.b.in_head = f->next;
        if (c->u.b.in_head == NULL)
            c->u.b.in_tail = NULL;
    }
    return f;
}

/* frame_rd callback: open the frame and queue its plaintext. The handshake completes here,
 * not in the consumer, because the frames after HELLO_ACK in the same read are sealed. */
static int on_frame(void *arg, uint32_t type, uint8_t *frame, uint32_t len)
{
    cimc_t *c = arg;
    chan_ctx_t *ctx = NULL;
    cimc_inframe_t *f;
    uint8_t *body;
    size_t blen;
    int rc;

    if (c->state >= CIMC_ST_SECURE && (ctx = thread_ctx()) == NULL)
        return -ENOMEM;
    if ((rc = cimc__open(c, ctx, frame, len, &body, &blen)) < 0)
        return rc;
    if (type == FT_HELLO_ACK && c->hs != NULL) {
        if ((rc = cimc__hello_finish(c, body, blen)) < 0)
            return rc;
    } else if (type == FT_BYE) {
        if ((rc = cimc__bye_keep(c, body, blen)) < 0)
            return rc;
    }
    if ((f = mem_try_alloc(sizeof(*f) + blen)) == NULL)
        return -ENOMEM;
    f->type = type;
    f->len = (uint32_t)blen;
    if (blen > 0)
        memcpy(f->body, body, blen);
    inbox_push(c, f);
    return 0;
}

/* Read once (waiting until the deadline for data) and queue the frames it completes.
 * @return 0, RC_ETIMEDOUT, RC_ECLOSED (EOF or reset), or the connection's error. */
static int read_some(cimc_t *c, uint64_t deadline_us)
{
    uint8_t buf[READ_CHUNK];
    ssize_t n;
    int rc;

    if (c->err != 0)
        return c->err;
    if (c->eof)
        return RC_ECLOSED;
    if (c->u.b.ws != NULL)
        return cimc__ws_read(c, deadline_us);
    for (;;) {
        n = recv(c->u.b.fd, buf, sizeof(buf), 0);
        if (n > 0)
            break;
        if (n == 0) {
            c->eof = true;
            return RC_ECLOSED;
        }
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET) {
            c->eof = true;
            return RC_ECLOSED;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return c->err = -errno;
        if ((rc = cimc__wait_fd(c->u.b.fd, POLLIN, deadline_us)) < 0)
            return rc;
    }
    rc = cimc__feed(c, buf, (size_t)n);
    if (rc != 0)
        return c->err = cimc__feed_rc(rc);
    return 0;
}

int cimc__feed(cimc_t *c, uint8_t *buf, size_t n)
{
    return frame_rd_feed(&c->rd, buf, n, cimc__max_frame(c), on_frame, c);
}

/* Take the next received frame, reading until the deadline. Frames already queued are
 * given out before the connection's end or error is reported. */
static int next_in(cimc_t *c, uint64_t deadline_us, cimc_inframe_t **out)
{
    int rc;

    while (c->u.b.in_head == NULL)
        if ((rc = read_some(c, deadline_us)) < 0)
            return rc;
    *out = inbox_pop(c);
    return 0;
}

/* After a failed write, pick up what the server said before closing (its BYE). */
static void drain_nowait(cimc_t *c)
{
    while (read_some(c, 0) == 0)
        ;
}

static int write_all(cimc_t *c, const uint8_t *p, size_t n, uint64_t deadline_us)
{
    int rc;

    if (c->err != 0)
        return c->err;
    rc = c->u.b.ws != NULL ? cimc__ws_write(c, p, n, deadline_us)
                           : cimc__send_all(c, p, n, deadline_us);
    if (rc == 0)
        c->last_tx_ms = cimc__now_us() / 1000;
    else if (rc == RC_ECLOSED && c->u.b.ws != NULL)
        drain_nowait(c);
    return rc;
}

int cimc__send_all(cimc_t *c, const uint8_t *p, size_t n, uint64_t deadline_us)
{
    ssize_t w;
    int rc;

    while (n > 0) {
        w = send(c->u.b.fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if ((rc = cimc__wait_fd(c->u.b.fd, POLLOUT, deadline_us)) < 0)
                return rc;
            continue;
        }
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            drain_nowait(c);
            c->eof = true;
            return RC_ECLOSED;
        }
        return -errno;
    }
    return 0;
}

/* Seal @p pt_len bytes as frame @p type and write it. */
static int send_pt(cimc_t *c, uint32_t type, const uint8_t *pt, size_t pt_len, uint64_t deadline_us)
{
    size_t flen = cimc__frame_len(c, pt_len);
    chan_ctx_t *ctx = NULL;
    uint8_t *buf = NULL;
    int rc;

    if (c->state >= CIMC_ST_SECURE && (ctx = thread_ctx()) == NULL)
        return -ENOMEM;
    if ((buf = mem_try_alloc(flen)) == NULL)
        return -ENOMEM;
    if ((rc = cimc__seal(c, ctx, type, pt, pt_len, buf)) < 0)
        goto out;
    rc = write_all(c, buf, flen, deadline_us);
out:
    mem_free(buf);
    return rc;
}

/* Encode @p msg and send it as frame @p type. */
static int send_msg(cimc_t *c, uint32_t type, const pb_msgdesc_t *fields, const void *msg,
                    uint64_t deadline_us)
{
    uint8_t *pt = NULL;
    size_t n;
    int rc;

    if ((rc = cimc__pb_size(c, fields, msg, &n)) < 0)
        return rc;
    if ((pt = mem_try_alloc(n)) == NULL)
        return -ENOMEM;
    if ((rc = cimc__pb_encode(fields, msg, pt, n)) == 0)
        rc = send_pt(c, type, pt, n, deadline_us);
    mem_free(pt);
    return rc;
}

/* Can a request still be sent? */
static int usable(const cimc_t *c)
{
    if (c == NULL || c->mode != CIMC_MODE_BLOCKING)
        return RC_EINVAL;
    if (c->err != 0)
        return c->err;
    if (c->eof || c->bye != NULL)
        return RC_ECLOSED;
    return 0;
}

/* ---- blocking driver: pushes ---------------------------------------------------------- */

static void pushq_add(cimc_t *c, const cimc_push_t *p)
{
    cimc_pushq_t *q, *old;

    if (c->u.b.pq_len >= CIMC_PUSHQ_MAX) {
        old = c->u.b.pq_head;
        c->u.b.pq_head = old->next;
        if (c->u.b.pq_head == NULL)
            c->u.b.pq_tail = NULL;
        c->u.b.pq_len--;
        cimc_push_free(&old->p);
        mem_free(old);
        LOG_RL(LOG_LVL_WARN, "libcim: push queue full; oldest push dropped");
    }
    q = mem_alloc(sizeof(*q));
    q->next = NULL;
    q->p = *p;
    if (c->u.b.pq_tail != NULL)
        c->u.b.pq_tail->next = q;
    else
        c->u.b.pq_head = q;
    c->u.b.pq_tail = q;
    c->u.b.pq_len++;
}

static bool is_push(uint32_t type)
{
    return type == FT_PUSH || type == FT_EVENT || type == FT_BYE;
}

/* Hand a PUSH, EVENT or BYE to the callback and the queue. */
static int deliver_push(cimc_t *c, const cimc_inframe_t *f)
{
    cimc_push_t p;
    int rc;

    if ((rc = cimc_push_decode(f->type, f->body, f->len, &p)) < 0) {
        if (rc == RC_EPROTO)
            c->err = rc;
        return rc;
    }
    if (c->u.b.push_cb != NULL)
        c->u.b.push_cb(c->u.b.push_ctx, &p);
    pushq_add(c, &p);
    return 0;
}

/* A frame no blocking call is waiting for: pushes are delivered, stale answers dropped. */
static int consume_other(cimc_t *c, cimc_inframe_t *f)
{
    int rc = 0;

    if (is_push(f->type))
        rc = deliver_push(c, f);
    else
        LOG_DEBUG("libcim: dropping unexpected %s", frame_type_name(f->type));
    mem_free(f);
    return rc;
}

/* Wait for the answer of type @p ack_type with @p req_id (0: the first of that type),
 * delivering pushes that come first. @param[out] out the answer; free with mem_free. */
static int wait_answer(cimc_t *c, uint64_t deadline_us, uint32_t ack_type, uint32_t req_id,
                       cimc_inframe_t **out)
{
    cimc_inframe_t *f;
    uint32_t rid;
    bool bye;
    int rc;

    for (;;) {
        if ((rc = next_in(c, deadline_us, &f)) < 0)
            return rc;
        rid = req_id != 0 ? cimc__peek_req_id(f->body, f->len) : 0;
        if (f->type == ack_type && rid == req_id) {
            *out = f;
            return 0;
        }
        if (req_id != 0 && rid == req_id && !is_push(f->type)) {
            LOG_DEBUG("libcim: req_id %u answered with %s, not %s", req_id,
                      frame_type_name(f->type), frame_type_name(ack_type));
            mem_free(f);
            return RC_EPROTO;
        }
        bye = f->type == FT_BYE;
        if ((rc = consume_other(c, f)) < 0)
            return rc;
        if (bye)
            return RC_ECLOSED;
    }
}

/* ---- blocking API --------------------------------------------------------------------- */

int cimc_connect_raw(const cimc_opts_t *opts, cimc_t **out)
{
    const char *host = opts != NULL && opts->host != NULL ? opts->host : "127.0.0.1";
    int port = opts != NULL && opts->port != 0 ? opts->port : 7400;
    cimc_t *c = NULL;
    int rc;

    if (port < 1 || port > 65535)
        return RC_EINVAL;
    if ((rc = cimc__global_init()) < 0)
        return rc;
    c = mem_calloc(sizeof(*c));
    cimc__init(c, CIMC_MODE_BLOCKING, opts);
    c->u.b.fd = -1;
    if ((rc = tcp_connect(host, port, opts != NULL ? opts->bind_addr : NULL,
                          deadline_after(c->timeout_ms), &c->u.b.fd)) < 0)
        goto out;
    if (opts != NULL && opts->ws_path != NULL &&
        (rc = cimc__ws_upgrade(c, host, port, opts->ws_path, deadline_after(c->timeout_ms))) < 0)
        goto out;
    *out = c;
    c = NULL;
out:
    cimc_close(c);
    return rc;
}

int cimc_connect(const cimc_opts_t *opts, cimc_t **out)
{
    cimc_inframe_t *f = NULL;
    cimc_t *c = NULL;
    uint64_t deadline;
    int rc;

    if ((rc = cimc_connect_raw(opts, &c)) < 0)
        return rc;
    deadline = deadline_after(c->timeout_ms);
    if ((rc = cimc__hello_start(c)) < 0)
        goto out;
    if ((rc = send_pt(c, FT_HELLO, c->hs->hello, c->hs->hello_len, deadline)) < 0)
        goto out;
    /* on_frame completes the handshake as the HELLO_ACK is read. */
    if ((rc = next_in(c, deadline, &f)) < 0)
        goto out;
    if (f->type != FT_HELLO_ACK || c->state != CIMC_ST_SECURE) {
        LOG_DEBUG("libcim: %s instead of HELLO_ACK", frame_type_name(f->type));
        rc = RC_EPROTO;
        goto out;
    }
out:
    if (c->has_server_key && opts != NULL && opts->key_seen != NULL)
        memcpy(opts->key_seen, c->server_key, CHAN_KEY);
    mem_free(f);
    if (rc < 0)
        cimc_close(c);
    else
        *out = c;
    return rc;
}

void cimc_close(cimc_t *c)
{
    cimc_inframe_t *f;
    cimc_pushq_t *q;

    if (c == NULL)
        return;
    if (c->mode == CIMC_MODE_ASYNC) {
        cimc_async_close(c);
        return;
    }
    cimc__ws_free(c);
    if (c->u.b.fd >= 0)
        (void)close(c->u.b.fd); /* best effort: nothing to do if it fails */
    while ((f = inbox_pop(c)) != NULL)
        mem_free(f);
    while ((q = c->u.b.pq_head) != NULL) {
        c->u.b.pq_head = q->next;
        cimc_push_free(&q->p);
        mem_free(q);
    }
    cimc__release(c);
    mem_free(c);
}

int cimc_call(cimc_t *c, uint32_t type, const pb_msgdesc_t *req_fields, void *req,
              uint32_t ack_type, const pb_msgdesc_t *rsp_fields, void *rsp)
{
    cimc_inframe_t *f = NULL;
    uint64_t deadline;
    uint32_t id;
    int rc;

    if ((rc = usable(c)) < 0)
        return rc;
    deadline = deadline_after(c->timeout_ms);
    id = cimc__set_req_id(c, req_fields, req);
    if ((rc = send_msg(c, type, req_fields, req, deadline)) < 0)
        return rc;
    if ((rc = wait_answer(c, deadline, ack_type, id, &f)) < 0)
        return rc;
    if ((rc = cimc_decode(rsp_fields, f->body, f->len, rsp)) < 0)
        goto out;
    if (ack_type == FT_LOGIN_ACK && rsp_fields == cim_LoginRsp_fields)
        cimc__login_adopt(c, rsp);
out:
    mem_free(f);
    return rc;
}

int cimc_login(cimc_t *c, cim_LoginReq *req, cim_LoginRsp *rsp)
{
    return cimc_call(c, FT_LOGIN, cim_LoginReq_fields, req, FT_LOGIN_ACK, cim_LoginRsp_fields, rsp);
}

int cimc_ping(cimc_t *c, uint64_t *rtt_us)
{
    cim_Ping ping = cim_Ping_init_zero;
    cim_Pong pong = cim_Pong_init_zero;
    uint64_t t0 = cimc__now_us();
    int rc;

    ping.client_time_ms = wall_ms();
    if ((rc = cimc_call(c, FT_PING, cim_Ping_fields, &ping, FT_PONG, cim_Pong_fields, &pong)) < 0)
        return rc;
    if (rtt_us != NULL)
        *rtt_us = cimc__now_us() - t0;
    return 0;
}

int cimc_logout(cimc_t *c, cim_Result *res)
{
    cim_Req req = cim_Req_init_zero;
    cim_Result tmp = cim_Result_init_zero;
    int rc;

    if ((rc = cimc_call(c, FT_LOGOUT, cim_Req_fields, &req, FT_LOGOUT_ACK, cim_Result_fields,
                        res != NULL ? res : &tmp)) < 0)
        return rc;
    return cimc_wait_closed(c, c->timeout_ms);
}

int cimc_send_msg(cimc_t *c, uint32_t type, const pb_msgdesc_t *fields, const void *msg)
{
    int rc;

    if ((rc = usable(c)) < 0)
        return rc;
    return send_msg(c, type, fields, msg, deadline_after(c->timeout_ms));
}

int cimc_send_frame(cimc_t *c, uint32_t type, const void *body, size_t len)
{
    int rc;

    if ((rc = usable(c)) < 0)
        return rc;
    /* Deliberately not capped at max_body: tests use this to send oversized frames. */
    if (len > CIMC_SEND_FRAME_MAX)
        return RC_ETOOBIG;
    return send_pt(c, type, body, len, deadline_after(c->timeout_ms));
}

int cimc_seal(cimc_t *c, uint32_t type, const void *body, size_t len, uint8_t **out, size_t *outlen)
{
    size_t flen;
    chan_ctx_t *ctx = NULL;
    uint8_t *buf;
    int rc;

    if (c == NULL || c->mode != CIMC_MODE_BLOCKING)
        return RC_EINVAL;
    if (len > CIMC_SEND_FRAME_MAX)
        return RC_ETOOBIG;
    if (c->state >= CIMC_ST_SECURE && (ctx = thread_ctx()) == NULL)
        return -ENOMEM;
    flen = cimc__frame_len(c, len);
    /* The contract says free(): plain malloc, outside the mem counters, on purpose. */
    if ((buf = malloc(flen)) == NULL)
        return -ENOMEM;
    if ((rc = cimc__seal(c, ctx, type, body, len, buf)) < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *outlen = flen;
    return 0;
}

int cimc_write_raw(cimc_t *c, const void *bytes, size_t len)
{
    if (c == NULL || c->mode != CIMC_MODE_BLOCKING)
        return RC_EINVAL;
    return write_all(c, bytes, len, deadline_after(c->timeout_ms));
}

int cimc_next_frame(cimc_t *c, unsigned timeout_ms, uint32_t *type, uint8_t **body, size_t *len)
{
    cimc_inframe_t *f = NULL;
    uint8_t *copy;
    int rc;

    if (c == NULL || c->mode != CIMC_MODE_BLOCKING)
        return RC_EINVAL;
    if ((rc = next_in(c, deadline_after(timeout_ms), &f)) < 0)
        return rc;
    /* The contract says free(): plain malloc, outside the mem counters, on purpose. */
    if ((copy = malloc(f->len > 0 ? f->len : 1)) == NULL) {
        mem_free(f);
        return -ENOMEM;
    }
    memcpy(copy, f->body, f->len);
    *type = f->type;
    *body = copy;
    *len = f->len;
    mem_free(f);
    return 0;
}

int cimc_wait_closed(cimc_t *c, unsigned timeout_ms)
{
    uint64_t deadline = deadline_after(timeout_ms);
    cimc_inframe_t *f;
    int rc;

    if (c == NULL || c->mode != CIMC_MODE_BLOCKING)
        return RC_EINVAL;
    for (;;) {
        rc = next_in(c, deadline, &f);
        if (rc == RC_ECLOSED)
            return 0;
        if (rc < 0)
            return rc;
        mem_free(f); /* a BYE was kept by on_frame */
    }
}

void cimc_on_push(cimc_t *c, cimc_push_cb cb, void *ctx)
{
    if (c == NULL || c->mode != CIMC_MODE_BLOCKING)
        return;
    c->u.b.push_cb = cb;
    c->u.b.push_ctx = ctx;
}

int cimc_next_push(cimc_t *c, unsigned timeout_ms, cimc_push_t *out)
{
    uint64_t deadline = deadline_after(timeout_ms);
    cimc_inframe_t *f;
    cimc_pushq_t *q;
    int rc;

    if (c == NULL || c->mode != CIMC_MODE_BLOCKING)
        return RC_EINVAL;
    while (c->u.b.pq_head == NULL) {
        if ((rc = next_in(c, deadline, &f)) < 0)
            return rc;
        if ((rc = consume_other(c, f)) < 0)
            return rc;
    }
    q = c->u.b.pq_head;
    c->u.b.pq_head = q->next;
    if (c->u.b.pq_head == NULL)
        c->u.b.pq_tail = NULL;
    c->u.b.pq_len--;
    *out = q->p;
    mem_free(q);
    return 0;
}

int cimc_fd(const cimc_t *c)
{
    if (c == NULL)
        return -1;
    if (c->mode == CIMC_MODE_ASYNC) {
        uv_os_fd_t fd;
        return uv_fileno((const uv_handle_t *)&c->u.a.tcp, &fd) == 0 ? fd : -1;
    }
    return c->u.b.fd;
}

int cimc_poll(cimc_t *c)
{
    cimc_inframe_t *f;
    int rc = 0, i;

    if (c == NULL || c->mode != CIMC_MODE_BLOCKING)
        return RC_EINVAL;
    for (i = 0; i < POLL_READS_MAX && rc == 0; i++) {
        while ((f = inbox_pop(c)) != NULL)
            if ((rc = consume_other(c, f)) < 0)
                return rc;
        rc = read_some(c, 0);
    }
    while ((f = inbox_pop(c)) != NULL)
        if (consume_other(c, f) < 0)
            break;
    return rc == RC_ETIMEDOUT ? 0 : rc;
}
