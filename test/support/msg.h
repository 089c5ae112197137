/**
 * Test support: messaging on top of libcim's blocking API (SEND, SYNC, PUSH, PUSH_ACK).
 *
 * What libcim already gives is used as is: cimc_call (req_id matching), cimc_bytes_encoder
 * (SendReq.body), cimc_message_decode (one Message with its body, for SyncRsp.messages),
 * cimc_next_push, cimc_send_msg (PUSH_ACK), cimc_seal + cimc_write_raw (pipelining).
 * These helpers only decode into flat, caller-owned records and loop over pages.
 *
 * Every helper returns 0 or a negative rc (core/rc.h) for transport trouble; a request the
 * server rejected is not an rc (look at the response's code), as with libcim.
 */
#ifndef CIM_TEST_MSG_H
#define CIM_TEST_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/cim.h"
#include "support/server.h"

/** One message as seen in a PUSH or a SyncRsp page. */
typedef struct tmsg {
    uint64_t msg_id;
    int conv_type;
    char from[65];
    char to[65];
    int msg_type;
    uint64_t time_ms;
    char client_msg_id[65];
    uint32_t flags;
    int from_device;
    size_t body_len;    /* always set */
    uint64_t body_hash; /* FNV-1a 64 of the body (tmsg_hash), always set */
    const uint8_t *body; /* into the caller's body storage; NULL when it had no room */
} tmsg_t;

/**
 * A SyncRsp (or several pages, appended) decoded into caller storage.
 * The caller sets msgs/cap (records) and, optionally, bodies/bodies_cap (bytes for the
 * bodies; NULL: keep only body_len and body_hash), then calls tmsg_page_reset.
 */
typedef struct tmsg_page {
    tmsg_t *msgs;
    size_t cap;
    size_t n;            /* records filled (over all pages appended) */
    uint8_t *bodies;
    size_t bodies_cap;
    size_t bodies_used;
    bool overflow;       /* more messages came than cap: the extra ones were counted in
                            n_seen but not kept */
    size_t n_seen;       /* messages decoded, kept or not */
    /* the last SyncRsp */
    int code;
    char reason[256];
    uint32_t remain;
    uint64_t last_msg_id;
    size_t page_n;       /* messages in the last SyncRsp */
    size_t pages;        /* SyncRsps decoded into this page set */
    bool has_more;       /* the last HistoryRsp's has_more (tmsg_history) */
} tmsg_page_t;

/** FNV-1a 64 of @p len bytes. */
uint64_t tmsg_hash(const void *data, size_t len);

/** Set up @p p over caller storage (either body argument may be NULL/0). */
void tmsg_page_init(tmsg_page_t *p, tmsg_t *msgs, size_t cap, uint8_t *bodies,
                    size_t bodies_cap);

/** Forget the records (keep the storage). */
void tmsg_page_reset(tmsg_page_t *p);

/**
 * Log in as @p user on @p device with device kind @p kind (tsrv_login uses DESKTOP);
 * aborts the test unless the login is OK.
 */
cimc_t *tmsg_login(const tsrv_t *t, const char *user, const char *device, int kind,
                   cim_LoginRsp *rsp);

/**
 * Wait (up to 5 s, else abort) until @p user of the default app is in the data dir's
 * users table (read-only, like tsrv_token). A first login registers the user through the
 * store after the LoginRsp has gone out, so a test that logs a new user in and out and then
 * writes to them waits here first (see e2e_direct_new_user_reachable_after_logout).
 */
void tmsg_wait_user(const tsrv_t *t, const char *user);

/** Fill @p req as a DIRECT send (req_id left 0; @p b must outlive the encoding). */
void tmsg_fill_req(cim_SendReq *req, const char *to, const char *cmid, int msg_type,
                   const cimc_bytes_t *b, bool transient);

/**
 * SEND a DIRECT message and wait for its SEND_ACK.
 * @param[out] rsp  the SendRsp (code OK or a rejection).
 * @return 0 (an answer came), or an rc from cimc_call.
 */
int tmsg_send(cimc_t *c, const char *to, const char *cmid, int msg_type, const void *body,
              size_t len, bool transient, cim_SendRsp *rsp);

/** As tmsg_send with every field of the request given (conv_type, odd values). */
int tmsg_send_req(cimc_t *c, cim_SendReq *req, cim_SendRsp *rsp);

/**
 * Send a hand-encoded SendReq body (fields nanopb's bounds cannot express, e.g. a 65-byte
 * client_msg_id) whose field 1 is @p req_id, and read the next answer, skipping pushes
 * (they are dropped). @return 0, or an rc (RC_EPROTO: the next answer was not a SEND_ACK
 * echoing @p req_id).
 */
int tmsg_send_raw(cimc_t *c, const uint8_t *body, size_t len, uint32_t req_id,
                  cim_SendRsp *rsp);

/**
 * Append field number @p field at @p off of a hand-built protobuf body: tmsg_pb_bytes a
 * length-delimited one holding @p data, tmsg_pb_varint a varint @p v. @return the new
 * length; aborts the test if @p cap is too small.
 */
size_t tmsg_pb_bytes(uint8_t *buf, size_t cap, size_t off, uint32_t field, const void *data,
                     size_t len);
size_t tmsg_pb_varint(uint8_t *buf, size_t cap, size_t off, uint32_t field, uint64_t v);

/**
 * A pipelined bulk send: @p n DIRECT messages to @p to, at most @p window in flight
 * (sealed together and written in one go, then their SEND_ACKs read in order). Message i
 * gets client_msg_id and body from @p mk. The req_ids are the helper's own (counting from
 * 0x60000000; libcim's counter is not used). Pushes arriving meanwhile are dropped.
 * @param[out] ids    n msg_ids (0 where the answer was not OK); may be NULL.
 * @param[out] codes  n answer codes; may be NULL (then a non-OK answer is logged).
 * @return 0 when every one of the n got an answer, else the rc that ended it (answers
 *         before it are filled in; *n_answered, if given, says how many).
 */
typedef void (*tmsg_mk_fn)(void *ctx, size_t i, char *cmid, size_t cmid_cap,
                           const uint8_t **body, size_t *len);
int tmsg_send_many(cimc_t *c, const char *to, size_t n, size_t window, int msg_type,
                   tmsg_mk_fn mk, void *ctx, uint64_t *ids, int *codes, size_t *n_answered);

/** As tmsg_send_many, to a conversation of @p conv_type (a group: @p to is its id). */
int tmsg_send_many_conv(cimc_t *c, int conv_type, const char *to, size_t n, size_t window,
                        int msg_type, tmsg_mk_fn mk, void *ctx, uint64_t *ids, int *codes,
                        size_t *n_answered);

/**
 * One SYNC: after_msg_id @p after (0 = this device's cursor), @p limit; the page's messages
 * are appended to @p p and its code/reason/remain/last_msg_id/page_n set.
 * @return 0 (an answer came; check p->code), or an rc.
 */
int tmsg_sync(cimc_t *c, uint64_t after, uint32_t limit, tmsg_page_t *p);

/**
 * SYNC every page: starting at @p after, ask again with after_msg_id = last_msg_id while
 * remain > 0, appending to @p p. Bounded: stops with RC_EPROTO on a non-OK page, on a page
 * that makes no progress while remain > 0, or after 100,000 pages.
 * @return 0 or rc.
 */
int tmsg_sync_all(cimc_t *c, uint64_t after, uint32_t limit, tmsg_page_t *p);

/** PUSH_ACK{up_to_msg_id} (no answer). @return 0 or rc. */
int tmsg_push_ack(cimc_t *c, uint64_t up_to);

/**
 * Wait up to @p timeout_ms for the next PUSH (EVENTs are skipped). Its body is copied into
 * @p body (at most @p body_cap bytes; out->body points there, or is NULL if it did not fit;
 * body_len and body_hash are always set).
 * @return 0, RC_ETIMEDOUT, RC_ECLOSED (closed, or a BYE came: cimc_bye() has it).
 */
int tmsg_next_push(cimc_t *c, unsigned timeout_ms, tmsg_t *out, uint8_t *body,
                   size_t body_cap);

/** Wait @p ms; abort the test if a PUSH arrives meanwhile (EVENTs are skipped). */
void tmsg_expect_no_push(cimc_t *c, unsigned ms);

/**
 * Read the next frame that is not a PUSH or EVENT (they are dropped), waiting up to
 * @p timeout_ms. @param[out] body owned, free with free(). @return as cimc_next_frame.
 */
int tmsg_next_answer(cimc_t *c, unsigned timeout_ms, uint32_t *type, uint8_t **body,
                     size_t *len);

/* ---- any request/answer pair (groups, conversations, contacts) ------------------------ */

/**
 * A request whose answer is a Result (GROUP_LEAVE/ADD/KICK/DISMISS, READ, RECALL,
 * CONTACT_ADD/REMOVE, BLOCK, UNBLOCK): send @p req (libcim sets its req_id) as frame
 * @p type and wait for @p ack_type with the same req_id.
 * @return 0 (an answer came: look at res->code), or an rc from cimc_call.
 */
int tmsg_call_result(cimc_t *c, uint32_t type, uint32_t ack_type, const pb_msgdesc_t *fields,
                     void *req, cim_Result *res);

/**
 * Send a hand-built body (fields nanopb's bounds cannot express: a 65-byte name, 1,001
 * members) as frame @p type and decode the next answer that is not a PUSH or EVENT (they
 * are dropped) into @p rsp with @p fields. Its req_id is not checked (an undecodable
 * request is answered with req_id 0). @return 0, or an rc (RC_EPROTO: the answer was
 * another frame type).
 */
int tmsg_call_raw(cimc_t *c, uint32_t type, const uint8_t *body, size_t len,
                  uint32_t ack_type, const pb_msgdesc_t *fields, void *rsp);

/**
 * Check an answer: @p rc is 0 and @p code is @p want; a rejection (@p want not OK) also
 * carries a non-empty reason. Aborts the test, naming the call site, otherwise.
 * TMSG_EXPECT(call, rsp, want) makes the call, then takes code and reason from any *Rsp or
 * Result.
 */
void tmsg_expect_code_(const char *file, int line, int rc, int code, const char *reason,
                       int want);
#define TMSG_EXPECT(call, rsp, want)                                                       \
    do {                                                                                   \
        int trc_ = (call); /* before rsp is read */                                        \
        tmsg_expect_code_(__FILE__, __LINE__, trc_, (int)(rsp).code, (rsp).reason, (want)); \
    } while (0)

/**
 * After a rejection on @p c: @p c still answers PING, and another session @p from can
 * still send a DIRECT message to @p to_user, whose connection @p to gets exactly that
 * message as its next PUSH (EVENTs meanwhile are dropped).
 */
void tmsg_expect_alive(cimc_t *c, cimc_t *from, cimc_t *to, const char *to_user);

/** SEND with a conv_type (DIRECT or GROUP, or an odd value) and wait for its SEND_ACK. */
int tmsg_send_conv(cimc_t *c, int conv_type, const char *to, const char *cmid, int msg_type,
                   const void *body, size_t len, bool transient, cim_SendRsp *rsp);

/* ---- groups -------------------------------------------------------------------------- */

/** GROUP_CREATE with @p n members (@p members may be NULL when n is 0; n <= 1000). */
int tmsg_group_create(cimc_t *c, const char *name, const char *const *members, size_t n,
                      bool open, cim_GroupRsp *rsp);

/** GROUP_JOIN. */
int tmsg_group_join(cimc_t *c, const char *gid, cim_GroupRsp *rsp);

/** GROUP_LEAVE or GROUP_DISMISS (a GroupReq answered with a Result). */
int tmsg_group_req(cimc_t *c, uint32_t type, const char *gid, cim_Result *res);

/** GROUP_ADD or GROUP_KICK with @p n users (n <= 1000). */
int tmsg_group_users(cimc_t *c, uint32_t type, const char *gid, const char *const *users,
                     size_t n, cim_Result *res);

/**
 * GROUP_MEMBERS: the member ids into @p names (at most @p cap kept; *n counts them all),
 * code, reason and group in @p rsp.
 */
int tmsg_group_members(cimc_t *c, const char *gid, char (*names)[65], size_t cap, size_t *n,
                       cim_GroupMembersRsp *rsp);

/** GROUP_LIST: the groups into @p groups (at most @p cap kept; *n counts them all). */
int tmsg_group_list(cimc_t *c, cim_Group *groups, size_t cap, size_t *n,
                    cim_GroupListRsp *rsp);

/** @return true when @p name is one of the @p n names. */
bool tmsg_has_name(char (*names)[65], size_t n, const char *name);

/**
 * Decode the GroupEvent of @p m, which must be a SYSTEM message of a group with its body
 * kept (else the test aborts). @return owned (free with free()).
 */
cim_GroupEvent *tmsg_group_event(const tmsg_t *m);

/**
 * @p m must be the SYSTEM message of group @p gid from @p actor carrying
 * GroupEvent{kind, actor, users = exactly the @p n given (any order), group.group_id = gid}.
 * @return the decoded event for further checks (free with free()).
 */
cim_GroupEvent *tmsg_expect_group_event(const tmsg_t *m, const char *gid, int kind,
                                        const char *actor, const char *const *users,
                                        size_t n);

/**
 * The next PUSH on @p c (within 5 s; EVENTs skipped) must be exactly this message:
 * msg_id @p id (0: any, e.g. a transient one), conv_type, from, to, client_msg_id,
 * msg_type, body, flags 0. @return its time_ms.
 */
uint64_t tmsg_expect_push(cimc_t *c, uint64_t id, int conv_type, const char *from,
                          const char *to, const char *cmid, int msg_type, const void *body,
                          size_t len);

/**
 * The next PUSH on @p c (within 5 s; EVENTs skipped) must be the SYSTEM message of group
 * @p gid with GroupEvent{kind, actor, users} (as tmsg_expect_group_event).
 * @param[out] ev  the decoded event (free with free()), or NULL to drop it.
 * @return its msg_id.
 */
uint64_t tmsg_expect_sys(cimc_t *c, const char *gid, int kind, const char *actor,
                         const char *const *users, size_t n, cim_GroupEvent **ev);

/** Decode the RecallEvent of a RECALL message @p m (its body kept; else the test aborts). */
void tmsg_recall_event(const tmsg_t *m, cim_RecallEvent *out);

/* ---- conversations, history, read, recall -------------------------------------------- */

/** One Conversation of a CONV_LIST answer; last.body is not kept (body_len/hash are). */
typedef struct tmsg_conv {
    int conv_type;
    char peer[65];
    bool has_last;
    tmsg_t last;
    uint32_t unread;
    uint64_t read_up_to;
    uint64_t peer_read_up_to;
    uint64_t updated_ms;
} tmsg_conv_t;

/**
 * CONV_LIST: the conversations into @p convs in the order sent (at most @p cap kept; *n
 * counts them all); code, reason and total_unread in @p rsp.
 */
int tmsg_conv_list(cimc_t *c, tmsg_conv_t *convs, size_t cap, size_t *n, cim_ConvListRsp *rsp);

/** The conversation (conv_type, peer) among @p n, or NULL. */
const tmsg_conv_t *tmsg_conv_find(const tmsg_conv_t *convs, size_t n, int conv_type,
                                  const char *peer);

/**
 * One HISTORY page, appended to @p p as tmsg_sync does (code, reason, page_n, has_more
 * set). @return 0 (an answer came; check p->code), or an rc.
 */
int tmsg_history(cimc_t *c, int conv_type, const char *peer, uint64_t before, uint32_t limit,
                 tmsg_page_t *p);

/** READ{conv_type, peer, up_to_msg_id}. */
int tmsg_read(cimc_t *c, int conv_type, const char *peer, uint64_t up_to, cim_Result *res);

/** RECALL{msg_id}. */
int tmsg_recall(cimc_t *c, uint64_t msg_id, cim_Result *res);

/* ---- contacts, blocks, events --------------------------------------------------------- */

/** CONTACT_ADD, CONTACT_REMOVE, BLOCK or UNBLOCK of @p user. */
int tmsg_user_req(cimc_t *c, uint32_t type, const char *user, cim_Result *res);

/** CONTACT_LIST: the contacts into @p out (at most @p cap kept; *n counts them all). */
int tmsg_contact_list(cimc_t *c, cim_Contact *out, size_t cap, size_t *n,
                      cim_ContactListRsp *rsp);

/**
 * Wait up to @p timeout_ms for the next EVENT (PUSHes meanwhile are dropped).
 * @return 0, RC_ETIMEDOUT, RC_ECLOSED.
 */
int tmsg_next_event(cimc_t *c, unsigned timeout_ms, cim_Event *out);

/** Wait @p ms; abort the test if anything (PUSH or EVENT) arrives meanwhile. */
void tmsg_expect_quiet(cimc_t *c, unsigned ms);

/* ---- users ------------------------------------------------------------------------------ */

/**
 * Register @p n users of the default app straight in the data dir (one write transaction;
 * LMDB lets cimd run meanwhile), as `cimctl user add` would. Users already there are fine.
 */
void tmsg_register_users(const tsrv_t *t, const char *const *users, size_t n);

/** Monotonic milliseconds. */
uint64_t tmsg_now_ms(void);

/** Sleep @p ms milliseconds. */
void tmsg_sleep_ms(unsigned ms);

#endif
