/**
 * Test support: a program of this variant (cim) on a pseudo-terminal, driven as a person
 * at a terminal would: keys in, screen output collected, expectations met in order.
 *
 * tpty_start runs CIM_BIN_DIR/prog under forkpty (an 80x24 terminal), with extra
 * environment entries. tpty_type writes keys (escape sequences too: "\x1b[A" is the up
 * arrow). tpty_expect waits for a string in the output that came after the previous match
 * (so a sequence of expectations reads like a session transcript). tpty_finish waits for
 * the exit (SIGKILL after a timeout) and closes the terminal.
 */
#ifndef CIM_TEST_PTY_H
#define CIM_TEST_PTY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct tpty {
    pid_t pid;
    int fd;      /* the terminal's controlling side; -1 once the program closed it */
    size_t len;  /* bytes in out */
    size_t seen; /* out up to here was matched by earlier tpty_expect calls */
    char out[65536];
} tpty_t;

/**
 * Start @p prog with the arguments that follow (a NULL-terminated list) on a new
 * terminal. @p env: "NAME=value" strings added to the environment, NULL-terminated, or
 * NULL. Aborts the test on failure.
 */
void tpty_start(tpty_t *p, const char *const *env, const char *prog, ...) __attribute__((sentinel));

/** Type @p keys. Aborts the test when they cannot be written. */
void tpty_type(tpty_t *p, const char *keys);

/**
 * Wait up to @p timeout_ms for @p needle in the output after the last match.
 * @return true (and the next search starts after it), or false (the output so far is
 * left for the caller to show: tpty_dump).
 */
bool tpty_expect(tpty_t *p, const char *needle, unsigned timeout_ms);

/** Collect output for @p ms (e.g. to check that something does not come). */
void tpty_drain(tpty_t *p, unsigned ms);

/** Print the whole output so far on stderr (for a failing test). */
void tpty_dump(const tpty_t *p);

/**
 * Wait up to @p timeout_ms for the program to exit, collecting its output, then close
 * the terminal. @return its exit status, or -1 (killed: by a signal, or after the timeout).
 */
int tpty_finish(tpty_t *p, unsigned timeout_ms);

#endif
