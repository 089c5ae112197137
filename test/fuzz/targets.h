/**
 * The fuzz targets that need no server context (docs/FUZZING.md has the list and how to
 * run them). Each test/fuzz/fuzz_<name>.c holds one target's body, fuzz_<name>_input, and,
 * when compiled with CIM_FUZZ_TARGET (test/fuzz/SConscript), the libFuzzer entry point
 * that calls it; the test runner links the bodies without the entry points and replays
 * each target's seeds and crash inputs through them (test/actors/test_fuzz_regress.c).
 *
 * Contract of every fuzz_<name>_input: any bytes; @p data is borrowed for the call and
 * never modified; returns 0. An oracle violation prints one line to stderr and abort()s,
 * which libFuzzer and the test runner report as a crash. Single-threaded.
 */
#ifndef CIM_TEST_FUZZ_TARGETS_H
#define CIM_TEST_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

/** fuzz_frame: frame_rd_feed reassembly against a one-pass model (fuzz_frame.c). */
int fuzz_frame_input(const uint8_t *data, size_t size);

/** fuzz_token: token_verify's strict parser against a model, and mint/verify round trips
 *  with edited tokens (fuzz_token.c). */
int fuzz_token_input(const uint8_t *data, size_t size);

/** fuzz_handshake: the server's HELLO handling through a real session (harness.h, family
 *  FUZZ_FAM_HELLO), and libcim's check of a HELLO_ACK (fuzz_handshake.c). */
int fuzz_handshake_input(const uint8_t *data, size_t size);

/** fuzz_admin: the admin API's path, secret and message-body decoders against models
 *  (fuzz_admin.c). */
int fuzz_admin_input(const uint8_t *data, size_t size);

/** fuzz_bus: the public decoders of the cluster bus's messages between homes, watermarks,
 *  outbox entries and online questions and answers, against models and their encoders
 *  (fuzz_bus.c). */
int fuzz_bus_input(const uint8_t *data, size_t size);

/** fuzz_busmsg: the cluster's handlers of those messages (and of the relay's) in a cluster
 *  that is never started, against models of their formats (fuzz_busmsg.c). Its programs
 *  link with -Wl,--wrap=natsConnection_Publish. */
int fuzz_busmsg_input(const uint8_t *data, size_t size);

#endif
