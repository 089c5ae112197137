/**
 * The session fuzz harness: arbitrary bytes into one session's input path.
 *
 * Purpose. fuzz_family_input() plays one connection against a real worker of a real (but
 * thread-less, except the store) server context: frame reassembly, the HELLO handshake,
 * AES-GCM opening and nanopb decoding of every frame type, in every session state. It is
 * the body of the libFuzzer targets build/fuzz/bin/fuzz_{session,auth,msg,conv,group} and
 * of the server half of fuzz_handshake (test/fuzz/fuzz_*.c, docs/FUZZING.md), and of the
 * regression tests fuzz_regress_* (test/actors/test_fuzz_regress.c), which replay the
 * committed seeds and every crash input ever found.
 *
 * Targets. fuzz_session feeds every mode and every frame type (the whole input path).
 * The family targets (fuzz_auth, fuzz_msg, fuzz_conv, fuzz_group, and the server half of
 * fuzz_handshake) play the same input format through fuzz_family_input with a family
 * filter: only the modes and frame types of one request family, so that the fuzzer spends
 * its time in that family's decoding and handlers (see fuzz_family_t).
 *
 * Input format. Byte 0 chooses the mode (byte 0 % 3), the reader and the setup: when
 * (byte 0 / 3) is odd, the harness reads nothing the server writes until the input is
 * over, and the server's socket has the smallest send buffer, so its answers queue in
 * libuv; when (byte 0 / 6) is odd, mode 2 runs the setup requests after its login (below).
 * A family target replaces a mode its family does not use by the family's first mode.
 * The mode:
 *
 *   0  raw: byte 1 is a chunk size c (0 = everything at once); the bytes after it are fed
 *      to session_feed in chunks of c bytes, from the HELLO state. This is the only mode
 *      in which the handshake runs; its keys are random, so nothing sealed gets past it.
 *
 *   1  login: the session starts where a successful handshake leaves it (state LOGIN,
 *      the frame limit that a real handshake, done once at setup, leaves) but with the
 *      fixed keys (FUZZ_KEY_*_BYTE) and both counters at 0; the rest of the input is
 *      records (below), which the harness seals as the client would. LOGIN decoding and
 *      validation are fuzzed here.
 *
 *   2  live: as 1, then the harness logs in first (user FUZZ_USER on device FUZZ_DEVICE
 *      of app "default", whose secret is 32 bytes FUZZ_SECRET_BYTE) so that every record
 *      reaches a handler of the LIVE state. With the setup bit, it then creates group
 *      FUZZ_GROUP (members FUZZ_USER and FUZZ_PEER, open) and sends one DIRECT message to
 *      FUZZ_PEER and one to the group, and waits until all three are answered OK, so that
 *      history, sync, read, membership and group sends have something to work on.
 *
 * A record is [u16 ctl][u16 len][len bytes], big-endian; a truncated last record keeps
 * what is there. ctl:
 *
 *   bits 0..10   type: an index (mod the number of types) into the harness's list of
 *                every frame type of PROTOCOL.md §4, or, with bit 11 set, the raw type
 *                value bits 0..10 (unknown types included). A family target indexes its
 *                family's list instead, and takes a raw type only when it belongs to the
 *                family (else bits 0..10 index the family's list);
 *   bits 12..13  0 seal the bytes as the body of that type; 1 seal, then flip bit ctl & 7
 *                of byte (len + bits 0..10) % frame length of the sealed frame (header,
 *                body or tag); 2 feed the bytes as they are (no sealing: any header, any
 *                length); 3 seal and feed the frame twice (a replay);
 *   bit 14       feed the frame in two pieces split at its middle;
 *   bit 15       feed it one byte at a time.
 *
 * Oracle. Besides the sanitizers: in modes 1 and 2 every frame the server writes must be a
 * known server-to-client type, within the frame limit, and open with the mirrored client
 * channel in order (counters in step, no nonce reuse), and nothing may follow a BYE or a
 * LOGOUT_ACK; mode 2's login (and setup) must succeed. In mode 0, when the input starts
 * with a HELLO frame and the server answers HELLO_ACK, that ServerHello must verify
 * (chan_client_finish: the server's identity, its signature over the transcript of exactly
 * that HELLO body). A session must be fully closed (its handle freed) when the input ends.
 * A violation prints what failed and abort()s, which libFuzzer and the test runner report
 * as a crash. Inputs shorter than 2 bytes do nothing.
 *
 * Independence. Every input starts from the same data: after each input of modes 1 and 2
 * the harness stops the store (which commits what is queued), and when anything was
 * committed it empties every LMDB database but the schema record and registers the app
 * and the users again, then starts a new store. Mode 0 cannot reach the store (nothing
 * sealed opens with the handshake's random keys), so it skips that, and checks that the
 * database did not change. (One database for the whole process made later inputs depend
 * on earlier ones and slowed the target down as the data grew.)
 *
 * End of an input: the harness reads what is left, hangs up (the session's read callback
 * sees EOF) and, should the session still be open, aborts it; then turns the loop until
 * the session is freed, and resets the data as above.
 *
 * Threading and lifetime: one thread only. The server context is built on the first call
 * and kept for the life of the process (a temp data directory under /tmp, removed by
 * fuzz_session_cleanup, which also runs at exit).
 */
#ifndef CIM_TEST_FUZZ_HARNESS_H
#define CIM_TEST_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/** The fixed identity of modes 1 and 2 (test/fuzz/make_seeds.py uses the same values). */
#define FUZZ_USER   "fuzz"
#define FUZZ_DEVICE "fuzzdev"
/** A second registered user (never logged in): a peer for DIRECT messages and groups. */
#define FUZZ_PEER "peer"
/** The id of the first group created after a reset (GROUP_ID_FIRST): the setup's group. */
#define FUZZ_GROUP        "1000"
#define FUZZ_TOKEN_EXPIRY 4102444800LL /* 2100-01-01: seeds' tokens stay valid */
/** The secret of app "default" in the fuzz server: 32 bytes 0x5a. */
#define FUZZ_SECRET_BYTE 0x5a
/** The session keys of modes 1 and 2: every byte 0x11 (client to server), 0x22 (back). */
#define FUZZ_KEY_C2S_BYTE 0x11
#define FUZZ_KEY_S2C_BYTE 0x22

/** Request families: which modes and frame types a target's inputs may use. */
typedef enum fuzz_family {
    FUZZ_FAM_ALL = 0, /* fuzz_session: every mode, every frame type of PROTOCOL.md §4 */
    FUZZ_FAM_HELLO,   /* fuzz_handshake: mode 0 only (the HELLO state and the handshake) */
    FUZZ_FAM_AUTH,    /* fuzz_auth: modes 1 and 2; LOGIN, LOGOUT, PING */
    FUZZ_FAM_MSG,     /* fuzz_msg: mode 2; SEND, PUSH_ACK, SYNC */
    FUZZ_FAM_CONV,    /* fuzz_conv: mode 2; READ, RECALL, HISTORY, CONV_LIST, CONTACT_*,
                         BLOCK, UNBLOCK */
    FUZZ_FAM_GROUP,   /* fuzz_group: mode 2; the GROUP_* requests */
    FUZZ_FAM_COUNT
} fuzz_family_t;

/**
 * Play one input (format above) against a fresh session of the shared server context,
 * with the modes and frame types of @p family only.
 *
 * @param[in] family  a fuzz_family_t.
 * @param[in] data    borrowed for the call; never modified.
 * @return 0 always (libFuzzer's convention). Setup failures and oracle violations print a
 *         line to stderr and abort().
 */
int fuzz_family_input(int family, const uint8_t *data, size_t size);

/** fuzz_family_input(FUZZ_FAM_ALL, ...): the body of fuzz_session. */
int fuzz_session_input(const uint8_t *data, size_t size);

/**
 * Tear down the server context built by fuzz_session_input (if any): stop the worker's
 * loop, close the acceptor, stop the store, close LMDB and remove the temp data directory.
 * Registered with atexit; a later fuzz_session_input builds a new context.
 *
 * @return 0, or RC_EINVAL when the worker's loop did not close cleanly (a leaked handle).
 */
int fuzz_session_cleanup(void);

#endif
