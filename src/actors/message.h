/**
 * message: the one encoding of a chat message.
 *
 * A message is encoded once, as cim.Message, when it is stored (or, for a transient send,
 * when it is routed); those bytes are the record in the msgs database, the body of every
 * PUSH and an entry of every SYNC page, so no reader ever re-encodes a stored message.
 *
 * Layout: msg_id (field 1) and time_ms (field 7) first — the head — then every other field
 * in number order (protobuf allows any order; decoders do not care). That way a session
 * encodes all but the id and time on its worker (message_tail_encode), and the store, which
 * gives the id, only puts those two in front (message_with_id): no encoding on the writer.
 *
 * Stored, a record leaves out its head when the head says nothing its key does not: msg_id
 * is the key, time_ms the id's own time (snowflake_time_ms). That is 17 of a record's bytes
 * (docs/STORAGE.md). message_put strips it, message_get gives it back, so readers see the
 * whole record; a record whose head is not the implied one is stored whole, and a stored
 * record is whole exactly when it starts with field 1.
 *
 * Threading: pure; any thread (message_put/replace/get: in the caller's transaction).
 */
#ifndef CIM_ACTORS_MESSAGE_H
#define CIM_ACTORS_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pb.h>

#include "actors/store.h"
#include "core/blob.h"
#include "core/kv.h"

/** Room for a record's head: msg_id and time_ms, each a one-byte tag and a varint. */
#define MESSAGE_HEAD_MAX 22

/**
 * Encode the message described by @p r (msg_id, time_ms, app-less from/to, types,
 * client_msg_id, sending device kind) with the body @p body / @p len.
 * @return an owned blob (one reference), or NULL when it cannot be encoded (a bug).
 */
blob_t *message_encode(const store_send_t *r, const uint8_t *body, size_t len);

/** Room message_tail_encode may need beyond the body: the other fields, at their longest. */
#define MESSAGE_TAIL_EXTRA 256

/**
 * Encode every field of @p r's message but msg_id and time_ms, with the body @p body /
 * @p len, into @p out (room @p cap: len + MESSAGE_TAIL_EXTRA is always enough).
 * @param[out] out_len  the bytes written.
 * @return 0, or RC_EINVAL when it does not fit.
 */
int message_tail_encode(const store_send_t *r, const uint8_t *body, size_t len, uint8_t *out,
                        size_t cap, size_t *out_len);

/**
 * The record of a message whose other fields @p tail / @p len (message_tail_encode) are
 * encoded already: @p id and @p time_ms put in front. @return an owned blob.
 */
blob_t *message_with_id(uint64_t id, uint64_t time_ms, const uint8_t *tail, size_t len);

/**
 * A stored message as read (message_get): the stored bytes, and the head they left out
 * (head_len 0: stored whole). head then rec is the whole cim.Message, as clients get it.
 */
typedef struct message_rec {
    const uint8_t *rec; /* the stored bytes, borrowed from the transaction */
    size_t len;
    uint8_t head[MESSAGE_HEAD_MAX];
    uint8_t head_len;
} message_rec_t;

/** Store record @p rec / @p len as message @p id (kv_msg_put), without its implied head. */
int message_put(kv_txn_t *txn, uint64_t id, const uint8_t *rec, size_t len);

/** Replace stored message @p id's record (kv_msg_replace), without its implied head. */
int message_replace(kv_txn_t *txn, uint64_t id, const uint8_t *rec, size_t len);

/**
 * Read stored message @p id (kv_msg_get) with its head. Readers that only decode fields
 * other than msg_id and time_ms, or only ask whether it exists, may use kv_msg_get alone.
 * @return 0, RC_ENOTFOUND or an rc.
 */
int message_get(kv_txn_t *txn, uint64_t id, message_rec_t *out);

/** Make @p r of stored message @p id's bytes @p rec / @p len: the head they left out, if any. */
void message_rec_of(uint64_t id, const uint8_t *rec, size_t len, message_rec_t *r);

/** The whole record's length. */
static inline size_t message_rec_len(const message_rec_t *r)
{
    return r->head_len + r->len;
}

/** Encode @p r whole as length-delimited field @p tag (a SyncRsp's or HistoryRsp's messages,
 * a Conversation's last). */
bool message_rec_encode(pb_ostream_t *os, uint32_t tag, const message_rec_t *r);

/** The bytes message_rec_encode writes for @p r. */
size_t message_rec_cost(const message_rec_t *r);

struct _cim_Message;

/**
 * Decode a stored record's fields but its body (skipped, left unset): sender, type,
 * client_msg_id and the rest. @return true, or false for a malformed record.
 */
bool message_decode_head(const uint8_t *rec, size_t len, struct _cim_Message *out);

/** message_decode_head of a stored record, its head included (msg_id, time_ms). */
bool message_rec_decode_head(const message_rec_t *r, struct _cim_Message *out);

/**
 * Decode a stored record, head then stored bytes, into @p out as the caller prepared it
 * (zeroed: proto3's defaults; its body callback set). @return true, or false when
 * malformed.
 */
bool message_rec_decode(const message_rec_t *r, struct _cim_Message *out);

/**
 * A bytes field read in place: a nanopb decode callback (message_window_decode, with a
 * message_win_t as its arg) that points into the buffer being decoded instead of copying.
 * Set lo/hi to that buffer (the decode must use a buffer stream over it) and data to NULL;
 * after the decode, data/len are the field's bytes (data NULL: the field was absent).
 */
typedef struct message_win {
    const uint8_t *lo, *hi; /* the buffer being decoded */
    const uint8_t *data;    /* out: the field's bytes, inside [lo, hi] */
    size_t len;
} message_win_t;

/**
 * The decode callback of a message_win_t (pb_callback_t.funcs.decode). nanopb calls a
 * callback for any wire type: for a length-delimited field the stream is a window of the
 * buffer itself, but for a varint or fixed32/64 it is a stream over a few bytes on
 * nanopb's own stack, gone once the callback returns. So the window must lie inside
 * [lo, hi]: anything else is a wrong wire type for a bytes field and fails the decode,
 * instead of keeping a pointer to dead stack.
 */
bool message_window_decode(pb_istream_t *is, const pb_field_t *f, void **arg);

/**
 * Decode a stored record whole: its fields into @p out (body left unset there) and its
 * body as a window of @p rec.
 * @param[out] body, body_len  borrowed from @p rec (NULL and 0 when it has none).
 * @return true, or false for a malformed record.
 */
bool message_decode(const uint8_t *rec, size_t len, struct _cim_Message *out, const uint8_t **body,
                    size_t *body_len);

/**
 * The msg_id of an encoded cim.Message (@p rec, @p len), read without decoding the rest:
 * a record starts with field 1 (above).
 * @return it, or 0 (a transient message, or not a Message).
 */
uint64_t message_id(const uint8_t *rec, size_t len);

#endif
