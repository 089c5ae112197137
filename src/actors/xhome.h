/**
 * xhome: messages between homes (docs/SCALING.md, "Messages between homes") — what
 * travels on the bus for them, and the merge that keeps every timeline in msg_id order.
 *
 * In a cluster every stored message is *originated* by one home (which assigns the id: the
 * sender's home for a DIRECT message, the group's home for a group's) and *applied* by
 * each home that holds a timeline it belongs to (for a group's conversation: every home,
 * which keeps the group's index). Between the two it is an
 * XHOME_MSG: on JetStream (subject N.out.<origin>.<home>) when the home is another node,
 * straight into the origin's own merge otherwise. Each home merges what arrives from
 * every origin (itself included) by id, with watermarks, before anything is appended: so
 * no timeline ever gets an id below one it already has.
 *
 * Formats (all integers big-endian):
 *  - XHOME_MSG / XHOME_PROBE, XHOME_HDR bytes:
 *      0 u8 kind, 1 u8 version (1), 2 u8 app length, 3 u8 from length, 4 u8 to length,
 *      5 u8 conv_type, 6 u8 msg_type, 7 u8 flags (XHOME_F_*), 8 u32 origin node,
 *      12 u32 destination home, 16 u64 msg id (a probe: its number)
 *    then app, from, to (no NULs); with XHOME_F_SKIP a u64 session id; with
 *    XHOME_F_USERS a u32 count and that many users (u8 length, bytes): whose timelines
 *    get it (else: the DIRECT pair's users homed at the destination); then the message
 *    as stored (an encoded cim.Message).
 *    A probe (XHOME_PROBE: a home's marker through its own consumer) has no strings and no
 *    record.
 *  - Watermark (core NATS, N.wm.<origin>): u32 origin, u64 horizon ("every id below it
 *    that I will ever send you is already on JetStream"), u32 count, then count pairs of
 *    u32 home, u64 stream sequence of the last message published to that home (0: none).
 *  - Check (core NATS request N.node.<home>.xchk, reply to N.node.<origin>.xans):
 *    request u64 token, u32 origin, u8 flags (1: a SYSTEM message, not stopped by blocks),
 *    then app NUL from NUL to; reply u64 token, u32 code
 *    (cim_Code), u64 floor (the newest id the home has released), then the reason text.
 *
 * Merge: per origin, a queue of pending messages in id order and a horizon (no id below it
 * can still come from that origin: set by its messages and its watermarks). The smallest
 * pending id X (of origin o) is released when every other origin p has a horizon above X
 * or is *waived* (dead, and its stream drained: nothing more can come from it).
 *
 * Threading: pure functions and a plain struct; the merge belongs to the cluster thread.
 */
#ifndef CIM_ACTORS_XHOME_H
#define CIM_ACTORS_XHOME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conf.h"
#include "core/kv.h"

#define XHOME_HDR 24
#define XHOME_VERSION 1
#define XHOME_REC_MAX (1u << 20) /* bytes of one message record on the bus */

enum { XHOME_MSG = 1, XHOME_PROBE = 2 };

#define XHOME_F_INDEX 0x01 /* also in the conversation: history, last message, unread */
#define XHOME_F_HOOK  0x02 /* a user's message: webhook events for offline recipients */
#define XHOME_F_USERS 0x04 /* an explicit list of users follows the strings */
#define XHOME_F_SKIP  0x08 /* a u64 session id follows the strings: the sender's session at
                              this home, not pushed to (it gets the SEND_ACK) */
#define XHOME_USERS_MAX 100000 /* users of one message (a group's members) */

/** A parsed XHOME_MSG or XHOME_PROBE: strings copied, record borrowed from the input. */
typedef struct xhome_msg {
    uint8_t kind;
    uint8_t conv_type;
    uint8_t msg_type;
    uint8_t flags;               /* XHOME_F_* */
    uint32_t origin, home;
    uint64_t id;                 /* XHOME_PROBE: the probe's number */
    char app[KV_ID_MAX + 1];
    char from[KV_ID_MAX + 1];
    char to[KV_ID_MAX + 1];
    uint64_t skip_sid;           /* XHOME_F_SKIP */
    uint32_t nusers;             /* XHOME_F_USERS: how many */
    const char *const *users;    /* encode: nusers ids */
    const uint8_t *ulist;        /* parse: the list as on the wire (xhome_user), borrowed */
    size_t ulist_len;
    const uint8_t *rec;          /* the encoded cim.Message, borrowed */
    size_t rec_len;
} xhome_msg_t;

/**
 * The next user of a parsed list: @p *pos is the offset in ulist (start at 0); the id is
 * copied into @p out. @return false at the end (the parser checked the whole list).
 */
bool xhome_user(const xhome_msg_t *m, size_t *pos, char out[KV_ID_MAX + 1]);

/**
 * Encode @p m (kind, conv_type, msg_type, origin, home, id, app, from, to, rec/rec_len).
 * @param[out] out  owned (mem_free), @p len its size.
 * @return 0, or RC_EINVAL (a string longer than KV_ID_MAX, a record over XHOME_REC_MAX).
 */
int xhome_encode(const xhome_msg_t *m, uint8_t **out, size_t *len);

/**
 * Parse a message from the bus. A probe needs a home; a message needs valid app, from and
 * to ids, an id whose SnowFlake node is @c origin, and a record.
 * @return 0, or RC_EPROTO (malformed: to be dropped and counted).
 */
int xhome_parse(const uint8_t *p, size_t len, xhome_msg_t *out);

/* An outbox entry (the meta database, per message id): one XHOME_MSG (a DIRECT message
 * between two homes), or XHOME_OUTBOX_MULTI, then per destination home a u32 length and
 * that home's XHOME_MSG, in the order they are to be published (the origin's own last). */
#define XHOME_OUTBOX_MULTI 0x80

/**
 * Call @p cb with each XHOME_MSG of outbox entry @p p (@p len bytes), in order; a non-zero
 * return stops. @return 0, cb's value, or RC_EPROTO (malformed: nothing called).
 */
int xhome_outbox_each(const uint8_t *p, size_t len,
                      int (*cb)(void *ctx, const uint8_t *x, size_t xlen), void *ctx);

#define XHOME_WM_MAX (4 + 8 + 4 + CONF_CLUSTER_MAX * 12)

/** A watermark: @p n (home, seq) pairs. */
typedef struct xhome_wm {
    uint32_t origin;
    uint64_t horizon;
    uint32_t n;
    uint32_t home[CONF_CLUSTER_MAX];
    uint64_t seq[CONF_CLUSTER_MAX];
} xhome_wm_t;

/** Encode @p w into @p out (XHOME_WM_MAX bytes). @return its length. */
size_t xhome_wm_encode(const xhome_wm_t *w, uint8_t *out);

/** Parse a watermark. @return 0 or RC_EPROTO. */
int xhome_wm_parse(const uint8_t *p, size_t len, xhome_wm_t *out);

/** The sequence @p w says was the last one published to @p home (0 when it names none). */
uint64_t xhome_wm_seq(const xhome_wm_t *w, uint32_t home);

/* ---- the merge ------------------------------------------------------------------------ */

typedef struct xmerge_ent {
    struct xmerge_ent *next;
    uint64_t id;
    uint32_t origin;
    uint64_t t_in_ns;  /* when it entered the merge (uv_hrtime): the merge delay */
    void *data;        /* the caller's */
} xmerge_ent_t;

typedef struct xmerge {
    size_t n;
    uint32_t nodes[CONF_CLUSTER_MAX];
    uint64_t horizon[CONF_CLUSTER_MAX]; /* no id below can still come from that origin */
    bool waived[CONF_CLUSTER_MAX];      /* not waited for (dead and drained) */
    xmerge_ent_t *head[CONF_CLUSTER_MAX], *tail[CONF_CLUSTER_MAX];
    size_t pending;
    uint64_t released;                  /* the largest id released */
} xmerge_t;

/** A merge of @p n origins (@p nodes), every horizon 0, none waived. */
void xmerge_init(xmerge_t *x, const uint32_t *nodes, size_t n);

/**
 * Queue message @p id of @p origin (mem_alloc'd entry carrying @p data). Kept in id order
 * within its origin (a late republish is placed where it belongs); raises the origin's
 * horizon past @p id.
 * @return 0, or RC_EINVAL (@p origin is not one of the nodes: nothing queued).
 */
int xmerge_add(xmerge_t *x, uint32_t origin, uint64_t id, void *data, uint64_t now_ns);

/** Raise @p origin's horizon to @p horizon (never lowers it). Unknown origin: ignored. */
void xmerge_horizon(xmerge_t *x, uint32_t origin, uint64_t horizon);

/** Stop (true) or resume (false) waiting for @p origin. */
void xmerge_waive(xmerge_t *x, uint32_t origin, bool waived);

/**
 * The next message that may be applied, if any: taken out of the merge (free it with
 * mem_free once its data is handed on).
 * @return the entry, or NULL when the smallest pending id must still wait.
 */
xmerge_ent_t *xmerge_next(xmerge_t *x);

/** Free every pending entry, calling @p drop on each one's data first (may be NULL). */
void xmerge_clear(xmerge_t *x, void (*drop)(void *data));

#endif
