/**
 * message: the one encoding of a chat message.
 *
 * A message is encoded once, as cim.Message, when it is stored (or, for a transient send,
 * when it is routed); those bytes are the record in the msgs database, the body of every
 * PUSH and an entry of every SYNC page, so no reader ever re-encodes a stored message.
 *
 * Threading: pure; any thread.
 */
#ifndef CIM_ACTORS_MESSAGE_H
#define CIM_ACTORS_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actors/store.h"
#include "core/blob.h"

/**
 * Encode the message described by @p r (msg_id, time_ms, app-less from/to, types,
 * client_msg_id, sending device kind) with the body @p body / @p len.
 * @return an owned blob (one reference), or NULL when it cannot be encoded (a bug).
 */
blob_t *message_encode(const store_send_t *r, const uint8_t *body, size_t len);

struct _cim_Message;

/**
 * Decode a stored record's fields but its body (skipped, left unset): sender, type,
 * client_msg_id and the rest. @return true, or false for a malformed record.
 */
bool message_decode_head(const uint8_t *rec, size_t len, struct _cim_Message *out);

/**
 * The msg_id of an encoded cim.Message (@p rec, @p len), read without decoding the rest:
 * nanopb writes fields in number order, so a stored message starts with field 1.
 * @return it, or 0 (a transient message, or not a Message).
 */
uint64_t message_id(const uint8_t *rec, size_t len);

#endif
