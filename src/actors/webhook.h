/**
 * webhook: POSTs JSON events to each app's webhook URL (docs/WEBHOOKS.md is the contract
 * an app developer codes against).
 *
 * Design. One thread with its own uv loop drives libcurl's multi interface
 * (curl_multi_socket_action; CURLMOPT_SOCKETFUNCTION → uv_poll, CURLMOPT_TIMERFUNCTION →
 * uv_timer), so no request ever blocks it and many run at once. Producers (the store
 * thread for message events, workers for presence) call webhook_emit_*: a relaxed atomic
 * check of a published filter, one counter increment and one mailbox push — never a lock,
 * never a wait, never JSON. The JSON, the bot check (a read transaction on this thread)
 * and the signature are made here.
 *
 * The filter. This thread reads every app's settings (appconf) at start and every
 * WEBHOOK_REFRESH_MS, in a read transaction, so a `cimctl app set` reaches a running cimd
 * within about a second without a restart or a signal. It publishes what each app wants
 * as a byte per hash slot of the app name (WEBHOOK_FILTER_SLOTS, the OR of the event bits
 * of the apps in that slot) plus the OR of all of them: with no webhook anywhere, an emit
 * costs one relaxed atomic load. A slot shared with another app lets an unwanted event
 * through to this thread, which drops it; it never drops a wanted one.
 *
 * Bounds. At most conf->webhook_queue events are held at any time (in the mailbox, waiting
 * to be sent, in flight, or waiting to retry), holding at most conf->webhook_queue_mb of
 * JSON; an event over either bound is dropped and counted (dropped_queue_full_total). At
 * most WEBHOOK_APP_INFLIGHT requests per app run at once, so a slow app cannot take all
 * the sockets from the others. A request is bounded by conf->webhook_timeout_ms.
 *
 * Delivery. A 2xx answer delivers an event. Anything else (another status, a connect
 * error, the timeout) fails the attempt, and the event is tried again after 1 s, 2 s,
 * 4 s ... (at most WEBHOOK_BACKOFF_MAX_MS, each drawn from its upper half for jitter), up
 * to conf->webhook_retries attempts in all, then dropped and counted. Every attempt of an
 * event carries the same body and X-Cim-Delivery id: at least once, in no promised order.
 * Events live in memory only: a restart loses those not yet delivered.
 *
 * Shutdown (webhook_stop) drains for a bounded time: events in flight or ready to send
 * get up to WEBHOOK_STOP_GRACE_MS to be delivered; events waiting for a retry, and what
 * is left at the deadline, are abandoned (logged with the final counters).
 *
 * Threading: webhook_new/start/stop/free on the main thread, before any producer runs and
 * after every producer stopped (server.c: after the store and the workers).
 * webhook_wants, webhook_emit_message, webhook_emit_presence and webhook_stats are
 * thread-safe and never block. Everything else runs on the webhook thread.
 */
#ifndef CIM_ACTORS_WEBHOOK_H
#define CIM_ACTORS_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actors/appconf.h"
#include "actors/server.h"
#include "core/blob.h"

#define WEBHOOK_REFRESH_MS     1000  /* settings are re-read this often */
#define WEBHOOK_FILTER_SLOTS   1024  /* hash slots of the emit filter (power of two) */
#define WEBHOOK_APP_INFLIGHT   8     /* requests one app may have in flight */
#define WEBHOOK_BACKOFF_MS     1000  /* delay before the second attempt; doubles after */
#define WEBHOOK_BACKOFF_MAX_MS 60000 /* the longest delay between attempts */
#define WEBHOOK_STOP_GRACE_MS  1000  /* webhook_stop waits this long at most for deliveries */
#define WEBHOOK_SIG_LEN        71    /* "sha256=" + 64 lowercase hex */
#define WEBHOOK_ID_LEN         32    /* X-Cim-Delivery: 32 lowercase hex (128 random bits) */

typedef struct webhook webhook_t;

/**
 * The counters, for /metrics (`cim_webhook_*`). Gauges say how things are now; the
 * `_total` counters only grow from the start of the process.
 */
typedef struct webhook_stats {
    uint64_t queued;                   /* gauge: events held (mailbox, waiting to be sent,
                                          in flight, waiting to retry) */
    uint64_t in_flight;                /* gauge: requests under way */
    uint64_t sent_total;               /* requests started (every attempt counts) */
    uint64_t delivered_total;          /* events answered 2xx */
    uint64_t failed_attempts_total;    /* attempts answered otherwise, or not at all */
    uint64_t dropped_queue_full_total; /* events refused: webhook_queue or _queue_mb full */
    uint64_t dropped_retries_total;    /* events dropped after webhook_retries attempts */
} webhook_stats_t;

/**
 * A new webhook actor (not running) for @p srv (its conf and kv; read at start).
 * Calls curl_global_init: before any other thread uses libcurl. Aborts on OOM.
 * @return owned; free with webhook_free.
 */
webhook_t *webhook_new(server_t *srv);

/**
 * Read every app's settings (so events emitted from now on are judged by them) and start
 * the thread.
 * @return 0, or an rc (storage) / UV_E* code (loop, thread) / RC_EINVAL (libcurl failed
 *         to start); every failure is logged.
 */
int webhook_start(webhook_t *wh);

/**
 * Stop the thread (see Shutdown above: bounded by WEBHOOK_STOP_GRACE_MS plus the time to
 * close sockets) and join it. Every producer must have stopped. A webhook never started
 * is a no-op.
 */
void webhook_stop(webhook_t *wh);

/** Free a stopped (or never started) webhook actor. NULL is a no-op. */
void webhook_free(webhook_t *wh);

/**
 * Does @p app (maybe) want any of @p events (APPCONF_EV_* bits)? A false answer is
 * certain; a true one may be a filter slot shared with another app (the event is then
 * dropped on the webhook thread). Thread-safe, lock-free; @p wh may be NULL (false).
 */
bool webhook_wants(const webhook_t *wh, const char *app, uint32_t events);

/**
 * A stored message reached @p recipient, who had no device online: queue message.to_bot
 * when the recipient is a bot (kv user flag KV_USER_BOT), else message.offline, each if the
 * app wants it. Does nothing (cheaply) when the app wants neither.
 * @param[in] msg  the stored cim.Message record (the PUSH body); a reference is taken
 *                 until the event's JSON is made.
 * @param[in] time_ms  when it happened (wall clock, ms).
 * @note Thread-safe, never blocks; a full queue drops the event (counted). @p wh may be
 *       NULL.
 */
void webhook_emit_message(webhook_t *wh, const char *app, const char *recipient, blob_t *msg,
                          uint64_t time_ms);

/**
 * @p user's first device came online (@p online) or last went offline: queue user.online
 * or user.offline if the app wants it. As webhook_emit_message otherwise.
 */
void webhook_emit_presence(webhook_t *wh, const char *app, const char *user, bool online,
                           uint64_t time_ms);

/** Read the counters (each read atomically; together a near-moment's picture). Any thread. */
void webhook_stats(const webhook_t *wh, webhook_stats_t *out);

/**
 * The X-Cim-Signature value of @p body: "sha256=" and the lowercase hex HMAC-SHA256 of
 * those exact bytes keyed with the app's 32-byte @p secret.
 * @param[out] out  WEBHOOK_SIG_LEN characters and a NUL.
 * @return 0, or RC_ECRYPTO. Pure; any thread.
 */
int webhook_sign(const uint8_t secret[32], const void *body, size_t len,
                 char out[WEBHOOK_SIG_LEN + 1]);

#endif
