/**
 * libcim: the cim client library (PROTOCOL.md is its specification).
 *
 * Design. One connection is a cimc_t. Its protocol engine is I/O-agnostic: bytes from
 * the socket go in, frames come out through callbacks, and frames to send are sealed into
 * an output buffer. Two drivers sit on that engine:
 *  - the blocking API (cimc_connect, cimc_login, cimc_call, ...): the caller's thread
 *    does poll(2) on the socket with a timeout; used by the CLI and the tests;
 *  - the event-driven API (cimc_async_*): the connection lives on a libuv loop, requests
 *    complete through callbacks; one process can hold thousands (the bench tool).
 * Requests carry a req_id chosen by the library (counting from 1) and answers are
 * matched by it; pushes (PUSH, EVENT) and BYE arriving at any time go to the push
 * callback (blocking API: also kept in a bounded queue read by cimc_next_push; async API:
 * the BYE comes with the close callback instead).
 *
 * Trust. The server's Ed25519 identity is pinned (cimc_opts_t.pinned_key, 32 bytes).
 * Without a pinned key the connection fails with RC_EKEY unless the caller opts in with
 * the visibly named trust_on_first_use flag; the key seen is then readable with
 * cimc_server_key() so the caller can store it.
 *
 * Errors: functions return 0 or a negative rc: -ECONNREFUSED etc. from the socket,
 * CIMC_EKEY (wrong server key), CIMC_ECRYPTO (handshake or frame failure),
 * CIMC_ETIMEDOUT, CIMC_ECLOSED (the server closed; cimc_bye() tells why when it sent BYE),
 * CIMC_EPROTO (the server sent something malformed); cimc_strerror() names any of them.
 * (Inside cim these are core/rc.h's RC_* codes, the same values.) A request the server
 * rejected is not an rc: the call returns 0 and the response's code/reason say why.
 *
 * Installed (scons install), this header lives in PREFIX/include/cim/ with the two it
 * includes, cim.pb.h (the generated messages) and core/frame_type.h (the FT_* frame
 * types); `pkg-config --cflags cim` gives -IPREFIX/include/cim, so programs say
 * #include <cim.h>. Besides those it needs libuv's and nanopb's headers (uv.h, pb.h).
 * With -std=c11 (not gnu11), define _POSIX_C_SOURCE 200809L first: uv.h uses POSIX
 * thread types.
 *
 * Heartbeat (PROTOCOL.md §3: PING when nothing was sent for heartbeat_s): the async API
 * does it itself; a blocking caller that stays connected while idle pings, guided by
 * cimc_ping_due_ms().
 *
 * Threading: a cimc_t is used by one thread at a time (blocking API) or only on its
 * loop's thread (async API). Different connections are independent. chan_global_init()
 * is called lazily, once per process (pthread_once).
 */
#ifndef CIM_CLIENT_CIM_H
#define CIM_CLIENT_CIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pb.h>
#include <uv.h>

#include "cim.pb.h"
#include "core/frame_type.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The error codes of this API besides -errno (values of core/rc.h, checked at build). */
#define CIMC_EPROTO    (-20001) /**< the server sent something malformed */
#define CIMC_ETOOBIG   (-20002) /**< a length over its cap (a body over cimc_max_body) */
#define CIMC_EFULL     (-20004) /**< a bounded queue is full (async output, CIMC_ASYNC_WQ_MAX) */
#define CIMC_ECLOSED   (-20005) /**< the connection is closed or closing */
#define CIMC_ECRYPTO   (-20006) /**< handshake or frame authentication failed */
#define CIMC_EINVAL    (-20008) /**< an argument out of range or malformed */
#define CIMC_EKEY      (-20011) /**< the server's identity is not the pinned key */
#define CIMC_ETIMEDOUT (-20012) /**< no answer within timeout_ms */

/** Describe any rc a cimc_* call returned (-errno too), as strerror does. A static string;
 *  any thread. */
const char *cimc_strerror(int rc);

typedef struct cimc cimc_t;

typedef struct cimc_opts {
    const char *host;          /* IPv4/IPv6 literal or name; default "127.0.0.1" */
    int port;                  /* default 7400 */
    const uint8_t *pinned_key; /* 32-byte server identity, or NULL */
    bool trust_on_first_use;   /* accept any identity when pinned_key is NULL */
    unsigned timeout_ms;       /* blocking calls: connect, handshake, each answer; 0 = 10000.
                                  async: connect+handshake+login, and each answer */
    uint8_t *key_seen;         /* [out] optional, 32 bytes: the identity the server presented,
                                  written as soon as the handshake shows it, also when the
                                  connection then fails (RC_EKEY: tell the user what was seen) */
    const char *bind_addr;     /* local (source) IP literal to bind before connecting, or NULL
                                  (default): the kernel's choice. Same family as the server's
                                  address. The port is picked at connect time
                                  (IP_BIND_ADDRESS_NO_PORT), so a load generator spreading its
                                  connections over 127.0.0.x addresses gets ~28k per source
                                  address and destination instead of ~28k in all. Borrowed for
                                  the connect call. Not an IP literal: RC_EINVAL; the bind
                                  failing (e.g. -EADDRNOTAVAIL): that -errno, as a connect
                                  error. */
    const char *ws_path;       /* non-NULL: connect over a WebSocket instead of raw TCP: an
                                  HTTP/1.1 upgrade of GET ws_path (e.g. "/ws") on host:port
                                  (cimd's ws_listen) with the subprotocol cim.v1, then one
                                  frame per binary message (PROTOCOL.md §1). Blocking API
                                  only (cimc_async_connect: CIMC_EINVAL). Refused upgrade:
                                  CIMC_EAUTH for 403 (Origin), CIMC_EPROTO otherwise. */
} cimc_opts_t;

/** A frame the server pushed: PUSH (Message), EVENT (Event) or BYE (Bye). */
typedef struct cimc_push {
    uint32_t type; /* FT_PUSH, FT_EVENT or FT_BYE */
    union {
        cim_Message msg; /* FT_PUSH; body in .body_data/.body_len below */
        cim_Event event; /* FT_EVENT */
        cim_Bye bye;     /* FT_BYE */
    } u;
    uint8_t *body_data; /* FT_PUSH: the message body (owned by the push) */
    size_t body_len;
} cimc_push_t;

/** Called for every push as it is decoded; @p p is borrowed for the call. */
typedef void (*cimc_push_cb)(void *ctx, const cimc_push_t *p);

/* ---- blocking API -------------------------------------------------------------------- */

/**
 * Connect over TCP and complete the handshake.
 * @param[out] out  owned; free with cimc_close(); written only on success.
 * @return 0, -errno (connect), RC_ENOTFOUND (the host name does not resolve), RC_EKEY
 *         (identity not the pinned one, or none pinned without trust_on_first_use),
 *         RC_ECRYPTO, RC_ETIMEDOUT, RC_ECLOSED, RC_EPROTO, RC_EINVAL (bad port).
 */
int cimc_connect(const cimc_opts_t *opts, cimc_t **out);

/**
 * Connect over TCP only, no handshake (tests that speak raw bytes: cimc_write_raw).
 */
int cimc_connect_raw(const cimc_opts_t *opts, cimc_t **out);

/**
 * Close the socket and free everything. cimc_close(NULL) is a no-op. On a connection of
 * the async API this is cimc_async_close() (freed after its on_close).
 */
void cimc_close(cimc_t *c);

/** The server identity seen in the handshake (32 bytes), or NULL before it. */
const uint8_t *cimc_server_key(const cimc_t *c);

/**
 * LOGIN. @p req's req_id is filled in by the library.
 * @param[out] rsp  the LoginRsp (also when its code is not OK).
 * @return 0 when a LoginRsp arrived (check rsp->code), or an rc. After a successful login
 *         the library adopts rsp->max_body and rsp->heartbeat_s.
 */
int cimc_login(cimc_t *c, cim_LoginReq *req, cim_LoginRsp *rsp);

/** PING and wait for PONG. @param[out] rtt_us round trip, may be NULL. */
int cimc_ping(cimc_t *c, uint64_t *rtt_us);

/** LOGOUT, wait for LOGOUT_ACK and the close. @param[out] res may be NULL. */
int cimc_logout(cimc_t *c, cim_Result *res);

/**
 * Generic request/answer: encode @p req as frame @p type, then wait for the frame
 * @p ack_type with the same req_id and decode it into @p rsp with @p rsp_fields
 * (FT_CALLBACK fields of @p rsp keep the callbacks the caller set, e.g. to stream
 * SyncRsp.messages). When field 1 of the request is a uint32 (req_id, in every request)
 * the library writes the next req_id there; a request without one (Ping) is answered by
 * the first @p ack_type frame. Pushes arriving meanwhile go to the push callback/queue;
 * answers to other req_ids (a call that timed out earlier) are dropped. A LoginRsp{OK}
 * makes the library adopt max_body and heartbeat_s.
 * @return 0, or RC_ECLOSED (cimc_bye() set when the server said BYE), RC_ETIMEDOUT,
 *         RC_ETOOBIG (request over max_body), RC_EINVAL (cannot encode), RC_EPROTO
 *         (malformed answer, or the req_id answered with another frame type), RC_ECRYPTO,
 *         -errno.
 */
int cimc_call(cimc_t *c, uint32_t type, const pb_msgdesc_t *req_fields, void *req,
              uint32_t ack_type, const pb_msgdesc_t *rsp_fields, void *rsp);

/** Seal and send one frame with an arbitrary plaintext body (tests: unknown types etc.). */
int cimc_send_frame(cimc_t *c, uint32_t type, const void *body, size_t len);

/**
 * Seal one frame as cimc_send_frame would, but hand the bytes back instead of sending
 * them (tests: coalesced, split and replayed frames via cimc_write_raw). Advances the
 * send counter exactly as sending would.
 * @param[out] out  owned, free with free(); @param[out] outlen its length.
 */
int cimc_seal(cimc_t *c, uint32_t type, const void *body, size_t len, uint8_t **out,
              size_t *outlen);

/** Write raw bytes to the socket, bypassing framing and crypto (tests: garbage). */
int cimc_write_raw(cimc_t *c, const void *bytes, size_t len);

/**
 * Wait up to @p timeout_ms for the next frame of any kind and return it decrypted.
 * @param[out] type, body (owned, free with free()), len.
 * @return 0, RC_ETIMEDOUT, RC_ECLOSED (EOF; cimc_bye() has the BYE if one came first).
 */
int cimc_next_frame(cimc_t *c, unsigned timeout_ms, uint32_t *type, uint8_t **body, size_t *len);

/**
 * Wait until the server closes the connection (EOF), reading and discarding frames except
 * BYE. @return 0 once closed, RC_ETIMEDOUT when it stayed open.
 */
int cimc_wait_closed(cimc_t *c, unsigned timeout_ms);

/** The BYE the server sent before closing, or NULL if none came (yet). */
const cim_Bye *cimc_bye(const cimc_t *c);

/** Pushes a blocking connection keeps for cimc_next_push; past it the oldest is dropped. */
#define CIMC_PUSHQ_MAX 4096

/**
 * Deliver pushes to @p cb (called from inside blocking calls, as each PUSH, EVENT or BYE
 * is read). NULL: queue only. Either way every push is also queued for cimc_next_push
 * (at most CIMC_PUSHQ_MAX; when full the oldest is dropped and a warning logged).
 */
void cimc_on_push(cimc_t *c, cimc_push_cb cb, void *ctx);

/**
 * Take the oldest queued push, waiting up to @p timeout_ms for one.
 * @param[out] out  filled on success; release with cimc_push_free().
 * @return 0, RC_ETIMEDOUT, RC_ECLOSED.
 */
int cimc_next_push(cimc_t *c, unsigned timeout_ms, cimc_push_t *out);

/** Release what cimc_next_push gave. */
void cimc_push_free(cimc_push_t *p);

/** The socket (for poll in an interactive CLI loop). */
int cimc_fd(const cimc_t *c);

/** Process whatever is readable now without blocking (CLI event loop). @return 0 or rc. */
int cimc_poll(cimc_t *c);

/**
 * Encode, seal and send one frame that has no answer (PUSH_ACK with a DeliveredReq).
 * Its req_id, if it has one, is left as the caller set it.
 * @return 0, RC_ETOOBIG (over max_body), RC_EINVAL (cannot encode), RC_ECLOSED, RC_ECRYPTO,
 *         RC_ETIMEDOUT (the socket stayed full), -errno.
 */
int cimc_send_msg(cimc_t *c, uint32_t type, const pb_msgdesc_t *fields, const void *msg);

/**
 * Milliseconds until a PING is due under PROTOCOL.md §3 (nothing sent for heartbeat_s):
 * 0 when it is due now, -1 when no heartbeat applies (not logged in, or the server gave
 * heartbeat_s = 0). The blocking API never pings on its own: an interactive caller polls
 * with this as its timeout and calls cimc_ping() when it reaches 0.
 */
int64_t cimc_ping_due_ms(const cimc_t *c);

/** The plaintext body cap in force (65536 until a LoginRsp says otherwise). */
uint32_t cimc_max_body(const cimc_t *c);

/* ---- helpers (no connection needed; any thread) -------------------------------------- */

/** Borrowed bytes for an FT_CALLBACK bytes field (SendReq.body). */
typedef struct cimc_bytes {
    const void *data;
    size_t len;
} cimc_bytes_t;

/**
 * Make the FT_CALLBACK field @p field (e.g. &req.body of a cim_SendReq) encode @p b.
 * @p b is borrowed until the message has been encoded (the request call returned).
 */
void cimc_bytes_encoder(pb_callback_t *field, const cimc_bytes_t *b);

/**
 * Decode a protobuf body (e.g. an answer given to a cimc_async_rsp_cb) into @p dst.
 * FT_CALLBACK fields of @p dst keep the callbacks the caller set before the call.
 * @return 0, or RC_EPROTO (malformed).
 */
int cimc_decode(const pb_msgdesc_t *fields, const uint8_t *body, size_t len, void *dst);

/**
 * Decode a server push frame body: FT_PUSH (Message; its body is copied into
 * out->body_data), FT_EVENT (Event) or FT_BYE (Bye).
 * @param[out] out  written only on success; release with cimc_push_free().
 * @return 0, RC_EPROTO (malformed, or @p type is not one of the three), -ENOMEM.
 */
int cimc_push_decode(uint32_t type, const uint8_t *body, size_t len, cimc_push_t *out);

/**
 * Decode one Message from @p s, its body copied into out->body_data (out->type = FT_PUSH).
 * Made for the FT_CALLBACK repeated fields of SyncRsp / HistoryRsp: their decode callback
 * gets a substream per message and calls this, e.g.
 *   static bool on_msg(pb_istream_t *s, const pb_field_t *f, void **arg)
 *   { cimc_push_t m; if (cimc_message_decode(s, &m) < 0) return false;
 *     ...use m.u.msg, m.body_data...; cimc_push_free(&m); return true; }
 * @p s must read from memory (pb_istream_from_buffer, or a field's substream of one): a
 * body sent with a wire type other than length-delimited is found that way and refused.
 * @param[out] out  written only on success; release with cimc_push_free().
 * @return 0, RC_EPROTO (malformed), -ENOMEM.
 */
int cimc_message_decode(pb_istream_t *s, cimc_push_t *out);

/** The name of a cim_Code value ("UNAUTHORIZED"), or "UNKNOWN". Static string. */
const char *cimc_code_str(int code);

/* ---- event-driven API ---------------------------------------------------------------- */

/*
 * The same connections on a libuv loop, for programs holding thousands of them (cimbench).
 *
 * Per loop: one cimc_async_loop_t owns what connections share: the 64 KiB read buffer
 * every on_alloc hands out (frames are opened in place in it; only a trailing partial
 * frame is copied into the connection, in a block sized to that frame), the chan_ctx_t
 * cipher contexts, the scratch buffers requests are encoded and sealed in, and one
 * 250 ms timer that sends heartbeat PINGs and enforces timeouts for every connection.
 * Per connection: the cimc_t (about 600 bytes idle, with its uv_tcp_t), one small record
 * per request in flight, and only the output the kernel would not take at once (writes
 * are tried with uv_try_write first; the rest is queued, capped at CIMC_ASYNC_WQ_MAX).
 * What callbacks send on a connection while its read is being handled (say, the next
 * request on an answer) is gathered in the loop's cork buffer and written in one go when
 * that read's frames are handled: one TCP segment, not one per frame.
 *
 * Lifecycle of a connection: cimc_async_connect() → on_ready (exactly once: success or
 * failure) → requests, on_push → on_close (exactly once, always last; the cimc_t is freed
 * when it returns). No callback is ever called from inside a cimc_async_* call: every one
 * comes from the loop.
 *
 * Heartbeat: after login, the loop's timer sends PING when the connection sent nothing for
 * heartbeat_s (from LoginRsp). Timeouts: opts.timeout_ms (0 = 10000) bounds
 * connect+handshake+login and the wait for each answer; a request not answered in time
 * closes the connection with RC_ETIMEDOUT (answers come in order, so a lost one would
 * leave every later one unmatched).
 *
 * Threading: a cimc_async_loop_t and its connections are used only on the thread that
 * runs its uv_loop_t. Several loops (one per thread) are independent. The caller ignores
 * SIGPIPE (libuv writes with write(2)).
 */

/** Output bytes a connection may have queued before requests fail with RC_EFULL. */
#define CIMC_ASYNC_WQ_MAX (1u << 20)

typedef struct cimc_async_loop cimc_async_loop_t;

/**
 * Called once when the connection is ready or failed.
 * @param[in] status  0: the handshake completed and, when a login was given to
 *                    cimc_async_connect, its LoginRsp arrived: @p rsp (borrowed for the
 *                    call) says whether it was accepted; when rsp->code is not OK the
 *                    server closes the connection and on_close follows.
 *                    < 0: connect, handshake or login failed (as cimc_connect: -errno,
 *                    RC_EKEY, RC_ECRYPTO, RC_ETIMEDOUT, RC_ECLOSED, RC_EPROTO, RC_ENOTFOUND
 *                    when the host name does not resolve); @p rsp is NULL; on_close follows.
 * @param[in] rsp     the LoginRsp, or NULL (no login requested, or status < 0).
 */
typedef void (*cimc_async_ready_cb)(cimc_t *c, void *ctx, int status, const cim_LoginRsp *rsp);

/** A PUSH or EVENT arrived; @p p and its body are borrowed for the call. */
typedef void (*cimc_async_push_cb)(cimc_t *c, void *ctx, const cimc_push_t *p);

/**
 * The connection is gone; called exactly once, last. @p c may still be read
 * (cimc_server_key, cimc_bye) during the call and is freed when it returns.
 * @param[in] status  0 after cimc_async_close(), RC_ECLOSED when the server closed (with
 *                    @p bye when it sent one), or the error that ended it (-errno,
 *                    RC_ECRYPTO, RC_EPROTO, RC_ETIMEDOUT, ...).
 * @param[in] bye     the server's BYE, or NULL; borrowed for the call.
 */
typedef void (*cimc_async_close_cb)(cimc_t *c, void *ctx, int status, const cim_Bye *bye);

/**
 * A request completed.
 * @param[in] status  0: the answer arrived; @p type is its frame type and @p body /
 *                    @p len its protobuf (borrowed for the call: decode with
 *                    cimc_decode()). < 0: no answer will come (RC_ECLOSED, RC_ETIMEDOUT, or
 *                    the connection's error); @p body is NULL.
 */
typedef void (*cimc_async_rsp_cb)(cimc_t *c, void *ctx, int status, uint32_t type,
                                  const uint8_t *body, size_t len);

/** Connection callbacks; any may be NULL. Copied by cimc_async_connect. */
typedef struct cimc_async_cbs {
    cimc_async_ready_cb on_ready;
    cimc_async_push_cb on_push;
    cimc_async_close_cb on_close;
} cimc_async_cbs_t;

/**
 * Create the per-loop state for @p loop. Initialises chan once per process.
 * @param[out] out  owned; free with cimc_async_loop_free().
 * @return 0, RC_ECRYPTO (OpenSSL unusable), or a UV_E* code.
 * @note Loop thread only.
 */
int cimc_async_loop_new(uv_loop_t *loop, cimc_async_loop_t **out);

/**
 * Close every connection still open (each gets on_close with status 0) and free the loop
 * state once its handles are closed: the caller then runs the uv loop until uv_run
 * returns so the close callbacks fire, and may call uv_loop_close() after.
 * cimc_async_loop_free(NULL) is a no-op. Loop thread only.
 */
void cimc_async_loop_free(cimc_async_loop_t *al);

/** Connections of @p al not yet closed. */
size_t cimc_async_loop_count(const cimc_async_loop_t *al);

/**
 * Start a connection: TCP connect (a name is resolved with uv_getaddrinfo), handshake,
 * and when @p login is not NULL, LOGIN (its req_id is set by the library) — then
 * on_ready.
 *
 * @param[in]  al     the loop state.
 * @param[in]  opts   as cimc_connect (copied; opts.key_seen is ignored: read
 *                    cimc_server_key() from on_ready or on_close instead).
 * @param[in]  login  copied, or NULL to log in later with cimc_async_request(FT_LOGIN).
 * @param[in]  cbs    copied; may be NULL.
 * @param[in]  ctx    handed to every callback of this connection.
 * @param[out] out    the connection, valid until its on_close returns; may be NULL.
 * @return 0 (on_ready and on_close will follow), or RC_EINVAL (bad options), RC_ECRYPTO,
 *         RC_ECLOSED (@p al is being freed), a UV_E* code; then no callback is called.
 */
int cimc_async_connect(cimc_async_loop_t *al, const cimc_opts_t *opts, const cim_LoginReq *login,
                       const cimc_async_cbs_t *cbs, void *ctx, cimc_t **out);

/**
 * Send a request and call @p cb with its answer. Requests may be pipelined: any number
 * may be in flight, answers are matched by req_id (field 1 of @p req, set here from the
 * connection's counter) or, for a request without one (PING), by @p ack_type in order.
 * A LOGIN sent this way is watched: its LoginRsp{OK} makes the library adopt max_body
 * and heartbeat_s as with the combined login of cimc_async_connect.
 *
 * @param[in]  c        a connection whose handshake completed (on_ready was called
 *                      with status 0).
 * @param[in]  type     the frame type (FT_SEND, ...).
 * @param[in]  fields   the request's descriptor (cim_SendReq_fields, ...).
 * @param[in]  req      the request; encoded before the call returns (FT_CALLBACK fields
 *                      such as SendReq.body are read now). Its req_id is written.
 * @param[in]  ack_type the answer's frame type (FT_SEND_ACK, ...).
 * @param[in]  cb       called exactly once, later, from the loop; may be NULL.
 * @param[out] req_id   the req_id given; may be NULL.
 * @return 0, or (and then @p cb is never called) RC_ECLOSED (closing, closed, or the
 *         handshake not done), RC_ETOOBIG (over max_body), RC_EINVAL (cannot encode),
 *         RC_EFULL (CIMC_ASYNC_WQ_MAX bytes already queued: the server is not reading),
 *         RC_ECRYPTO, -ENOMEM.
 */
int cimc_async_request(cimc_t *c, uint32_t type, const pb_msgdesc_t *fields, void *req,
                       uint32_t ack_type, cimc_async_rsp_cb cb, void *ctx, uint32_t *req_id);

/**
 * PING now (client_time_ms = wall clock); @p cb gets the PONG (decode cim_Pong) exactly
 * as cimc_async_request's callback. @return as cimc_async_request.
 */
int cimc_async_ping(cimc_t *c, cimc_async_rsp_cb cb, void *ctx);

/**
 * Send one frame that has no answer (PUSH_ACK with a DeliveredReq).
 * @return as cimc_async_request.
 */
int cimc_async_send_frame(cimc_t *c, uint32_t type, const pb_msgdesc_t *fields, const void *msg);

/**
 * Close the connection now: requests in flight complete with RC_ECLOSED, queued output is
 * dropped (for an orderly end send LOGOUT first and let the server close), then on_close
 * with status 0. Idempotent; a no-op once closing. Loop thread only.
 */
void cimc_async_close(cimc_t *c);

/** The ctx given to cimc_async_connect. */
void *cimc_async_ctx(const cimc_t *c);

/** True once on_ready reported success and until the connection starts closing. */
bool cimc_async_is_open(const cimc_t *c);

/** Requests in flight (sent, not yet answered) on @p c. */
unsigned cimc_async_pending(const cimc_t *c);

#ifdef __cplusplus
}
#endif

#endif
