/**
 * xonline: the `online` flag of CONTACT_LIST for contacts homed on another node
 * (docs/SCALING.md, "Presence across homes") — the request a session hands to the cluster
 * thread, and what travels on the bus for it.
 *
 * A user's sessions all live at the user's home (relayed from whichever node the client
 * reached), so only that home's router knows whether the user is online. CONTACT_LIST is
 * answered at the owner's home: contacts homed there are looked up in its own router;
 * for the others the session hands an xonline_req_t to the cluster thread
 * (cluster_online_ask), which asks each of those homes once, in one core NATS request
 * (N.node.<home>.xonl, answered from the home's libnats delivery thread with a lookup in
 * its router), and hands the request back to the session's worker (XONLINE_REQ, like a
 * store completion) once every home asked has answered or CLUSTER_ONLINE_WAIT_MS passed:
 * a home that is down, or does not answer in time, leaves its contacts offline. Never an
 * error, never longer than the wait.
 *
 * Formats (integers big-endian):
 *  - Question (core NATS request N.node.<home>.xonl, reply subject N.node.<asker>.xona):
 *      0 u64 token, 8 u16 count n (1..XONLINE_MAX), then app NUL, then n user ids, each
 *      followed by NUL; nothing after the last.
 *  - Answer (on the reply subject):
 *      0 u64 token (the question's), 8 u32 the answering node, 12 u16 count n (the
 *      question's), then (n + 7) / 8 bytes of bitmap: bit i % 8 (least significant first)
 *      of byte i / 8 is set when user i of the question has at least one session at that
 *      node. Bits past n are zero.
 * Every parser refuses (RC_EPROTO) what is truncated, too long, of the wrong count, or
 * carries anything but valid ids: the cluster drops it and counts it (x_dropped).
 *
 * Threading: the request moves by ownership (session's worker → cluster thread → worker);
 * the format functions are pure.
 */
#ifndef CIM_ACTORS_XONLINE_H
#define CIM_ACTORS_XONLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actors/store.h"
#include "core/kv.h"

#define XONLINE_MAX 2048        /* users of one question (CONTACT_LIST lists at most 2000) */
#define XONLINE_ASK_HDR 10      /* token, count */
#define XONLINE_ASK_MAX (XONLINE_ASK_HDR + (XONLINE_MAX + 1) * (KV_ID_MAX + 1))
#define XONLINE_ANS_HDR 14      /* token, node, count */
#define XONLINE_ANS_MAX (XONLINE_ANS_HDR + (XONLINE_MAX + 7) / 8)

/* store_req_t.kind of an xonline_req_t: it never goes to the store, but comes back to its
 * session's worker the way the store's completions do (worker_deliver, session_complete).
 * Far above every STORE_REQ_*. */
#define XONLINE_REQ 0x4f4e

/** One contact of a CONTACT_LIST. */
typedef struct xonline_ent {
    char user[KV_ID_MAX + 1];
    uint32_t home;  /* the contact's home node */
    bool remote;    /* home is another node: its online flag is asked there */
    bool blocked;   /* the owner blocked it */
    bool online;    /* remote: the home said so (false until then, and when it did not) */
} xonline_ent_t;

/**
 * A CONTACT_LIST waiting for the homes of its remote contacts: the session's worker fills
 * it in (everything but the remote entries' online), the cluster thread sets those, and
 * hands it back to the worker (hdr.kind XONLINE_REQ), which answers from it.
 */
typedef struct xonline_req {
    store_req_t hdr;        /* kind XONLINE_REQ; done NULL */
    uint32_t worker;        /* the asking session */
    uint64_t sid;
    uint32_t req_id;
    char app[KV_ID_MAX + 1];
    uint32_t n;             /* entries (at most XONLINE_MAX) */
    xonline_ent_t ents[];
} xonline_req_t;

/** @return a zeroed request (kind XONLINE_REQ) with room for @p n entries. Aborts on OOM;
 *          free with mem_free. */
xonline_req_t *xonline_req_new(size_t n);

/**
 * Encode the question for the @p n users @p users (ids, 1..XONLINE_MAX of them) of
 * @p app into @p out (room for XONLINE_ASK_MAX bytes).
 * @param[out] len  its length.
 * @return 0, or RC_EINVAL (no user, more than XONLINE_MAX, or an id over KV_ID_MAX bytes).
 */
int xonline_ask_encode(uint64_t token, const char *app, const char *const *users, size_t n,
                       uint8_t *out, size_t *len);

/** A parsed question: the users are read with xonline_ask_user. */
typedef struct xonline_ask {
    uint64_t token;
    uint32_t n;
    char app[KV_ID_MAX + 1];
    const uint8_t *users;   /* the list as on the wire, borrowed from the input */
    size_t users_len;
} xonline_ask_t;

/**
 * Parse a question (the whole of it is checked: every id valid, exactly n of them).
 * @return 0, or RC_EPROTO.
 */
int xonline_ask_parse(const uint8_t *p, size_t len, xonline_ask_t *out);

/**
 * The next user of a parsed question: @p *pos is the offset in users (start at 0); the id
 * is copied into @p out. @return false at the end.
 */
bool xonline_ask_user(const xonline_ask_t *q, size_t *pos, char out[KV_ID_MAX + 1]);

/**
 * Start an answer of node @p node to question @p token of @p n users (n <= XONLINE_MAX) in
 * @p out (room for XONLINE_ANS_MAX bytes), every user offline; xonline_ans_set marks one
 * online. @return the answer's length.
 */
size_t xonline_ans_init(uint8_t *out, uint64_t token, uint32_t node, size_t n);

/** Mark user @p i of the answer in @p out (from xonline_ans_init) online. */
void xonline_ans_set(uint8_t *out, size_t i);

/** A parsed answer. */
typedef struct xonline_ans {
    uint64_t token;
    uint32_t node;
    uint32_t n;
    const uint8_t *bits;    /* borrowed from the input */
} xonline_ans_t;

/** Parse an answer. @return 0, or RC_EPROTO (wrong length for its count, stray bits). */
int xonline_ans_parse(const uint8_t *p, size_t len, xonline_ans_t *out);

/** Is user @p i (< a->n) of a parsed answer online? */
bool xonline_ans_get(const xonline_ans_t *a, size_t i);

#endif
