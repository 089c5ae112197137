/**
 * chan: the crypto channel of PROTOCOL.md §2 — identity key, handshake, sealed frames.
 *
 * Design. A connection's crypto state is a chan_t of 88 bytes: the two 32-byte
 * direction keys, the two u64 nonce counters and a serial. The OpenSSL EVP_CIPHER_CTX
 * objects that do the work (~1.1 KB each when keyed) are *not* per connection, which
 * keeps an idle connection small (DESIGN.md, pitfalls): each thread owns one chan_ctx_t,
 * which keeps keyed contexts for the last connections it served (a slot per serial,
 * 4,096 per direction at most), so that a busy connection's frame sets only its nonce,
 * and re-keys a slot when another connection takes it. chan_forget clears a closing
 * connection's slots. The AES-256-GCM cipher is fetched once (chan_global_init) and
 * shared read-only.
 *
 * Handshake (server authenticated, forward secret): the client sends an X25519 ephemeral
 * key and 32 random bytes in ClientHello; the server answers with its own ephemeral key,
 * random, Ed25519 identity and a signature over the transcript hash
 *   th = SHA-256("cim/1 handshake" || HELLO body as sent || server_key || server_random
 *                || identity).
 * Both derive okm = HKDF-SHA256(X25519 shared, salt = th, info = "cim/1 keys", 64):
 * c→s key = okm[0..32), s→c key = okm[32..64). Protobuf encoding of the hellos is the
 * caller's (core never includes *.pb.h): these functions take and give raw fields plus
 * the exact HELLO body bytes for the transcript.
 *
 * Sealed frames: nonce = 4 zero bytes || u64 counter (big-endian), per direction from 0;
 * AAD = the 8 header bytes; body = ciphertext || 16-byte tag. A frame that fails to open
 * (tag, header, replay, reorder) is RC_ECRYPTO and the counter does not move.
 *
 * Threading: chan_global_init once at startup before threads start. chan_identity_t is
 * immutable after load and may be shared. A chan_ctx_t belongs to one thread. A chan_t
 * belongs to its connection's thread.
 */
#ifndef CIM_CORE_CHAN_H
#define CIM_CORE_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHAN_KEY 32  /**< X25519 / Ed25519 public key and AES key bytes */
#define CHAN_RANDOM 32
#define CHAN_SIG 64

/** Per-connection channel state: keys and counters for both directions. */
typedef struct chan {
    uint8_t tx_key[CHAN_KEY]; /* key for frames this side seals */
    uint8_t rx_key[CHAN_KEY]; /* key for frames this side opens */
    uint64_t tx_ctr;          /* next nonce counter to seal with */
    uint64_t rx_ctr;          /* next nonce counter expected */
    uint64_t serial;          /* unique per handshake (its keys); 0: keys set by hand */
} chan_t;

/** A thread's reusable cipher contexts. */
typedef struct chan_ctx chan_ctx_t;

/** The server's long-term Ed25519 identity. */
typedef struct chan_identity chan_identity_t;

/** Client half of a handshake in progress. */
typedef struct chan_client {
    void *eph;                       /* EVP_PKEY *: the X25519 ephemeral private key */
    uint8_t key[CHAN_KEY];           /* its public half, sent as client_key */
    uint8_t random[CHAN_RANDOM];     /* sent as client_random */
} chan_client_t;

/**
 * Fetch AES-256-GCM, SHA-256 and HKDF once (kept read-only for the life of the process)
 * and check that X25519 and Ed25519 are available. Call once at startup, before any other
 * thread uses chan; a second call while initialised does nothing and returns 0.
 * @return 0, or RC_ECRYPTO (logged at ERROR).
 */
int chan_global_init(void);

/** Release what chan_global_init fetched (at exit; no chan call may follow). */
void chan_global_free(void);

/**
 * @return a new per-thread context (two EVP_CIPHER_CTX bound to AES-256-GCM, one to seal
 *         and one to open); free with chan_ctx_free(). Aborts on OOM, or when
 *         chan_global_init() has not succeeded (a programmer error).
 */
chan_ctx_t *chan_ctx_new(void);

/** Free a context. chan_ctx_free(NULL) is a no-op. */
void chan_ctx_free(chan_ctx_t *ctx);

/**
 * Load the identity key from @p path (PEM PKCS#8), or create it when the file does not
 * exist: opened with O_CREAT|O_EXCL and mode 0600 (so it is never readable by others, even
 * briefly), written, fsync'ed with its directory. A file that exists but holds no usable
 * key is an error, never overwritten. Blocking file I/O: startup only.
 * @param[out] out      an owned identity, written only on success; free with
 *                      chan_identity_free().
 * @param[out] created  may be NULL; on success, true when this call created the file,
 *                      false when it read one that was there (also when another process
 *                      created it a moment earlier).
 * @return 0, RC_ECRYPTO (unreadable, encrypted, or not Ed25519; the reason is logged at
 *         ERROR), or -errno (file system).
 */
int chan_identity_load(const char *path, chan_identity_t **out, bool *created);

/** Load only (never create). @return as chan_identity_load, plus -ENOENT. */
int chan_identity_open(const char *path, chan_identity_t **out);

/** Create a fresh in-memory identity (tests, fuzzing). Aborts on failure. */
chan_identity_t *chan_identity_generate(void);

/** Copy the 32-byte public key. */
void chan_identity_public(const chan_identity_t *id, uint8_t out[CHAN_KEY]);

/** Free an identity. NULL is a no-op. */
void chan_identity_free(chan_identity_t *id);

/**
 * Server side of the handshake: answer one ClientHello.
 *
 * @param[in]  id            the server identity.
 * @param[in]  hello         the HELLO body exactly as received (for the transcript).
 * @param[in]  hello_len     its length.
 * @param[in]  client_key    the ClientHello's client_key (32 bytes; caller checked length).
 * @param[out] server_key    the server's ephemeral public key for ServerHello.
 * @param[out] server_random 32 random bytes for ServerHello.
 * @param[out] sig           the Ed25519 signature over th for ServerHello.
 * @param[out] ch            the channel keys, counters 0; written only on success.
 * @return 0, or RC_ECRYPTO (bad peer key, all-zero shared secret, OpenSSL failure).
 */
int chan_server_handshake(const chan_identity_t *id, const uint8_t *hello, size_t hello_len,
                          const uint8_t client_key[CHAN_KEY], uint8_t server_key[CHAN_KEY],
                          uint8_t server_random[CHAN_RANDOM], uint8_t sig[CHAN_SIG],
                          chan_t *ch);

/**
 * Client side, step 1: make an ephemeral key and random for ClientHello.
 * @return 0, or RC_ECRYPTO. On success release with chan_client_close().
 */
int chan_client_start(chan_client_t *c);

/**
 * Client side, step 2: check the ServerHello and derive the keys. The pin is checked
 * first, then the signature over th, then the X25519 result. @p c stays open either way
 * (release it with chan_client_close()).
 *
 * @param[in]  c         from chan_client_start.
 * @param[in]  hello     the HELLO body exactly as sent.
 * @param[in]  pinned    the expected identity (32 bytes), or NULL to trust on first use.
 * @param[out] ch        the channel, written only on success.
 * @return 0, or RC_EKEY (identity differs from @p pinned), RC_ECRYPTO (bad signature,
 *         bad key, all-zero secret).
 */
int chan_client_finish(chan_client_t *c, const uint8_t *hello, size_t hello_len,
                       const uint8_t server_key[CHAN_KEY],
                       const uint8_t server_random[CHAN_RANDOM],
                       const uint8_t identity[CHAN_KEY], const uint8_t sig[CHAN_SIG],
                       const uint8_t *pinned, chan_t *ch);

/** Free the ephemeral key. Safe on a zeroed or already closed chan_client_t. */
void chan_client_close(chan_client_t *c);

/**
 * Seal one frame: write header (len = 8 + pt_len + 16, @p type), ciphertext and tag into
 * @p out, and advance the tx counter. @p ctx seals with ch->tx_key.
 *
 * @param[in]  pt   the plaintext; may be NULL when @p pt_len is 0 (a body of the tag only).
 * @param[out] out  room for FRAME_HDR + pt_len + FRAME_TAG bytes. May not overlap @p pt.
 * @return 0, or RC_ECRYPTO (OpenSSL failure, or the counter is exhausted), or RC_ETOOBIG
 *         (@p pt_len over INT_MAX - 24; callers cap bodies at max_body long before).
 */
int chan_seal(chan_ctx_t *ctx, chan_t *ch, uint32_t type, const uint8_t *pt, size_t pt_len,
              uint8_t *out);

/**
 * Open one sealed frame in place: on success the plaintext (len - 24 bytes) is at
 * frame + 8 and the rx counter advances. @p ctx opens with ch->rx_key.
 *
 * @param[in,out] frame  the whole frame (header included) as received; len >= 24 and its
 *                       header's length field equal to @p len.
 * @return 0, or RC_ECRYPTO (wrong tag, changed header, replayed or reordered frame,
 *         len < 24); the counter does not move, and the body bytes are zeroed if they
 *         were decrypted (else left as received), so no unauthenticated plaintext remains.
 *         Logged at DEBUG only: a peer can cause it at will.
 */
int chan_open(chan_ctx_t *ctx, chan_t *ch, uint8_t *frame, size_t len);

/** Drop the keyed contexts @p ctx keeps for @p ch (its connection is closing), so that its
 * keys do not outlive it there. NULL @p ctx is a no-op. */
void chan_forget(chan_ctx_t *ctx, const chan_t *ch);

/** Format 32 bytes as 64 lowercase hex characters plus NUL. */
void chan_hex(const uint8_t key[CHAN_KEY], char out[2 * CHAN_KEY + 1]);

/**
 * Parse exactly 64 hex characters (either case) followed by NUL.
 * @param[out] out  written only on success.
 * @return 0, or RC_EINVAL.
 */
int chan_unhex(const char *hex, uint8_t out[CHAN_KEY]);

/** Fill @p out with @p n cryptographically random bytes. @return 0, or RC_ECRYPTO. */
int chan_random(uint8_t *out, size_t n);

#endif
