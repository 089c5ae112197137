/* cim_ws: libcim's blocking driver over a WebSocket (cimc_opts_t.ws_path; PROTOCOL.md §1):
 * the HTTP/1.1 upgrade with the subprotocol cim.v1, then one protocol frame per binary
 * message both ways, framed and masked by wslay (client side). */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <wslay/wslay.h>

#include "client/cim_int.h"
#include "core/frame.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_RESPONSE_MAX 8192 /* the upgrade answer's headers */

struct cimc_ws {
    cimc_t *c;
    int fd;
    wslay_event_context_ptr ctx;
    uint8_t pre[WS_RESPONSE_MAX]; /* bytes read past the upgrade answer */
    size_t pre_len, pre_off;
    bool got;    /* a message was fed during this read */
    bool eof;    /* the peer closed the TCP connection */
    int feed_rc; /* the frame reader's failure, if any */
};

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    struct cimc_ws *ws = user;
    ssize_t n;
    (void)flags;

    if (ws->pre_off < ws->pre_len) {
        n = (ssize_t)(ws->pre_len - ws->pre_off < len ? ws->pre_len - ws->pre_off : len);
        memcpy(buf, ws->pre + ws->pre_off, (size_t)n);
        ws->pre_off += (size_t)n;
        return n;
    }
    do
        n = recv(ws->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        return n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ws->eof = true; /* EOF, or reset */
    LOG_DEBUG("libcim: WebSocket read: %s", n == 0 ? "EOF" : strerror(errno));
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    struct cimc_ws *ws = user;
    ssize_t n;
    (void)flags;

    do
        n = send(ws->fd, data, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ws->eof = errno == EPIPE || errno == ECONNRESET;
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static int on_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    (void)ctx;
    (void)user;
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    struct cimc_ws *ws = user;
    uint8_t *copy;
    (void)ctx;

    LOG_DEBUG("libcim: WebSocket message opcode %d, %zu bytes", arg->opcode, arg->msg_length);
    if (arg->opcode != WSLAY_BINARY_FRAME || ws->feed_rc != 0)
        return; /* close, ping and pong are wslay's; text is not the protocol's */
    /* Frames are opened in place: the reader gets a writable copy. */
    if ((copy = mem_try_alloc(arg->msg_length ? arg->msg_length : 1)) == NULL) {
        ws->feed_rc = -ENOMEM;
        return;
    }
    memcpy(copy, arg->msg, arg->msg_length);
    ws->feed_rc = cimc__feed(ws->c, copy, arg->msg_length);
    mem_free(copy);
    ws->got = true;
}

/* base64(SHA-1(key || GUID)): what the server must answer in Sec-WebSocket-Accept. */
static int accept_key(const char *key, char out[29])
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char src[64];
    int n = snprintf(src, sizeof(src), "%s" WS_GUID, key);

    if (n <= 0 || (size_t)n >= sizeof(src) ||
        EVP_Digest(src, (size_t)n, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        return RC_ECRYPTO;
    return EVP_EncodeBlock((unsigned char *)out, md, 20) == 28 ? 0 : RC_ECRYPTO;
}

/* The value of header @p name in the answer's header block @p h (NUL-terminated), copied
 * trimmed into @p out. @return true when present. */
static bool header(const char *h, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(h, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2, *end = strstr(line, "\r\n");
        size_t vl;
        if (end == NULL || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
            continue;
        line += nl + 1;
        while (*line == ' ' || *line == '\t')
            line++;
        vl = (size_t)(end - line);
        while (vl > 0 && (line[vl - 1] == ' ' || line[vl - 1] == '\t'))
            vl--;
        snprintf(out, outlen, "%.*s", (int)vl, line);
        return true;
    }
    return false;
}

int cimc__ws_upgrade(cimc_t *c, const char *host, int port, const char *path,
                     uint64_t deadline_us)
{
    struct wslay_event_callbacks cbs = {.recv_callback = on_recv,
                                        .send_callback = on_send,
                                        .genmask_callback = on_genmask,
                                        .on_msg_recv_callback = on_msg};
    struct cimc_ws *ws = mem_calloc(sizeof(*ws));
    uint8_t nonce[16];
    char key[32], want[29], got[64], req[1024], *eoh;
    size_t have = 0;
    int n, rc;

    ws->c = c;
    ws->fd = c->u.b.fd;
    c->u.b.ws = ws;
    if (RAND_bytes(nonce, sizeof(nonce)) != 1 ||
        EVP_EncodeBlock((unsigned char *)key, nonce, sizeof(nonce)) != 24 ||
        (rc = accept_key(key, want)) < 0)
        return RC_ECRYPTO;
    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Protocol: " CIMC_WS_SUBPROTOCOL "\r\n\r\n",
                 path, strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port,
                 key);
    if (n <= 0 || (size_t)n >= sizeof(req) || path[0] != '/')
        return RC_EINVAL;
    if ((rc = cimc__send_all(c, (const uint8_t *)req, (size_t)n, deadline_us)) < 0)
        return rc;
    /* The answer's headers: read until the blank line (bytes after it are WebSocket's). */
    for (;;) {
        ssize_t r = recv(ws->fd, ws->pre + have, sizeof(ws->pre) - 1 - have, 0);
        if (r > 0) {
            have += (size_t)r;
            ws->pre[have] = '\0';
            if ((eoh = strstr((char *)ws->pre, "\r\n\r\n")) != NULL)
                break;
            if (have == sizeof(ws->pre) - 1)
                return RC_EPROTO;
            continue;
        }
        if (r == 0)
            return RC_ECLOSED;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        if ((rc = cimc__wait_fd(ws->fd, POLLIN, deadline_us)) < 0)
            return rc;
    }
    eoh[2] = '\0'; /* the header block, each line ending in CRLF */
    if (strncmp((char *)ws->pre, "HTTP/1.1 101", 12) != 0) {
        LOG_DEBUG("libcim: WebSocket upgrade refused: %.60s", (char *)ws->pre);
        return strncmp((char *)ws->pre, "HTTP/1.1 403", 12) == 0 ? RC_EAUTH : RC_EPROTO;
    }
    if (!header((char *)ws->pre, "sec-websocket-accept", got, sizeof(got)) ||
        strcmp(got, want) != 0 ||
        !header((char *)ws->pre, "sec-websocket-protocol", got, sizeof(got)) ||
        strcmp(got, CIMC_WS_SUBPROTOCOL) != 0)
        return RC_EPROTO;
    ws->pre_off = (size_t)(eoh + 4 - (char *)ws->pre);
    ws->pre_len = have;
    if (wslay_event_context_client_init(&ws->ctx, &cbs, ws) != 0)
        return -ENOMEM;
    return 0;
}

/* Send what wslay has queued, waiting for the socket as needed. */
static int flush(cimc_t *c, struct cimc_ws *ws, uint64_t deadline_us)
{
    int rc;
    while (wslay_event_want_write(ws->ctx)) {
        if (wslay_event_send(ws->ctx) != 0) {
            c->eof = ws->eof || c->eof;
            return ws->eof ? RC_ECLOSED : RC_EPROTO;
        }
        if (wslay_event_want_write(ws->ctx) &&
            (rc = cimc__wait_fd(ws->fd, POLLOUT, deadline_us)) < 0)
            return rc;
    }
    return 0;
}

int cimc__ws_read(cimc_t *c, uint64_t deadline_us)
{
    struct cimc_ws *ws = c->u.b.ws;
    int rc;

    for (;;) {
        ws->got = false;
        if (wslay_event_recv(ws->ctx) != 0 && !ws->got) {
            c->eof = true;
            return ws->eof ? RC_ECLOSED : (c->err = RC_EPROTO);
        }
        if (ws->feed_rc != 0)
            return c->err = cimc__feed_rc(ws->feed_rc);
        (void)flush(c, ws, deadline_us); /* pongs, the answer to a close */
        if (ws->got)
            return 0;
        if (!wslay_event_want_read(ws->ctx) || ws->eof) { /* closed by the server */
            c->eof = true;
            return RC_ECLOSED;
        }
        if ((rc = cimc__wait_fd(ws->fd, POLLIN, deadline_us)) < 0)
            return rc;
    }
}

int cimc__ws_write(cimc_t *c, const uint8_t *p, size_t n, uint64_t deadline_us)
{
    struct cimc_ws *ws = c->u.b.ws;
    size_t off = 0;

    /* One message per whole frame; bytes that do not parse as frames (cimc_write_raw's
     * test inputs) go as one message, for the server to judge. */
    while (off < n) {
        uint32_t flen = 0, type;
        struct wslay_event_msg msg = {WSLAY_BINARY_FRAME, p + off, 0};
        if (n - off >= FRAME_HDR)
            frame_hdr_read(p + off, &flen, &type);
        msg.msg_length = flen >= FRAME_HDR && flen <= n - off ? flen : n - off;
        if (wslay_event_queue_msg(ws->ctx, &msg) != 0) {
            c->eof = true;
            return RC_ECLOSED; /* a close was sent or received */
        }
        off += msg.msg_length;
    }
    return flush(c, ws, deadline_us);
}

void cimc__ws_free(cimc_t *c)
{
    struct cimc_ws *ws = c->u.b.ws;
    if (ws == NULL)
        return;
    if (ws->ctx != NULL)
        wslay_event_context_free(ws->ctx);
    mem_free(ws);
    c->u.b.ws = NULL;
}
